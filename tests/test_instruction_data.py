"""Instruction data: the Alpaca prompt, the response-only label mask, truncation, the data module."""

import json

import datasets
import pytest
import torch

from lorasb.data import INSTRUCTION_SETS, InstructionDataModule, encode_examples, fit_to_length
from lorasb.data.instruction import IGNORE_INDEX
from lorasb.data.prompts import alpaca_prompt
from lorasb.data.templates import ALPACA


def alpaca_pair(spec, row):
    """(prompt, response) of a row of a paper set, as the Alpaca template renders it."""
    prompt, response = ALPACA.segments(spec.conversation(row))
    return prompt.text, response.text

# --- the prompt ---------------------------------------------------------------------------------


def test_alpaca_prompt_without_input():
    prompt = alpaca_prompt("  What is 2 + 3?\n")
    assert prompt == (
        "Below is an instruction that describes a task. Write a response that appropriately completes the request.\n\n"
        "### Instruction:\nWhat is 2 + 3?\n\n### Response:\n"
    )


def test_alpaca_prompt_with_input_and_lead():
    prompt = alpaca_prompt("Translate.", "Bonjour", lead="Let's think step by step.")
    assert "paired with an input that provides further context" in prompt
    assert "### Instruction:\nTranslate.\n\n### Input:\nBonjour\n\n" in prompt
    assert prompt.endswith("### Response: Let's think step by step.")
    assert "### Input:" not in alpaca_prompt("Translate.", "   ")


# --- truncation ---------------------------------------------------------------------------------

P, R = list(range(100, 110)), list(range(200, 206))  # a 10-token prompt, a 6-token response


@pytest.mark.parametrize(
    ("max_length", "keep_first", "prompt", "response"),
    [
        (16, False, P, R),  # fits: untouched
        (30, True, P, R),
        (12, False, P[-6:], R),  # the prompt gives up its start, the response stays whole
        (12, True, P[:1] + P[-5:], R),  # ... but keeps its first token (BOS)
        (8, False, P[-4:], R[:4]),  # the prompt keeps half; the response loses its end
        (8, True, P[:1] + P[-3:], R[:4]),
    ],
)
def test_fit_to_length(max_length, keep_first, prompt, response):
    kept_prompt, kept_response = fit_to_length(P, R, max_length, keep_first)
    assert (kept_prompt, kept_response) == (prompt, response)
    assert len(kept_prompt) + len(kept_response) <= max_length


def test_short_prompt_leaves_the_room_to_the_response():
    kept_prompt, kept_response = fit_to_length([1, 2], list(range(20)), 10, keep_first=False)
    assert kept_prompt == [1, 2] and kept_response == list(range(8))


# --- encoding on the real tokenizer and data ----------------------------------------------------


@pytest.fixture(scope="module")
def metamath_rows(shared_data):
    return json.loads((shared_data / "metamathqa" / "train.json").read_text())[:50]


def test_only_the_response_and_eos_carry_loss(smollm2_tokenizer, metamath_rows):
    spec = INSTRUCTION_SETS["metamath"]
    pairs = [alpaca_pair(spec, row) for row in metamath_rows]
    for (prompt, response), example in zip(pairs, encode_examples(smollm2_tokenizer, pairs, 1024)):
        ids, labels = example["input_ids"], example["labels"]
        assert len(ids) == len(labels) == len(example["attention_mask"])
        start = labels.index(next(t for t in labels if t != IGNORE_INDEX))
        assert all(t == IGNORE_INDEX for t in labels[:start])
        assert labels[start:] == ids[start:]
        assert smollm2_tokenizer.decode(ids[:start]) == prompt
        assert ids[-1] == smollm2_tokenizer.eos_token_id
        assert smollm2_tokenizer.decode(labels[start:-1]) == response
        assert response.rstrip().endswith(response.rstrip().split("The answer is: ")[-1])


