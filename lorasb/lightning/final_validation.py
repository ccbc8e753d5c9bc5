"""Every run that trained ends validated, however it was bounded."""

from __future__ import annotations

import lightning as L


class FinalValidation(L.Callback):
    """Makes the run's last optimizer step a validation point.

    Lightning validates at the end of each epoch (or every ``val_check_interval`` batches) and
    when a run is asked to stop (``trainer.should_stop``: ``trainer.max_time``, early stopping,
    :class:`lorasb.lightning.guard.TrainingGuard`), but not when ``trainer.max_steps`` ends a run
    inside an epoch, nor after the batches an interval leaves at the end of the last epoch. This
    callback asks the run to stop on its last step in those cases too, so Lightning validates
    right there, inside ``fit``: the figures reach the loggers, ``metrics.json``'s ``final`` and
    ``best`` (:class:`lorasb.lightning.summary.RunSummary`) and the checkpoint callbacks as any
    other validation's, and ``last.ckpt`` (written at the epoch's end, after it) holds them, so a
    finished run resumed trains and validates nothing more.
    """

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, batch_idx: int) -> None:
        if not trainer.should_stop and trainer.fit_loop._can_stop_early and self._is_last_step(trainer):
            trainer.should_stop = True

    @staticmethod
    def _is_last_step(trainer: L.Trainer) -> bool:
        fit_loop = trainer.fit_loop
        if fit_loop.max_steps != -1 and trainer.global_step >= fit_loop.max_steps:
            return True
        last_batch = fit_loop.epoch_loop.batch_progress.is_last_batch
        return last_batch and fit_loop.max_epochs not in (None, -1) and trainer.current_epoch + 1 >= fit_loop.max_epochs
