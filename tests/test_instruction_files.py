"""task=custom/instruction: the user's instruction files in either layout, the templates, the
response-only label mask (checked token by token on SmolLM2's real chat template), and every
refusal of bad input, each before the model loads."""

import gzip
import json
from pathlib import Path

import datasets
import pytest

from lorasb.data import InstructionFileDataModule
from lorasb.data.conversation import Conversation
from lorasb.data.files import DataFileError
from lorasb.data.instruction import IGNORE_INDEX, NoResponseTokenError, encode_conversations, encode_examples
from lorasb.data.prompts import alpaca_prompt
from lorasb.data.templates import ALPACA, make_template

CHATS = [
    {"messages": [
        {"role": "system", "content": "Answer with a number."},
        {"role": "user", "content": "What is 4 + 4?"},
        {"role": "assistant", "content": "8"},
        {"role": "user", "content": "And doubled?"},
        {"role": "assistant", "content": "16"},
    ]},
    {"messages": [{"role": "user", "content": "What is 1 + 1?"}, {"role": "assistant", "content": "2"}]},
    {"messages": [{"role": "user", "content": "Name a colour."}, {"role": "assistant", "content": "Blue."}]},
]  # fmt: skip
ALPACA_ROWS = [
    {"instruction": "Translate to French.", "input": "Good morning", "output": "Bonjour"},
    {"instruction": "What is 2 + 3?", "input": "", "output": "5"},
    {"instruction": "Name a colour.", "input": None, "output": "Blue."},
]


def write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def module(tokenizer, train_file, **kwargs) -> InstructionFileDataModule:
    options = {"val_size": 0, "max_length": 256, **kwargs}
    return InstructionFileDataModule(task="instruction", tokenizer=tokenizer, train_file=str(train_file), **options)


# --- the label mask, token by token ----------------------------------------------------------------


def chatml_trained_positions(tokenizer, ids: list[int]) -> list[int]:
    """Positions inside an assistant turn of a ChatML text (SmolLM2's template), from the token after
    ``<|im_start|>assistant\\n`` to its ``<|im_end|>`` inclusive: an oracle independent of the renderer."""
    start, end, newline = tokenizer.convert_tokens_to_ids("<|im_start|>"), tokenizer.convert_tokens_to_ids("<|im_end|>"), tokenizer("\n")["input_ids"]
    assistant = tokenizer("assistant", add_special_tokens=False)["input_ids"]
    header = [start, *assistant, *newline]
    positions, inside = [], False
    for i, token in enumerate(ids):
        if inside or ids[max(0, i - len(header)) : i] == header:
            positions.append(i)
            inside = token != end
    return positions


def test_chat_labels_are_exactly_the_assistant_turns_of_smollm2s_chat_template(smollm2_tokenizer, tmp_path):
    data = module(smollm2_tokenizer, write_jsonl(tmp_path / "chats.jsonl", CHATS))
    data.setup("fit")
    assert data.template.name == "chat"  # auto: the tokenizer has a chat template
    for row, example in zip(CHATS, data.train_dataset):
        rendered = smollm2_tokenizer.apply_chat_template(row["messages"], tokenize=False)
        # the whole conversation as the template writes it, less the newline after the last <|im_end|>
        assert example["input_ids"] == smollm2_tokenizer(rendered.removesuffix("\n"), add_special_tokens=False)["input_ids"]
        trained = [i for i, label in enumerate(example["labels"]) if label != IGNORE_INDEX]
        assert trained == chatml_trained_positions(smollm2_tokenizer, example["input_ids"])
        assert all(example["labels"][i] == example["input_ids"][i] for i in trained)
    first = data.train_dataset[0]
    learnt = smollm2_tokenizer.decode([t for t in first["labels"] if t != IGNORE_INDEX])
    assert learnt == "8<|im_end|>16<|im_end|>"  # both assistant turns, each with its end of turn; nothing else


