"""The training guard: non-finite losses and gradients stop a run, divergence stops and marks it, at one read-back per window."""

import logging
import sys

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from torch import nn
from torch.utils.data import DataLoader

from lorasb.lightning.guard import TrainingGuard


class ScriptedLoss(L.LightningModule):
    """A one-weight module whose training loss at step k (from 0) is ``losses[k]`` exactly (its lr is 0)."""

    def __init__(self, losses: list[float], val_losses: list[float] = ()):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(()))
        self.losses, self.val_losses = losses, list(val_losses)
        self.validations = 0

    def training_step(self, batch, batch_idx):
        return self.weight * self.losses[self.global_step]

    def validation_step(self, batch, batch_idx):
        self.log("val/loss", self.weight * self.val_losses[self.validations])

    def on_validation_epoch_end(self):
        self.validations += 1

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.0)

    def train_dataloader(self):
        return DataLoader(torch.zeros(4, 1), batch_size=1)

    def val_dataloader(self):
        return DataLoader(torch.zeros(1, 1), batch_size=1)


def fit(module, tmp_path, guard, epochs=3, **kwargs):
    trainer = L.Trainer(
        max_epochs=epochs, callbacks=[guard, *kwargs.pop("callbacks", [])], default_root_dir=tmp_path, logger=False,
        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0, enable_checkpointing=bool(kwargs.pop("checkpoints", False)),
        limit_val_batches=1 if module.val_losses else 0,
        **kwargs,
    )
    trainer.fit(module)
    return trainer


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_a_non_finite_loss_stops_the_run_and_keeps_the_last_checkpoint(tmp_path, bad):
    checkpoint = ModelCheckpoint(dirpath=tmp_path / "checkpoints", filename="last", monitor=None, enable_version_counter=False)
    losses = [1.0] * 5 + [bad] + [1.0] * 6  # step 6 (counted from 1) is bad, in the second epoch
    with pytest.raises(FloatingPointError) as caught:
        fit(ScriptedLoss(losses), tmp_path, TrainingGuard(check_every=3), callbacks=[checkpoint], checkpoints=True)
    assert str(caught.value) == (
        f"the training loss is {bad} at step 6; lower optim.lr, use trainer.precision=32-true or set trainer.gradient_clip_val"
    )
    assert torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=False)["global_step"] == 4  # the first epoch's


def test_a_non_finite_gradient_stops_the_run(tmp_path):
    class NanGradient(ScriptedLoss):
        def training_step(self, batch, batch_idx):
            if self.global_step != 1:
                return self.weight * 1.0
            return self.weight + torch.sqrt(self.weight - self.weight.detach())  # 1 forward, an infinite gradient

    with pytest.raises(FloatingPointError, match=r"^the gradient norm is inf at step 2 \(training loss 1\); lower optim.lr"):
        fit(NanGradient([1.0] * 12), tmp_path, TrainingGuard(check_every=4))


def test_losses_are_read_back_once_per_window(tmp_path, monkeypatch):
    transfers, cpu = [], torch.Tensor.cpu

    def counted(tensor, *args, **kwargs):
        if sys._getframe(1).f_globals["__name__"] == "lorasb.lightning.guard":
            transfers.append(tensor.shape)
        return cpu(tensor, *args, **kwargs)

    monkeypatch.setattr(torch.Tensor, "cpu", counted)
    trainer = fit(ScriptedLoss([1.0] * 8), tmp_path, TrainingGuard(check_every=3), epochs=2)
    assert trainer.global_step == 8
    # windows end at steps 3, 4 (epoch end), 7, 8 (epoch end); each reads the window's losses and gradient norms at once
    assert transfers == [torch.Size([6]), torch.Size([2]), torch.Size([6]), torch.Size([2])]


def test_a_climbing_training_loss_stops_and_marks_the_run(tmp_path, caplog):
    guard = TrainingGuard(check_every=2, divergence_factor=10)
    losses = [0.5, 0.6, 0.7, 20.0] + [1e6] * 8
    with caplog.at_level(logging.WARNING, logger="lorasb.lightning.guard"):
        trainer = fit(ScriptedLoss(losses), tmp_path, guard)
    assert trainer.global_step == 4
    assert guard.diverged == {
        "step": 4, "what": "training loss", "value": pytest.approx(10.35), "start": 0.5, "factor": 10,
        "hint": "lower optim.lr, use trainer.precision=32-true or set trainer.gradient_clip_val",
    }
    assert [r.getMessage() for r in caplog.records] == [
        "the run diverged: the training loss is 10.35 at step 4, more than 10× its start (0.5); training stops here. "
        "Lower optim.lr, use trainer.precision=32-true or set trainer.gradient_clip_val"
    ]


def test_a_healthy_run_is_not_marked(tmp_path):
    guard = TrainingGuard(check_every=2)
    trainer = fit(ScriptedLoss([1.0, 4.0, 9.0, 0.5] * 3, val_losses=[1.0, 9.0, 2.0]), tmp_path, guard)
    assert trainer.global_step == 12 and guard.diverged is None


def test_a_climbing_validation_loss_stops_and_marks_the_run(tmp_path):
    guard = TrainingGuard(check_every=2)
    trainer = fit(ScriptedLoss([1.0] * 20, val_losses=[0.7, 0.8, 7.5, 0.7, 0.7]), tmp_path, guard, epochs=5)
    assert trainer.global_step == 12  # stopped after the third of five epochs
    assert guard.diverged["what"] == "val/loss" and guard.diverged["value"] == pytest.approx(7.5)
    assert guard.diverged["start"] == pytest.approx(0.7)
