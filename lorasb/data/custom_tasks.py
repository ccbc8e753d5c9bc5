"""The tasks of the user's own files: ``classification`` (labels the training file names) and
``regression`` (a numeric score), with their metrics and the one they monitor."""

from __future__ import annotations

from dataclasses import dataclass

from lorasb.data.scoring import ScoredTask
from lorasb.settings.data import LABELED_FILE_METRICS
from lorasb.settings.data import unlogged_monitor


@dataclass(frozen=True)
class CustomTask(ScoredTask):
    """A classification over ``labels`` (in their order: output ``i`` is ``labels[i]``), or a
    regression (no labels); metrics are logged as ``val/<metric>``, ``main_metric`` the monitored one."""

    name: str
    labels: tuple[str, ...]
    main_metric: str
    val_splits: tuple[str, ...] = ("validation",)
    val_suffixes: tuple[str, ...] = ("",)

    @property
    def num_labels(self) -> int:
        return len(self.labels) if self.labels else 1

    @property
    def metric_names(self) -> tuple[str, ...]:
        return LABELED_FILE_METRICS[self.name]


def check_monitor(name: str, monitor: str) -> None:
    """Refuse a task other than ``classification`` or ``regression``, or a ``monitor`` (``val/<metric>``)
    it does not log, naming the choices."""
    if name not in LABELED_FILE_METRICS:
        raise ValueError(f"Unknown task {name!r}; expected one of: {', '.join(LABELED_FILE_METRICS)}")
    if problem := unlogged_monitor(name, monitor):
        raise ValueError(problem)


def custom_task(name: str, labels: list[str] | None, monitor: str) -> CustomTask:
    """The task ``name`` over ``labels`` (a classification's, in output order; a regression has
    none), monitoring ``monitor``; a ValueError names what is allowed otherwise."""
    check_monitor(name, monitor)
    if (name == "classification") != bool(labels):
        raise ValueError(f"the {name} task takes {'a list of labels' if name == 'classification' else 'no labels'}, got {labels!r}")
    return CustomTask(name, tuple(labels or ()), monitor.removeprefix("val/"))