def test_padding_is_masked_in_a_batch(smollm2_tokenizer, tmp_path):
    data = module(smollm2_tokenizer, write_jsonl(tmp_path / "chats.jsonl", CHATS), batch_size=3)
    data.setup("fit")
    batch = next(iter(data.train_dataloader()))
    lengths = [len(example["input_ids"]) for example in data.train_dataset]
    for ids, mask, labels in zip(batch["input_ids"], batch["attention_mask"], batch["labels"]):
        padded = mask == 0
        assert (labels[padded] == IGNORE_INDEX).all()
        assert int((~padded).sum()) in lengths
    assert int(batch["attention_mask"].sum()) == sum(lengths)


def test_alpaca_rows_with_the_alpaca_template_match_the_paper_sets_encoding(smollm2_tokenizer, tmp_path):
    data = module(smollm2_tokenizer, write_jsonl(tmp_path / "rows.jsonl", ALPACA_ROWS), template="alpaca")
    data.setup("fit")
    pairs = [(alpaca_prompt(r["instruction"], r["input"] or ""), r["output"]) for r in ALPACA_ROWS]
    assert [dict(e) for e in data.train_dataset] == encode_examples(smollm2_tokenizer, pairs, 256)
    assert "### Input:\nGood morning" in smollm2_tokenizer.decode(data.train_dataset[0]["input_ids"])


def test_alpaca_rows_under_the_chat_template_put_the_input_after_the_instruction(smollm2_tokenizer, tmp_path):
    data = module(smollm2_tokenizer, write_jsonl(tmp_path / "rows.jsonl", ALPACA_ROWS), template="chat")
    data.setup("fit")
    text = smollm2_tokenizer.decode(data.train_dataset[0]["input_ids"])
    assert "<|im_start|>user\nTranslate to French.\n\nGood morning<|im_end|>\n<|im_start|>assistant\nBonjour<|im_end|>" in text


def test_a_template_string_renders_each_exchange(smollm2_tokenizer):
    template = make_template("Q: {instruction}\nA: ", smollm2_tokenizer)
    (example,) = encode_conversations(smollm2_tokenizer, template, [Conversation.single("What is 1 + 1?", "2")], 64)
    ids, labels = example[0]["input_ids"], example[0]["labels"]
    assert smollm2_tokenizer.decode(ids) == "Q: What is 1 + 1?\nA: 2<|im_end|>"  # the response, then EOS
    assert smollm2_tokenizer.decode([t for t in labels if t != IGNORE_INDEX]) == "2<|im_end|>"


def test_auto_is_alpaca_for_a_tokenizer_without_a_chat_template(smollm2_tokenizer):
    assert make_template("auto", smollm2_tokenizer).name == "chat"
    plain = smollm2_tokenizer.__class__.from_pretrained(smollm2_tokenizer.name_or_path)
    plain.chat_template = None
    assert make_template("auto", plain) is ALPACA
    with pytest.raises(ValueError, match=r"data.template=chat: the tokenizer .* has no chat template; use data.template=alpaca"):
        make_template("chat", plain)


# --- file kinds ------------------------------------------------------------------------------------


def test_json_jsonl_csv_parquet_and_gzip_read_the_same_rows(smollm2_tokenizer, tmp_path):
    rows = [{k: v or "" for k, v in row.items()} for row in ALPACA_ROWS]
    write_jsonl(tmp_path / "rows.jsonl", rows)
    (tmp_path / "rows.json").write_text(json.dumps(rows))
    (tmp_path / "rows.jsonl.gz").write_bytes(gzip.compress((tmp_path / "rows.jsonl").read_bytes()))
    datasets.Dataset.from_list(rows).to_csv(tmp_path / "rows.csv", index=False)
    datasets.Dataset.from_list(rows).to_parquet(tmp_path / "rows.parquet")
    read = {}
    for name in ("rows.jsonl", "rows.json", "rows.jsonl.gz", "rows.csv", "rows.parquet"):
        data = module(smollm2_tokenizer, tmp_path / name)
        data.setup("fit")
        read[name] = list(data.train_dataset["input_ids"])
    assert len({json.dumps(ids) for ids in read.values()}) == 1, read.keys()


