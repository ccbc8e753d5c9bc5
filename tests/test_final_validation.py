"""Every run that trained ends validated: a run stopped by trainer.max_steps inside an epoch, by
trainer.max_time, or with a validation interval that leaves a tail is validated once more after
its last optimizer step, and that validation is its ``final`` figure everywhere."""

import csv
import json
import logging

import pytest
import torch
from lightning.pytorch.callbacks import Timer

from lorasb.train import run

pytestmark = pytest.mark.slow  # each test trains all-MiniLM-L6-v2 for a few steps
MONITOR = "val/accuracy"
# RTE's fixture: 4 training rows, one per batch, so an epoch is 4 optimizer steps (method=lora: no
# gradient estimate to wait for; the final validation is the same for every method)
TINY = [
    "model=minilm", "task=glue/rte", "method=lora", "trainer=cpu", "logger=csv", "data.batch_size=1", "data.max_length=32",
    "init.num_samples=2", "init.batch_size=2", "optim.lr=1e-3", "++trainer.num_sanity_val_steps=0",
    "++trainer.enable_progress_bar=false", "++trainer.enable_model_summary=false",
]  # fmt: skip


def logged_validations(run_dir) -> list[dict]:
    """The CSV log's validation rows during training (step and figures), in order."""
    with open(run_dir / "logs" / "metrics.csv") as file:
        rows = [row for row in csv.DictReader(file) if row.get(MONITOR)]
    return [{"step": int(row["step"]), **{k: float(v) for k, v in row.items() if k.startswith("val/") and v}} for row in rows]


def check_ends_validated(run_dir, summary: dict, steps: int, caplog) -> None:
    written = json.loads((run_dir / "metrics.json").read_text())
    assert written == json.loads(json.dumps(summary))
    assert written["steps"] == steps
    final, best, before = written["final"], written["best"], written["before"]
    assert {"val/accuracy", "val/loss"} <= set(final) == set(best)
    validations = logged_validations(run_dir)
    # the CSV log holds the validation before training (step 0) and the ones during it; the last is at the last step
    during = validations[1:]
    assert during and during[-1]["step"] == steps - 1  # Lightning logs an in-fit validation at the step it follows
    assert {k: v for k, v in during[-1].items() if k != "step"} == pytest.approx(final)
    assert best[MONITOR] == pytest.approx(max(v[MONITOR] for v in during))
    assert best["val/loss"] == pytest.approx(min(v["val/loss"] for v in during))
    for key in ("final", "best"):  # every logger has them under their own keys
        with open(run_dir / "logs" / "metrics.csv") as file:
            rows = [row for row in csv.DictReader(file) if row.get(f"{key}/{MONITOR}")]
        assert [float(row[f"{key}/{MONITOR}"]) for row in rows] == pytest.approx([written[key][MONITOR]])
    checkpoint = torch.load(run_dir / "checkpoints" / "best.ckpt", weights_only=True, map_location="cpu")
    first_best = next(v for v in during if v[MONITOR] == max(w[MONITOR] for w in during))  # ties keep the earlier file
    assert checkpoint["global_step"] == first_best["step"] + 1
    states = [state for name, state in checkpoint["callbacks"].items() if name.startswith("ModelCheckpoint")]
    assert [float(state["best_model_score"]) for state in states] == pytest.approx([best[MONITOR]])
    assert (run_dir / "adapter" / "adapter_config.json").is_file()
    line = f"{MONITOR}: before {before[MONITOR]:.4f} → final {final[MONITOR]:.4f} (best {best[MONITOR]:.4f}"
    assert line in caplog.text
    assert "no validation ran during training" not in caplog.text


def test_a_run_stopped_by_max_steps_inside_an_epoch_ends_validated(composer, tmp_path, glue_fixtures, caplog):
    caplog.set_level(logging.INFO)
    cfg = composer([*TINY, f"data.dir={glue_fixtures}", "trainer.max_epochs=3", "trainer.max_steps=6"], tmp_path)
    summary = run(cfg)
    check_ends_validated(tmp_path, summary, 6, caplog)
    assert [v["step"] for v in logged_validations(tmp_path)] == [0, 3, 5]  # before; epoch 1's end; step 6, inside epoch 2


def test_a_run_stopped_by_max_steps_in_its_first_epoch_ends_validated(composer, tmp_path, glue_fixtures, caplog):
    caplog.set_level(logging.INFO)
    cfg = composer([*TINY, f"data.dir={glue_fixtures}", "trainer.max_epochs=3", "trainer.max_steps=2"], tmp_path)
    summary = run(cfg)
    check_ends_validated(tmp_path, summary, 2, caplog)  # its only validation during training: best.ckpt is at step 2
    assert [v["step"] for v in logged_validations(tmp_path)] == [0, 1]


def test_a_validation_interval_leaving_a_tail_ends_validated(composer, tmp_path, glue_fixtures, caplog):
    caplog.set_level(logging.INFO)
    cfg = composer([*TINY, f"data.dir={glue_fixtures}", "trainer.max_epochs=1", "trainer.val_check_interval=3"], tmp_path)
    summary = run(cfg)
    check_ends_validated(tmp_path, summary, 4, caplog)
    assert [v["step"] for v in logged_validations(tmp_path)] == [0, 2, 3]


def test_a_finished_run_resumed_trains_and_validates_nothing_more(composer, tmp_path, glue_fixtures, caplog):
    """last.ckpt is written at the epoch's end, after the final validation, so the finished run it
    resumes already holds its final figures."""
    caplog.set_level(logging.INFO)
    overrides = [*TINY, f"data.dir={glue_fixtures}", "trainer.max_epochs=3", "trainer.max_steps=2"]
    first = run(composer(overrides, tmp_path))
    validations = logged_validations(tmp_path)
    again = run(composer(overrides, tmp_path))  # the same run directory: resumes from checkpoints/last.ckpt
    assert again["steps"] == 2 and again["final"] == first["final"] and again["best"] == first["best"]
    assert logged_validations(tmp_path) == validations
    check_ends_validated(tmp_path, again, 2, caplog)


class StepClock:
    """A clock for Lightning's Timer that reads 10 s per optimizer step taken, so that
    trainer.max_time stops a run at a known step."""

    seconds_per_step = 10

    def __init__(self):
        self.trainer = None

    def time_elapsed(self, timer, stage=None) -> float:
        return self.trainer.global_step * self.seconds_per_step if self.trainer is not None else 0.0


def test_a_run_stopped_by_max_time_ends_validated(composer, tmp_path, glue_fixtures, caplog, monkeypatch):
    caplog.set_level(logging.INFO)
    clock = StepClock()
    original_setup = Timer.setup

    def setup(timer, trainer, pl_module, stage):
        clock.trainer = trainer
        return original_setup(timer, trainer, pl_module, stage)

    monkeypatch.setattr(Timer, "setup", setup)
    monkeypatch.setattr(Timer, "time_elapsed", lambda timer, stage=None: clock.time_elapsed(timer, stage))
    # 25 s: the Timer stops the run after step 3, inside its first epoch of 4 steps
    cfg = composer([*TINY, f"data.dir={glue_fixtures}", "trainer.max_epochs=3", "trainer.max_time=00:00:00:25"], tmp_path)
    summary = run(cfg)
    check_ends_validated(tmp_path, summary, 3, caplog)
    assert [v["step"] for v in logged_validations(tmp_path)] == [0, 2]
