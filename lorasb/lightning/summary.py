"""A callback that writes each run's ``metrics.json``."""

from __future__ import annotations

import json
import resource
import sys
import time
from pathlib import Path

import lightning as L
import torch

from lorasb.lightning.guard import TrainingGuard


def _floats(metrics: dict) -> dict[str, float]:
    return {key: float(value) for key, value in metrics.items()}


def peak_memory_mb(device: torch.device) -> float:
    """Peak memory of the run: allocated on a CUDA device, else the process's peak resident size."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10


class RunSummary(L.Callback):
    """Collects the run's figures and writes them to ``<run dir>/metrics.json``.

    ``before``: validation metrics of a ``trainer.validate`` run before training (if any);
    ``final``: those of the last validation epoch; ``best``: the best value of each metric
    over the validation epochs (lowest for losses, highest otherwise); parameter counts;
    ``init_seconds`` (the method's initialisation: gradient estimate and SVDs), ``train_seconds``
    (over every part of a resumed run) and ``peak_memory_mb`` (the accelerator's peak
    allocation, on a CPU the process's peak resident size); ``steps``, the optimizer steps
    taken (0: nothing was trained); ``peak_lr``, the learning rate the schedule scales (the one
    ``optim.lr=auto`` chose); ``diverged``,
    where a :class:`TrainingGuard` stopped a diverging run; ``baseline``: the scores of a
    constant prediction, when the data module offers them (GLUE: the majority class); ``run``:
    what identifies the run in a comparison (task, method, rank, main metric), as given.
    Written when ``fit`` ends, trained or not.
    """

    def __init__(self, filename: str = "metrics.json", run: dict | None = None):
        self.filename = filename
        self.summary: dict = {"run": dict(run or {}), "before": {}, "final": {}, "best": {}}
        self._train_start: float | None = None
        self._trained_before = 0.0  # seconds trained before the run was resumed

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        values = _floats({k: v for k, v in trainer.callback_metrics.items() if k.startswith("val/")})
        if trainer.state.fn != "fit":
            self.summary["before"] = values
            return
        self.summary["final"] = values
        best = self.summary["best"]
        for key, value in values.items():
            lower_is_better = "loss" in key
            if key not in best or (value < best[key] if lower_is_better else value > best[key]):
                best[key] = value
        self.summary["epochs"] = trainer.current_epoch + 1

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._train_start = time.perf_counter()
        if getattr(pl_module, "init_seconds", None) is not None:  # a resumed run keeps its first figure
            self.summary["init_seconds"] = pl_module.init_seconds

    def _train_seconds(self) -> float:
        """Seconds of training so far, over every part of a resumed run."""
        return self._trained_before + (time.perf_counter() - self._train_start if self._train_start is not None else 0.0)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.summary["train_seconds"] = self._train_seconds()

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.summary["steps"] = trainer.global_step
        if trainer.lr_scheduler_configs:  # the peak lr trained with (what optim.lr=auto chose)
            self.summary["peak_lr"] = trainer.lr_scheduler_configs[0].scheduler.base_lrs[0]
        guard = next((c for c in trainer.callbacks if isinstance(c, TrainingGuard)), None)
        if guard is not None and guard.diverged:
            self.summary["diverged"] = guard.diverged
        if hasattr(pl_module, "parameter_counts"):
            self.summary["parameters"] = pl_module.parameter_counts()
        if hasattr(trainer.datamodule, "baseline"):
            self.summary["baseline"] = trainer.datamodule.baseline()
        self.summary["peak_memory_mb"] = peak_memory_mb(pl_module.device)
        figures = {f"{stage}/{key}": value for stage in ("before", "final", "best") for key, value in self.summary[stage].items()}
        for logger in trainer.loggers:  # distinct keys, beside the per-epoch val/* curves
            logger.log_metrics(figures, step=trainer.global_step)
        if trainer.is_global_zero:
            self.write(Path(trainer.default_root_dir) / self.filename)

    def write(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.summary, indent=2) + "\n")

    def state_dict(self) -> dict:
        return {"summary": self.summary, "train_seconds": self._train_seconds()}

    def load_state_dict(self, state_dict: dict) -> None:
        self.summary = state_dict["summary"]
        self._trained_before = state_dict.get("train_seconds", 0.0)


def summary_line(summary: dict, monitor: str) -> str:
    """The monitored metric before training, at the end, at its best and its baseline; a first line marks a diverged run."""
    figures = {name: summary.get(name, {}).get(monitor) for name in ("before", "final", "best")}
    if summary.get("steps") == 0:
        line = f"{monitor}: nothing was trained" + (f" (before {figures['before']:.4f})" if figures["before"] is not None else "")
    elif figures["final"] is None:
        line = f"{monitor}: no validation ran during training"
    else:
        line = f"{monitor}: final {figures['final']:.4f} (best {figures['best']:.4f}"
        if figures["before"] is not None:
            line = f"{monitor}: before {figures['before']:.4f} → " + line.removeprefix(f"{monitor}: ")
        baseline = summary.get("baseline", {})
        if monitor in baseline.get("scores", {}):
            line += f"; {baseline['name']} {baseline['scores'][monitor]:.4f}"
        line += ")"
    if "diverged" in summary:
        d = summary["diverged"]
        line = f"DIVERGED: the {d['what']} rose to {d['value']:.4g} at step {d['step']} from {d['start']:.4g}; {d['hint']}\n{line}"
    return line


def collapse_warning(summary: dict, monitor: str) -> str | None:
    """A warning when the final score is no better than the baseline's (a constant prediction)."""
    final = summary.get("final", {}).get(monitor)
    baseline = summary.get("baseline", {})
    score = baseline.get("scores", {}).get(monitor)
    if final is None or score is None or final > score:
        return None
    return (
        f"{monitor} ended at {final:.4f}, at or below the {baseline['name']} score {score:.4f}: the model does "
        f"no better than predicting one answer for every example. Train longer (trainer.max_epochs, "
        f"data.train_limit) or change the learning rate (optim.lr)."
    )
