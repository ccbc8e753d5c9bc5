"""What the sentence tasks (GLUE and the user's own files) share: their validation metrics, the
constant prediction's scores beside them, and how logits become predictions."""

from collections.abc import Callable

import torch
from torch import Tensor
from torchmetrics import Metric, MetricCollection
from torchmetrics.classification import (
    BinaryAccuracy,
    BinaryF1Score,
    BinaryMatthewsCorrCoef,
    MulticlassAccuracy,
    MulticlassF1Score,
    MulticlassMatthewsCorrCoef,
)
from torchmetrics.regression import PearsonCorrCoef, SpearmanCorrCoef


class _UndefinedIsZero:
    """Matthews correlation as GLUE scores it (scikit-learn's): 0 where it is undefined, when every
    prediction or every label is one class, where torchmetrics returns a small positive value
    (0.0256 for the majority class on CoLA's validation split)."""

    def compute(self) -> Tensor:
        predicted, actual = self.confmat.sum(0), self.confmat.sum(1)
        if (predicted > 0).sum() < 2 or (actual > 0).sum() < 2:
            return torch.zeros((), device=self.confmat.device)
        return super().compute()


class BinaryMatthews(_UndefinedIsZero, BinaryMatthewsCorrCoef):
    pass


class MulticlassMatthews(_UndefinedIsZero, MulticlassMatthewsCorrCoef):
    pass


METRICS: dict[str, Callable[[int], Metric]] = {
    "matthews": lambda num_labels: (
        BinaryMatthews() if num_labels == 2 else MulticlassMatthews(num_classes=num_labels)
    ),
    "f1": lambda num_labels: BinaryF1Score(),
    "macro_f1": lambda num_labels: MulticlassF1Score(num_classes=num_labels, average="macro"),
    "accuracy": lambda num_labels: (
        BinaryAccuracy()
        if num_labels == 2
        else MulticlassAccuracy(num_classes=num_labels, average="micro")
    ),
    "pearson": lambda num_labels: PearsonCorrCoef(),
    "spearman": lambda num_labels: SpearmanCorrCoef(),
}


class ScoredTask:
    """Metrics and predictions of a task with ``num_labels`` outputs (1: a regression) scored by
    ``metric_names`` (keys of :data:`METRICS`); the subclasses are dataclasses holding both."""

    num_labels: int
    metric_names: tuple[str, ...]

    @property
    def is_regression(self) -> bool:
        """True for a task whose single output is a score."""
        return self.num_labels == 1

    def metrics(self) -> MetricCollection:
        """A fresh collection of this task's validation metrics."""
        return MetricCollection({name: METRICS[name](self.num_labels) for name in self.metric_names})

    @property
    def baseline_name(self) -> str:
        """What the baseline of ``constant_prediction_scores`` predicts."""
        return "constant prediction" if self.is_regression else "majority class"

    def constant_prediction_scores(self, labels: Tensor) -> dict[str, float]:
        """This task's metrics when every prediction is the most frequent label of ``labels``.

        For regression every metric is 0: a constant has no correlation with the scores.
        """
        if self.is_regression:
            return dict.fromkeys(self.metric_names, 0.0)
        majority = torch.full_like(labels, int(labels.mode().values))
        return {name: float(value) for name, value in self.metrics()(majority, labels).items()}

    def predict(self, logits: Tensor) -> Tensor:
        """Predictions the metrics expect: class ids, or scores for regression."""
        return logits.squeeze(-1) if self.is_regression else logits.argmax(-1)
