"""A run killed mid-epoch and rerun with the same command ends as an uninterrupted run does."""

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from lorasb.train import run

pytestmark = pytest.mark.slow  # all-MiniLM-L6-v2 runs through lorasb.train

TESTS = Path(__file__).resolve().parent
# 96 MRPC rows in batches of 16: 6 steps an epoch, 12 in all; last.ckpt every 4 steps and at
# every epoch's end (steps 4, 6, 8, 12). Dropout stays on (MiniLM's 0.1), so its draws must repeat.
COMMAND = [
    "model=minilm", "task=glue/mrpc", "trainer=cpu", "data.train_limit=96", "data.val_limit=32", "data.batch_size=16",
    "data.max_length=32", "init.num_samples=8", "init.batch_size=8", "optim.lr=1e-3", "trainer.max_epochs=2",
    "callbacks.last_checkpoint.every_n_steps=4", "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false",
]  # fmt: skip


def train(run_dir: Path, shared_data: Path, *extra: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(TESTS), os.environ.get("PYTHONPATH")]))}
    command = [sys.executable, "-m", "lorasb.train", *COMMAND, f"data.dir={shared_data}", f"hydra.run.dir={run_dir}", *extra]
    return subprocess.run(command, capture_output=True, text=True, timeout=900, env=env)


def csv_rows(run_dir: Path) -> list[dict]:
    with open(run_dir / "logs" / "metrics.csv", newline="") as file:
        return list(csv.DictReader(file))


def trained(run_dir: Path) -> dict[str, torch.Tensor]:
    state = torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)["state_dict"]
    return {key: value for key, value in state.items() if key.startswith("model.")}


@pytest.mark.slow
def test_a_killed_run_resumes_to_the_uninterrupted_result(tmp_path, shared_data):
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    assert train(whole, shared_data).returncode == 0
    # SIGKILL after step 9: the latest checkpoint is step 8's, two batches into the second epoch
    died = train(killed, shared_data, "+callbacks.kill._target_=helpers.kill_switch.KillAt", "+callbacks.kill.step=9")
    assert died.returncode == -9, died.stderr[-3000:]
    assert torch.load(killed / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)["global_step"] == 8
    resumed = train(killed, shared_data)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "initialised in" not in resumed.stderr  # the init came from the checkpoint

    expected, got = (json.loads((folder / "metrics.json").read_text()) for folder in (whole, killed))
    for stage in ("before", "final", "best"):
        assert got[stage] == expected[stage], stage
    assert got["steps"] == expected["steps"] == 12
    assert got["init_seconds"] > 0 and got["train_seconds"] > 0  # kept over the resume
    for key, value in trained(whole).items():
        assert torch.equal(trained(killed)[key], value), key

    # one log: every training step once, with the uninterrupted run's loss
    losses = lambda rows: [(row["step"], row["train/loss"]) for row in rows if row.get("train/loss")]  # noqa: E731
    assert losses(csv_rows(killed)) == losses(csv_rows(whole))
    assert [p.name for p in (killed / "logs").iterdir() if p.is_dir()] == []


def test_the_initialisation_is_saved_before_the_first_step(composer, tmp_path, shared_data, monkeypatch):
    """A run that dies at its first step leaves a last.ckpt with the initialised adapters."""
    from lorasb.lightning.classification import ClassificationModule

    def crash(self, batch, batch_idx):
        raise RuntimeError("simulated crash")

    monkeypatch.setattr(ClassificationModule, "training_step", crash)
    overrides = [*COMMAND, f"data.dir={shared_data}", "validate_before=false"]
    with pytest.raises(RuntimeError, match="simulated crash"):
        run(composer(overrides, tmp_path))
    checkpoint = torch.load(tmp_path / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert checkpoint["global_step"] == 0 and bool(checkpoint["state_dict"]["initialized"])
    # R = diag(S_r)/s: diagonal, in proportion to the singular values init_stats.json records
    stats = json.loads((tmp_path / "init_stats.json").read_text())["layers"]
    for name, layer in stats.items():
        R = checkpoint["state_dict"][f"model.{name}.lora_R"]
        S = torch.tensor(layer["singular_values"])
        assert torch.equal(R, torch.diag(R.diagonal())), name
        assert torch.allclose(R.diagonal() / R[0, 0], S / S[0], rtol=1e-5), name

def test_checkpoint_intervals_must_be_positive(composer, tmp_path, shared_data):
    with pytest.raises(Exception, match="every_n_steps must be positive or null, got 0"):
        run(composer([*COMMAND, f"data.dir={shared_data}", "callbacks.last_checkpoint.every_n_steps=0"], tmp_path))


@pytest.mark.parametrize(
    "every, saved",
    [
        (["callbacks.last_checkpoint.every_n_steps=4"], [0, 4, 6, 8, 12, 12]),  # start, steps 4 and 8, the epochs' ends
        (["callbacks.last_checkpoint.every_minutes=1e-9"], [0, *range(1, 7), 6, *range(7, 13), 12]),  # overdue at every step
        ([], [0, 6, 12]),
    ],
    ids=["every 4 steps", "every few minutes", "at epoch ends"],
)
def test_last_checkpoint_is_written_at_its_intervals(every, saved, composer, tmp_path, shared_data, monkeypatch):
    from lorasb.lightning.last_checkpoint import LastCheckpoint

    steps, save = [], LastCheckpoint._save
    monkeypatch.setattr(LastCheckpoint, "_save", lambda self, trainer: (steps.append(trainer.global_step), save(self, trainer)))
    overrides = [o for o in COMMAND if not o.startswith("callbacks.")]
    run(composer([*overrides, *every, f"data.dir={shared_data}", "validate_before=false"], tmp_path))
    assert steps == saved
