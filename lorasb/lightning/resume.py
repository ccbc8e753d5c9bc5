"""A resumed run goes on exactly as the uninterrupted run would have."""

from __future__ import annotations

import lightning as L
import torch

from lorasb.lightning.run_log import RunCSVLogger


class ExactResume(L.Callback):
    """Makes what a checkpoint does not hold a function of what it does.

    A run's random draws come from the order of its rows and from dropout. The rows' order is
    seeded per epoch and the checkpoint records how far into the epoch the run was
    (:mod:`lorasb.data.resumable`); dropout is seeded here before every training batch from
    ``seed``, the epoch, the batch and the process, so no random state has to be saved. The
    run's CSV log (:class:`lorasb.lightning.run_log.RunCSVLogger`) goes back to the rows it had
    when the checkpoint was written, so the steps redone after a resume are logged once.
    """

    def __init__(self, seed: int):
        self.seed = seed
        self._trainer: L.Trainer | None = None
        self._log_state: dict = {}

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self._trainer = trainer

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch, batch_idx: int) -> None:
        seed = ((self.seed * 1_000_003 + trainer.current_epoch) * 1_000_003 + batch_idx) * 1009 + trainer.global_rank
        torch.manual_seed(seed % 2**63)

    def _csv_loggers(self) -> list[RunCSVLogger]:
        trainer = self._trainer
        return [logger for logger in trainer.loggers if isinstance(logger, RunCSVLogger)] if trainer and trainer.is_global_zero else []

    def state_dict(self) -> dict:
        step = self._trainer.global_step if self._trainer else 0
        return {"log_rows": {logger.log_dir: logger.rows() for logger in self._csv_loggers()}, "step": step}

    def load_state_dict(self, state_dict: dict) -> None:
        self._log_state = state_dict

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # Lightning hands the checkpoint's loader state (how far into the epoch) to the loader
        # only when it builds the loader after restoring the checkpoint; a module whose
        # configure_optimizers reads trainer.estimated_stepping_batches has it built before.
        # The loader reads its state when the epoch's first batch is drawn, which is after this.
        trainer.fit_loop._load_combined_loader_states()

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        rows = self._log_state.get("log_rows", {})
        for logger in self._csv_loggers():
            if logger.log_dir in rows:
                logger.rewind(rows[logger.log_dir], self._log_state["step"])
        self._log_state = {}