def test_a_dataset_folder_is_read_at_its_splits(smollm2_tokenizer, tmp_path):
    (tmp_path / "chats").mkdir()
    write_jsonl(tmp_path / "chats" / "train.jsonl", CHATS)
    write_jsonl(tmp_path / "chats" / "validation.jsonl", CHATS[1:])
    from_folder = module(smollm2_tokenizer, tmp_path / "chats", validation_file=str(tmp_path / "chats"))
    from_files = module(smollm2_tokenizer, tmp_path / "chats" / "train.jsonl", validation_file=str(tmp_path / "chats" / "validation.jsonl"))
    from_folder.setup("fit")
    from_files.setup("fit")
    for split in ("train_dataset", "val_dataset"):
        assert list(getattr(from_folder, split)["labels"]) == list(getattr(from_files, split)["labels"])


def test_chat_rows_from_parquet(smollm2_tokenizer, tmp_path):
    datasets.Dataset.from_list(CHATS).to_parquet(tmp_path / "chats.parquet")
    write_jsonl(tmp_path / "chats.jsonl", CHATS)
    from_parquet, from_jsonl = module(smollm2_tokenizer, tmp_path / "chats.parquet"), module(smollm2_tokenizer, tmp_path / "chats.jsonl")
    from_parquet.setup("fit")
    from_jsonl.setup("fit")
    assert list(from_parquet.train_dataset["labels"]) == list(from_jsonl.train_dataset["labels"])


def test_field_names_are_mappable(smollm2_tokenizer, tmp_path):
    rows = [{"question": r["instruction"], "answer": r["output"]} for r in ALPACA_ROWS]
    datasets.Dataset.from_list(rows).to_csv(tmp_path / "qa.csv", index=False)
    data = module(smollm2_tokenizer, tmp_path / "qa.csv", instruction_field="question", output_field="answer", template="alpaca")
    data.setup("fit")
    assert "### Instruction:\nWhat is 2 + 3?" in smollm2_tokenizer.decode(data.train_dataset[1]["input_ids"])


def test_a_validation_file_is_used_whole_and_the_training_rows_are_kept(smollm2_tokenizer, tmp_path):
    data = module(smollm2_tokenizer, write_jsonl(tmp_path / "train.jsonl", CHATS), validation_file=str(write_jsonl(tmp_path / "val.jsonl", CHATS[1:])), val_size=200)
    data.setup("fit")
    assert (len(data.train_dataset), len(data.val_dataset)) == (3, 2)
    held = module(smollm2_tokenizer, tmp_path / "train.jsonl", val_size=1)
    held.setup("fit")
    assert (len(held.train_dataset), len(held.val_dataset)) == (2, 1)


# --- bad input ------------------------------------------------------------------------------------


def refusal(tokenizer, path: Path, **kwargs) -> str:
    with pytest.raises(DataFileError) as error:
        module(tokenizer, path, **kwargs).setup("fit")
    return str(error.value)


CHAT_EXPECTED = "expected rows with messages: a list of {role, content} turns (roles system, user, assistant; content a string)"


def test_a_missing_file_is_named(smollm2_tokenizer, tmp_path):
    assert refusal(smollm2_tokenizer, tmp_path / "nope.jsonl") == (
        f"{tmp_path / 'nope.jsonl'}: no such file; expected a CSV, TSV, JSON, JSONL or Parquet file, a dataset folder, or a Hugging Face Hub dataset id; "
        "check the path (relative paths start where the command runs, or at data.dir when set)"
    )