def test_truncation_keeps_the_response(smollm2_tokenizer):
    question = "A farmer has " + ", ".join(f"{i} sheep in field {i}" for i in range(1, 30)) + ". How many sheep are there?"
    pair = (alpaca_prompt(question), "Adding the fields gives 435 sheep.\nThe answer is: 435")
    full = encode_examples(smollm2_tokenizer, [pair], 4096)[0]
    response = [t for t in full["labels"] if t != IGNORE_INDEX]
    assert response[-1] == smollm2_tokenizer.eos_token_id
    max_length = len(full["input_ids"]) - 20  # the prompt can give up 20 tokens
    cut = encode_examples(smollm2_tokenizer, [pair], max_length)[0]
    assert len(cut["input_ids"]) == len(cut["labels"]) == max_length
    assert [t for t in cut["labels"] if t != IGNORE_INDEX] == response  # whole, EOS included
    kept_prompt = smollm2_tokenizer.decode(cut["input_ids"][: max_length - len(response)])
    assert kept_prompt.endswith("How many sheep are there?\n\n### Response:\n")
    assert not kept_prompt.startswith("Below is an instruction")


def test_a_response_longer_than_the_budget_loses_its_end(smollm2_tokenizer):
    pair = (alpaca_prompt("Count to one hundred."), " ".join(str(i) for i in range(1, 101)))
    cut = encode_examples(smollm2_tokenizer, [pair], 64)[0]
    labels = [t for t in cut["labels"] if t != IGNORE_INDEX]
    assert len(cut["input_ids"]) == 64 and len(labels) == 32  # the prompt keeps half of the budget
    assert smollm2_tokenizer.eos_token_id not in labels  # a cut response does not learn to stop
    assert smollm2_tokenizer.decode(labels).startswith("1 2 3")


def test_commonsense_pairs_use_the_input_field():
    spec = INSTRUCTION_SETS["commonsense"]
    row = {"instruction": "Pick one.", "input": "Context here", "output": "the correct answer is answer2", "answer": "answer2"}
    prompt, response = alpaca_pair(spec, row)
    assert "### Input:\nContext here" in prompt and response == "the correct answer is answer2"
    assert "### Input:" not in alpaca_pair(spec, {**row, "input": ""})[0]


# --- the data module ------------------------------------------------------------------------------


def make_module(tokenizer, root, **kwargs):
    options = {"task": "metamath", "tokenizer": tokenizer, "dir": root, "max_length": 128, "batch_size": 4, "train_limit": 60, "val_size": 12}
    return InstructionDataModule(**(options | kwargs))


def test_data_module_holds_out_rows(smollm2_tokenizer, shared_data):
    module = make_module(smollm2_tokenizer, shared_data)
    module.setup("fit")
    assert len(module.train_dataset) == 48 and len(module.val_dataset) == 12
    train = {tuple(e["input_ids"]) for e in module.train_dataset}
    val = {tuple(e["input_ids"]) for e in module.val_dataset}
    assert not train & val
    again = make_module(smollm2_tokenizer, shared_data)
    again.setup("fit")
    assert [e["input_ids"] for e in again.val_dataset] == [e["input_ids"] for e in module.val_dataset]


def test_collate_pads_right_with_ignored_labels(smollm2_tokenizer, shared_data):
    module = make_module(smollm2_tokenizer, shared_data)
    batch = next(iter(module.val_dataloader()))
    lengths = batch["attention_mask"].sum(1)
    assert batch["input_ids"].shape == batch["labels"].shape == (4, int(lengths.max()))
    for row, length in enumerate(lengths.tolist()):
        assert (batch["labels"][row, length:] == IGNORE_INDEX).all()
        assert (batch["input_ids"][row, length:] == smollm2_tokenizer.pad_token_id).all()
        assert batch["attention_mask"][row, :length].all()
    assert batch["labels"].dtype == torch.long


def test_commonsense_module_reads_the_shared_file(smollm2_tokenizer, shared_data):
    module = make_module(smollm2_tokenizer, shared_data, task="commonsense", val_size=0)
    module.setup("fit")
    assert len(module.train_dataset) == 60 and module.val_dataloader() == []
    example = module.train_dataset[0]
    answer = smollm2_tokenizer.decode([t for t in example["labels"] if t != IGNORE_INDEX], skip_special_tokens=True)
    assert answer.startswith("the correct answer is ")


