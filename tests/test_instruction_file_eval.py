"""Scoring a held-out instruction file (eval.file): the loss and perplexity of its responses,
exact and contains matches of generated answers, the predictions written per row."""

import json
import math

import pytest
import torch
from helpers.tiny_models import tiny_model

from lorasb.eval import instruction_file
from lorasb.data import InstructionFileDataModule
from lorasb.data.instruction_files import RowFormat
from lorasb.eval import evaluate_sets
from lorasb.eval.instruction_file import InstructionFile

CHATS = [
    {"messages": [
        {"role": "user", "content": "What is 4 + 4?"}, {"role": "assistant", "content": "8"},
        {"role": "user", "content": "And doubled?"}, {"role": "assistant", "content": "16"},
    ]},
    {"messages": [{"role": "user", "content": "What is 1 + 1?"}, {"role": "assistant", "content": "2"}]},
    {"messages": [{"role": "user", "content": "Name a colour."}, {"role": "assistant", "content": "Blue."}]},
]  # fmt: skip


@pytest.fixture
def held_out(tmp_path):
    path = tmp_path / "held_out.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in CHATS))
    return path


@pytest.fixture(scope="module")
def model(smollm2_tokenizer):
    return tiny_model("llama", vocab_size=len(smollm2_tokenizer)).eval()


def test_the_loss_is_the_mean_over_every_response_token_of_the_file(model, smollm2_tokenizer, held_out, tmp_path):
    spec = InstructionFile(str(held_out), "validation", RowFormat(), "chat", 256)
    results = evaluate_sets(model, smollm2_tokenizer, [], None, tmp_path / "out", file=spec, progress=False)["held_out"]
    data = InstructionFileDataModule(task="instruction", tokenizer=smollm2_tokenizer, train_file=str(held_out), val_size=0, max_length=256)
    data.setup("fit")
    total, tokens = 0.0, 0
    with torch.no_grad():
        for example in data.train_dataset:
            labels = torch.tensor([example["labels"]])
            count = int((labels[:, 1:] != -100).sum())
            total += float(model(input_ids=torch.tensor([example["input_ids"]]), labels=labels).loss) * count
            tokens += count
    answers = [turn["content"] + "<|im_end|>" for row in CHATS for turn in row["messages"] if turn["role"] == "assistant"]
    assert results["tokens"] == tokens == sum(len(smollm2_tokenizer(text, add_special_tokens=False)["input_ids"]) for text in answers)
    assert results["loss"] == pytest.approx(total / tokens, rel=1e-5)
    assert results["perplexity"] == pytest.approx(math.exp(total / tokens), rel=1e-5)
    assert results["count"] == 3 and "exact_match" not in results
    written = json.loads((tmp_path / "out" / "eval.json").read_text())
    assert written["results"]["held_out"] == results and written["setup"]["file"]["source"] == str(held_out)
    records = [json.loads(line) for line in (tmp_path / "out" / "predictions" / "held_out.jsonl").read_text().splitlines()]
    assert [r["row"] for r in records] == [1, 2, 3] and sum(r["tokens"] for r in records) == tokens


def test_answers_are_matched_exactly_or_by_containment(model, smollm2_tokenizer, held_out, tmp_path, monkeypatch):
    asked = {}

    def answer(model, tokenizer, prompts, max_new_tokens, batch_size, stop_strings, **kwargs):
        asked.update(prompts=prompts, max_new_tokens=max_new_tokens, **kwargs)
        return ["16<|im_end|>", " 2 ", "It is blue."]

    monkeypatch.setattr(instruction_file, "generate", answer)
    spec = InstructionFile(str(held_out), "validation", RowFormat(), "chat", 256, ("exact", "contains"))
    results = evaluate_sets(model, smollm2_tokenizer, [], None, tmp_path, file=spec, progress=False)["held_out"]
    assert (results["exact_match"], results["contains"]) == (pytest.approx(1 / 3), 1.0)
    # each row's last user turn, after the earlier turns, as the chat template asks for an answer
    assert asked["prompts"][0].endswith("<|im_start|>assistant\n8<|im_end|>\n<|im_start|>user\nAnd doubled?<|im_end|>\n<|im_start|>assistant\n")
    assert asked["stop_ids"] == [smollm2_tokenizer.convert_tokens_to_ids("<|im_end|>")] and asked["add_special_tokens"] is False
    assert asked["max_new_tokens"] == 256
    records = [json.loads(line) for line in (tmp_path / "predictions" / "held_out.jsonl").read_text().splitlines()]
    assert [(r["reference"], r["exact"], r["contains"]) for r in records] == [("16", False, True), ("2", True, True), ("Blue.", False, True)]


def test_nothing_to_evaluate_is_refused(model, smollm2_tokenizer, tmp_path):
    with pytest.raises(ValueError, match=r"^nothing to evaluate: name evaluation sets \(eval.sets=\[gsm8k\]\) or an instruction file \(eval.file=<file>\)$"):
        evaluate_sets(model, smollm2_tokenizer, [], None, tmp_path)
