"""What the sentence tasks' data modules share (GLUE, the user's own classification and
regression files): one or two texts per row and a label, tokenised as a sentence or a pair,
one loader per validation split, and the constant prediction's scores."""

import logging
from typing import Any, NamedTuple

import datasets
import torch
from torch.utils.data import DataLoader

from lorasb.data.base import TextDataModule
from lorasb.data.scoring import ScoredTask

log = logging.getLogger(__name__)

ENCODING = "glue-v1"  # the tokenised cache's name for this encoding (lorasb.data.base.TextDataModule.tokenized)


class LabeledSplit(NamedTuple):
    """Raw rows of one split: one list per text field, and labels (class ids, or scores)."""

    texts: tuple[list[str], ...]
    labels: list[int] | list[float]


class SentenceDataModule(TextDataModule):
    """A ``task_spec`` (:class:`lorasb.data.scoring.ScoredTask` with ``name``, ``val_splits`` and
    ``val_suffixes``) read split by split: subclasses set ``task_spec`` and implement ``_read``
    (a split's :class:`LabeledSplit`) and ``_source`` (where the rows come from, for the log)."""

    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)
        self.val_datasets: list[datasets.Dataset] | None = None

    task_spec: ScoredTask

    @property
    def num_labels(self) -> int:
        return self.task_spec.num_labels

    def setup(self, stage: str | None = None) -> None:
        """Tokenize the train split (for ``fit``) and every validation split, once each."""
        if self.val_datasets is None:
            log.info("%s data: %s", self._title(), self._source())
        if self.train_dataset is None and stage in (None, "fit"):
            self.train_dataset = self._tokenize(self._read("train"), self.train_limit)
        if self.val_datasets is None:
            self.val_datasets = [self._tokenize(self._read(split), self.val_limit) for split in self.task_spec.val_splits]

    def val_dataloader(self) -> DataLoader | list[DataLoader]:
        """One loader per validation split; a bare loader when there is only one (all but MNLI)."""
        loaders = [self._loader(dataset, self.eval_batch_size) for dataset in self.val_datasets]
        return loaders if len(loaders) > 1 else loaders[0]

    def baseline(self) -> dict[str, Any]:
        """What predicting the majority class (regression: a constant) scores on the validation splits.

        ``{"name": "majority class", "scores": {"val/<metric><suffix>": value, ...}}``.
        """
        scores = {}
        for dataset, suffix in zip(self.val_datasets, self.task_spec.val_suffixes):
            labels = torch.tensor(dataset["labels"])
            scores |= {f"val/{name}{suffix}": value for name, value in self.task_spec.constant_prediction_scores(labels).items()}
        return {"name": self.task_spec.baseline_name, "scores": scores}

    def _tokenize(self, split: LabeledSplit, limit: int | None) -> datasets.Dataset:
        fields = [f"text{i}" for i in range(len(split.texts))]
        columns = {field: texts[:limit] for field, texts in zip(fields, split.texts)} | {"labels": split.labels[:limit]}

        def encode(batch: dict[str, list]) -> dict[str, list]:
            return self.tokenizer(*(batch[field] for field in fields), truncation=True, max_length=self.max_length)

        return self.tokenized(columns, encode, encoding=ENCODING)

    def _title(self) -> str:
        """What the log calls these data."""
        raise NotImplementedError

    def _read(self, split: str) -> LabeledSplit:
        raise NotImplementedError

    def _source(self) -> str:
        raise NotImplementedError
