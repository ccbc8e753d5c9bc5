"""A callback that stops training that went wrong: a non-finite loss or gradient, or a diverging loss.

The loss and the gradient norm of each step (steps counted from 1, as ``trainer.global_step``
after the step) stay on the device; they are read back every
``check_every`` steps, before each validation and at the end of each epoch, one transfer each
time, so the guard costs no device sync per step. Checks run before Lightning's checkpoint
callbacks (which it always calls last), so a bad stretch never reaches a checkpoint.

- Non-finite training loss or gradient norm: ``FloatingPointError`` with the step, the loss and
  what to try; the checkpoints written so far stay as they were.
- Divergence: the mean training loss since the last check above ``divergence_factor`` times
  the loss of the first training batch, or a validation loss above ``divergence_factor`` times
  the first one measured (before training, when the run validates first). The run stops at
  once and is marked: a warning in the console and the logs, ``train/diverged`` = 1 in the
  metrics, and :attr:`diverged` (written to ``metrics.json`` by the run summary).
"""

from __future__ import annotations

import logging
import math

import lightning as L
import torch

log = logging.getLogger(__name__)

HINT = "lower optim.lr, use trainer.precision=32-true or set trainer.gradient_clip_val"
# precisions whose gradient scaler skips steps with infinite gradients by design
_SCALED_PRECISIONS = {"16-mixed", "16"}


class TrainingGuard(L.Callback):
    """Stops a run whose loss or gradients turn non-finite, or whose loss diverges (see the module docstring)."""

    def __init__(self, check_every: int = 10, divergence_factor: float = 10.0):
        if check_every < 1 or divergence_factor <= 1:
            raise ValueError(f"check_every must be ≥ 1 and divergence_factor > 1, got {check_every} and {divergence_factor}")
        self.check_every = check_every
        self.divergence_factor = divergence_factor
        self.diverged: dict | None = None
        self._losses: list[tuple[int, torch.Tensor]] = []  # (step, loss) since the last check
        self._grad_norms: list[tuple[int, torch.Tensor]] = []
        self._start_loss: float | None = None
        self._start_val_loss: dict[str, float] = {}

    # -- collecting, on the device ----------------------------------------------------------

    def on_before_optimizer_step(self, trainer: L.Trainer, pl_module: L.LightningModule, optimizer) -> None:
        if str(trainer.precision) in _SCALED_PRECISIONS:
            return
        grads = [p.grad.detach().norm() for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
        if grads:
            self._grad_norms.append((trainer.global_step + 1, torch.stack(grads).norm()))

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, batch_idx: int) -> None:
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        if loss is not None:
            self._losses.append((trainer.global_step, loss.detach().float()))
        if len(self._losses) >= self.check_every:
            self._check(trainer)

    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.state.fn == "fit" and not trainer.sanity_checking:
            self._check(trainer)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._check(trainer)

    # -- checking, one transfer -------------------------------------------------------------

    def _check(self, trainer: L.Trainer) -> None:
        losses, grad_norms = self._losses, self._grad_norms
        self._losses, self._grad_norms = [], []
        if not losses and not grad_norms:
            return
        values = torch.stack([value for _, value in losses + grad_norms]).cpu().tolist()
        loss_values, grad_values = values[: len(losses)], values[len(losses) :]
        loss_at = {step: loss for (step, _), loss in zip(losses, loss_values)}
        events = [(step, 0, loss) for (step, _), loss in zip(losses, loss_values)]
        events += [(step, 1, norm) for (step, _), norm in zip(grad_norms, grad_values)]
        for step, is_gradient, value in sorted(events):  # the first bad one; a step's loss comes before its gradient
            if math.isfinite(value):
                continue
            if is_gradient:
                loss = f" (training loss {loss_at[step]:.4g})" if step in loss_at else ""
                raise FloatingPointError(f"the gradient norm is {value} at step {step}{loss}; {HINT}")
            raise FloatingPointError(f"the training loss is {value} at step {step}; {HINT}")
        if not loss_values:
            return
        if self._start_loss is None:
            self._start_loss = loss_values[0]
        mean = sum(loss_values) / len(loss_values)
        if mean > self.divergence_factor * self._start_loss:
            self._stop(trainer, "training loss", mean, self._start_loss, losses[-1][0])

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Compares each validation loss (``val/loss``, MNLI's ``val/loss_m`` ...) with its first value."""
        if trainer.sanity_checking or self.diverged:
            return
        for key, value in trainer.callback_metrics.items():
            if not key.startswith("val/loss"):
                continue
            value = float(value)
            start = self._start_val_loss.setdefault(key, value)
            if trainer.state.fn == "fit" and not (value <= self.divergence_factor * start):  # NaN diverges too
                self._stop(trainer, key, value, start, trainer.global_step)
                return

    def _stop(self, trainer: L.Trainer, what: str, value: float, start: float, step: int) -> None:
        self.diverged = {"step": step, "what": what, "value": value, "start": start, "factor": self.divergence_factor, "hint": HINT}
        log.warning(
            f"the run diverged: the {what} is {value:.4g} at step {step}, more than {self.divergence_factor:g}× "
            f"its start ({start:.4g}); training stops here. {HINT[0].upper()}{HINT[1:]}"
        )
        for logger in trainer.loggers:
            logger.log_metrics({"train/diverged": 1.0}, step=step)
        trainer.should_stop = True

    def state_dict(self) -> dict:
        return {"start_loss": self._start_loss, "start_val_loss": self._start_val_loss}

    def load_state_dict(self, state_dict: dict) -> None:
        self._start_loss = state_dict["start_loss"]
        self._start_val_loss = state_dict["start_val_loss"]
