"""``checkpoints/last.ckpt``: what a run resumes from, written often enough that little is lost."""

from __future__ import annotations

import time
from pathlib import Path

import lightning as L
from lightning.pytorch.callbacks import Checkpoint


class LastCheckpoint(Checkpoint):
    """Writes ``<dirpath>/<filename>.ckpt`` as soon as training starts (the initialisation is done
    by then, so a run killed in its first epoch does not repeat it), at the end of every epoch,
    and every ``every_n_steps`` optimizer steps and ``every_minutes`` minutes of training
    (null: not on that count). A checkpoint taken mid-epoch resumes mid-epoch
    (:mod:`lorasb.data.resumable`). Lightning writes every file to a temporary name first, so a
    kill never leaves a half-written one in its place.
    """

    def __init__(self, dirpath: str | Path, filename: str = "last", every_n_steps: int | None = None, every_minutes: float | None = None):
        for name, value in (("every_n_steps", every_n_steps), ("every_minutes", every_minutes)):
            if value is not None and not value > 0:
                raise ValueError(f"{name} must be positive or null, got {value}")
        self.path = Path(dirpath) / f"{filename}.ckpt"
        self.every_n_steps = every_n_steps
        self.every_minutes = every_minutes
        self._saved_at, self._saved_step = time.monotonic(), -1

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._saved_at = time.monotonic()
        if trainer.global_step == 0:
            self._save(trainer)

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, batch_idx: int) -> None:
        step = trainer.global_step
        due = bool(self.every_n_steps) and step % self.every_n_steps == 0 and step != self._saved_step
        if self.every_minutes:
            overdue = time.monotonic() - self._saved_at >= 60 * self.every_minutes
            due = due or trainer.strategy.broadcast(overdue, src=0)  # every process saves, or none
        if due:
            self._save(trainer)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._save(trainer)

    def _save(self, trainer: L.Trainer) -> None:
        trainer.save_checkpoint(self.path)
        self._saved_at, self._saved_step = time.monotonic(), trainer.global_step