def test_an_unknown_field_lists_the_fields_found(smollm2_tokenizer, tmp_path):
    path = write_jsonl(tmp_path / "qa.jsonl", [{"question": "q", "answer": "a"}])
    assert refusal(smollm2_tokenizer, path) == (
        f"{path}: no field 'instruction' (fields: question, answer); name the right one with data.instruction_field=<field>, "
        "or give a messages field for chat rows; expected rows with the string fields instruction and output (and optionally input); "
        "other names: data.instruction_field, data.input_field, data.output_field"
    )
    assert refusal(smollm2_tokenizer, path, instruction_field="question").startswith(f"{path}: no field 'output' (fields: question, answer)")


@pytest.mark.parametrize(
    ("turns", "problem"),
    [
        ([{"role": "user", "content": "Hi"}, {"role": "bot", "content": "Hello"}], "turn 2 has the role 'bot'; the roles are system, user, assistant"),
        ([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}], "no assistant turn: nothing to learn; give each row at least one assistant turn"),
        ([{"role": "user", "content": "Hi"}, {"role": "assistant", "content": None}], "turn 2 (assistant) has content null, not a string"),
        ([{"role": "assistant", "content": "Hello"}, {"role": "user", "content": "Hi"}], "the conversation opens with a assistant turn; it must open with a user turn (after an optional system turn)"),
        ([{"role": "user", "content": "Hi"}, {"role": "system", "content": "Be brief."}, {"role": "assistant", "content": "Hello"}], "turn 2 is a system turn; only the first turn may be"),
    ],
    ids=["unknown role", "no assistant turn", "content not a string", "assistant first", "system later"],
)
def test_a_bad_chat_row_is_named_by_row_and_turn(smollm2_tokenizer, tmp_path, turns, problem):
    path = write_jsonl(tmp_path / "chats.jsonl", [CHATS[1], {"messages": turns}, CHATS[2]])
    assert refusal(smollm2_tokenizer, path) == f"{path}, row 2: {problem}; {CHAT_EXPECTED}"


def test_content_that_is_a_list_is_refused(smollm2_tokenizer, tmp_path):
    rows = [{"messages": [{"role": "user", "content": ["Hi"]}, {"role": "assistant", "content": ["Hello"]}]}]
    path = write_jsonl(tmp_path / "chats.jsonl", rows)
    assert refusal(smollm2_tokenizer, path) == f"{path}, row 1: turn 1 (user) has content a list, not a string; {CHAT_EXPECTED}"


def test_rows_left_without_a_response_token_are_counted_and_refused(smollm2_tokenizer, tmp_path):
    path = write_jsonl(tmp_path / "chats.jsonl", CHATS)
    with pytest.raises(NoResponseTokenError) as error:
        module(smollm2_tokenizer, path, max_length=1).setup("fit")
    assert str(error.value) == (
        f"{path}: 3 of 3 rows keep no response token within data.max_length=1 (rows 1, 2, 3), so they would train on nothing; "
        "raise data.max_length or shorten their prompts"
    )


def test_bad_input_stops_the_run_before_the_model_loads(composer, tmp_path, monkeypatch):
    from lorasb.lightning.causal_lm import CausalLMModule
    from lorasb.train import run

    def never(self):
        raise AssertionError("the model loaded")

    monkeypatch.setattr(CausalLMModule, "build_model", never)
    path = write_jsonl(tmp_path / "chats.jsonl", [{"messages": [{"role": "user", "content": "Hi"}]}])
    cfg = composer(["task=custom/instruction", "model=smollm2_135m", f"data.train_file={path}", "data.val_size=0"], tmp_path)
    with pytest.raises(DataFileError, match=r"chats\.jsonl, row 1: no assistant turn"):
        run(cfg)


def test_a_template_string_without_the_instruction_is_refused_by_the_config_check(compose):
    from lorasb.config import config_problems

    problems = config_problems(compose("task=custom/instruction", "model=smollm2_135m", "data.train_file=chats.jsonl", "data.template='Q: {question}'"))
    assert problems == ["data.template=Q: {question}: expected auto, alpaca, chat or a template string holding {instruction} (and optionally {input})"]
