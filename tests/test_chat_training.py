"""A JSONL of chat conversations (GSM8K questions and worked answers, some two exchanges long)
trains SmolLM2-135M-Instruct with its own chat template, and lorasb.evaluate scores a held-out file."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lorasb.train import run

pytestmark = pytest.mark.slow  # SmolLM2 trains; lorasb.evaluate runs as a process

REPO = Path(__file__).resolve().parents[1]
QUIET = ["++trainer.enable_progress_bar=false", "++trainer.enable_model_summary=false"]
RANK = 8
SYSTEM = "Solve the problem step by step; end with the answer after ####."


def chats(rows: list[dict]) -> list[dict]:
    """GSM8K rows as conversations: every third one holds two exchanges, the others one."""
    conversations, index = [], 0
    while index < len(rows):
        count = 2 if len(conversations) % 3 == 2 and index + 1 < len(rows) else 1
        turns = [{"role": "system", "content": SYSTEM}]
        for row in rows[index : index + count]:
            turns += [{"role": "user", "content": row["question"]}, {"role": "assistant", "content": row["answer"]}]
        conversations.append({"messages": turns})
        index += count
    return conversations


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


@pytest.fixture(scope="module")
def chat_run(composer, tmp_path_factory, shared_data):
    """The first 32 short GSM8K training rows as 24 chats, one epoch of 6 steps; the next 8 as the validation file."""
    lines = (shared_data / "gsm8k" / "train.jsonl").read_text().splitlines()[:400]
    rows = [row for row in map(json.loads, lines) if len(row["question"]) + len(row["answer"]) < 400][:40]
    folder = tmp_path_factory.mktemp("chat")
    train = write_jsonl(folder / "train.jsonl", chats(rows[:32]))
    held_out = write_jsonl(folder / "held_out.jsonl", chats(rows[32:40]))
    cfg = composer(
        [
            "task=custom/instruction",
            "model=smollm2_135m",
            "model.target_modules=all-linear",
            "trainer=cpu",
            "logger=csv",
            *QUIET,
            f"data.train_file={train}",
            f"data.validation_file={held_out}",
            "data.max_length=320",
            "data.batch_size=4",
            f"rank={RANK}",
            "init.num_samples=4",
            "init.batch_size=4",
            "trainer.max_epochs=1",
        ],
        folder / "run",
    )
    return folder, run(cfg)


def test_the_chat_template_is_learnt_and_the_validation_loss_falls(chat_run):
    folder, summary = chat_run
    before, after = summary["before"]["val/loss"], summary["final"]["val/loss"]
    print(f"GSM8K chats, validation loss: {before:.4f} -> {after:.4f}")
    assert after < before
    stats = json.loads((folder / "run" / "init_stats.json").read_text())
    assert len(stats["target_modules"]) == 30 * 7  # all-linear: q/k/v/o/gate/up/down of 30 blocks; the tied lm_head left out
    assert summary["parameters"]["trainable"] == 30 * 7 * RANK**2


def test_lorasb_evaluate_scores_a_held_out_instruction_file(chat_run, tmp_path):
    folder, _ = chat_run
    held_out = write_jsonl(tmp_path / "scored.jsonl", [json.loads(line) for line in (folder / "held_out.jsonl").read_text().splitlines()][:2])
    command = [
        sys.executable, "-m", "lorasb.evaluate", f"adapter={folder / 'run' / 'adapter'}", "model.dtype=float32", "device=cpu",
        "eval.sets=[]", f"eval.file={held_out}", "eval.match=[exact,contains]", "eval.max_new_tokens=16", f"hydra.run.dir={tmp_path / 'eval'}",
    ]  # fmt: skip
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    written = json.loads((tmp_path / "eval" / "eval.json").read_text())
    scored = written["results"]["scored"]
    print(f"held-out file: loss {scored['loss']:.4f}, perplexity {scored['perplexity']:.2f}, exact {scored['exact_match']}, contains {scored['contains']}")
    assert scored["count"] == 2 and scored["perplexity"] > 1 and scored["tokens"] > 50
    records = [json.loads(line) for line in (tmp_path / "eval" / "predictions" / "scored.jsonl").read_text().splitlines()]
    assert [r["row"] for r in records] == [1, 2]
    assert all(r["prompt"].endswith("<|im_start|>assistant\n") and r["reference"].split("####")[-1].strip().isdigit() for r in records)
    assert scored["contains"] == sum(r["contains"] for r in records) / 2