def test_init_loader_draws_from_the_training_rows(smollm2_tokenizer, shared_data):
    module = make_module(smollm2_tokenizer, shared_data)
    batches = list(module.init_dataloader(6, 3))
    assert [len(b["input_ids"]) for b in batches] == [3, 3]
    assert all(set(b) == {"input_ids", "attention_mask", "labels"} for b in batches)


def test_errors_name_the_problem(smollm2_tokenizer, shared_data, tmp_path):
    with pytest.raises(ValueError, match="unknown instruction task 'foo'; choose one of: metamath, commonsense"):
        make_module(smollm2_tokenizer, shared_data, task="foo")
    with pytest.raises(FileNotFoundError, match=r"metamathqa/train\.json.*data\.dir"):
        make_module(smollm2_tokenizer, tmp_path).setup("fit")
    with pytest.raises(ValueError, match="raise data.train_limit or lower data.val_size"):
        make_module(smollm2_tokenizer, shared_data, train_limit=12).setup("fit")


def test_hub_copy_is_used_without_a_data_dir(smollm2_tokenizer, monkeypatch):
    rows = [{"query": f"What is {i} + 1?", "response": f"The answer is: {i + 1}", "type": "GSM_AnsAug", "original_question": ""} for i in range(20)]
    calls = []

    def load_dataset(path, name=None, split=None, **kwargs):
        calls.append((path, name, split))
        return datasets.Dataset.from_list(rows)

    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    module = make_module(smollm2_tokenizer, None, train_limit=None, val_size=5)
    module.setup("fit")
    assert calls == [("meta-math/MetaMathQA", None, "train")]
    assert len(module.train_dataset) == 15


def test_unreachable_hub_points_to_data_dir(smollm2_tokenizer, monkeypatch):
    def offline(*args, **kwargs):
        raise ConnectionError("no network")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(RuntimeError, match=r"could not download MetaMathQA .*data\.dir=<root> holding <root>/metamathqa/train\.json"):
        make_module(smollm2_tokenizer, None).setup("fit")


def test_shortened_examples_are_counted_and_reported(smollm2_tokenizer, tmp_path, caplog):
    """Nothing is dropped: each example that had to be cut to data.max_length is counted under its rule."""
    rows = [
        {"query": "What is 1 + 1?", "response": "The answer is: 2"},  # fits
        {"query": "Add these: " + " + ".join(["1"] * 60), "response": "The answer is: 60"},  # the prompt gives up its start
        {"query": "Count to fifty.", "response": " ".join(str(i) for i in range(1, 51)) + "\nThe answer is: 50"},  # the response is cut
        {"query": "Say nothing.", "response": ""},  # an empty response
    ]
    (tmp_path / "metamathqa").mkdir()
    (tmp_path / "metamathqa" / "train.json").write_text(json.dumps(rows * 2))
    caplog.set_level("INFO", logger="lorasb.data.instruction")
    module = make_module(smollm2_tokenizer, tmp_path, max_length=80, train_limit=None, val_size=0)
    module.setup("fit")
    assert len(module.train_dataset) == 8
    assert module.fit_counts == {"training": {"whole": 2, "prompt shortened": 2, "response cut": 2, "empty response": 2}}
    assert [(record.levelname, record.getMessage()) for record in caplog.records] == [
        ("WARNING", "MetaMathQA training rows: 2 of 8 examples are longer than data.max_length=80 even with their prompt "
                    "shortened, so their response lost its end (the answer and EOS); raise data.max_length to keep it"),
        ("WARNING", "MetaMathQA training rows: 2 of 8 examples have an empty response (only EOS is learnt)"),
        ("INFO", "MetaMathQA training rows: 2 of 8 examples gave up the start of their prompt to keep their response "
                 "whole within data.max_length=80"),
    ]
