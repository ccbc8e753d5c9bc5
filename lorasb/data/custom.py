"""The user's own classification or regression data (``task=custom/classification``,
``task=custom/regression``): a training file, and a validation file or a seeded share of the
training rows, read and checked whole before anything trains."""

from __future__ import annotations

import logging
from typing import Any

import torch

from lorasb.data.custom_tasks import check_monitor, custom_task
from lorasb.data.files import DataFileError
from lorasb.data.label_files import LabeledRows, label_order, read_labeled
from lorasb.data.sentences import LabeledSplit, SentenceDataModule
from lorasb.settings.data import LabeledFileSettings
from lorasb.settings.fields import default

log = logging.getLogger(__name__)


class LabeledFileDataModule(SentenceDataModule):
    """Rows of ``train_file`` (and ``validation_file``) with one or two texts and a label.

    Classification: the label set is the training file's distinct labels, integers by value and
    other names alphabetically (:func:`lorasb.data.label_files.label_order`); output ``i`` is
    ``labels[i]``. A validation label the training file lacks is refused. Regression: the label
    is a number, the model's single output.

    Args:
        task: ``classification`` or ``regression``.
        monitor: the metric the run monitors (``val/accuracy``, ``val/macro_f1``, ...).
        train_file, train_split, validation_file, validation_split, validation_ratio,
            text_fields, label_field: :class:`lorasb.settings.data.LabeledFileSettings`.
        **kwargs: ``TextDataModule`` arguments (``dir``: the root of relative file names).
    """

    def __init__(
        self,
        task: str,
        train_file: str,
        monitor: str,
        train_split: str = default(LabeledFileSettings, "train_split"),
        validation_file: str | None = default(LabeledFileSettings, "validation_file"),
        validation_split: str = default(LabeledFileSettings, "validation_split"),
        validation_ratio: float = default(LabeledFileSettings, "validation_ratio"),
        text_fields: list[str] = default(LabeledFileSettings, "text_fields"),
        label_field: str = default(LabeledFileSettings, "label_field"),
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        check_monitor(task, monitor)
        self.task, self.monitor = task, monitor
        self.train_file, self.train_split = train_file, train_split
        self.validation_file, self.validation_split, self.validation_ratio = validation_file, validation_split, validation_ratio
        self.text_fields, self.label_field = list(text_fields), label_field
        self.splits: dict[str, LabeledSplit] | None = None
        self.labels: list[str] | None = None

    @property
    def regression(self) -> bool:
        return self.task == "regression"

    def module_arguments(self) -> dict[str, Any]:
        """The label names of a classification, in the order of the outputs (None: a regression)."""
        self._splits()
        return {"labels": self.labels}

    def _title(self) -> str:
        return f"custom {self.task}"

    def _source(self) -> str:
        validation = self.validation_file or f"{self.validation_ratio:g} of the training rows held out by seed {self.seed}"
        return f"training rows from {self.train_file}, validation rows from {validation}"

    def _read(self, split: str) -> LabeledSplit:
        return self._splits()[split]

    def _splits(self) -> dict[str, LabeledSplit]:
        """Both splits as label ids (or scores), read and checked once; the label set is the
        whole training file's."""
        if self.splits is None:
            read = lambda source, split: read_labeled(source, split, self.text_fields, self.label_field, self.regression, self.dir)  # noqa: E731
            train = read(self.train_file, self.train_split)
            if not self.regression:
                self.labels = self._label_set(train)
            if self.validation_file is not None:
                validation = read(self.validation_file, self.validation_split)
                if not self.regression:
                    self._refuse_unseen(validation, train)
            else:
                train, validation = self._hold_out(train)
            self.splits = {"train": self._ids(train), "validation": self._ids(validation)}
            self.task_spec = custom_task(self.task, self.labels, self.monitor)
        return self.splits

    def _hold_out(self, rows: LabeledRows) -> tuple[LabeledRows, LabeledRows]:
        """``validation_ratio`` of ``rows`` (at least one), drawn by ``seed``; both parts keep the file's order."""
        held_out = max(1, round(self.validation_ratio * len(rows)))
        if held_out >= len(rows):
            raise DataFileError(rows.where, f"{len(rows)} rows, too few to hold {self.validation_ratio:g} of them out for validation", "more rows, or a data.validation_file")
        order = torch.randperm(len(rows), generator=torch.Generator().manual_seed(self.seed)).tolist()
        log.info(
            "validation: %d of the %d rows of %s held out (data.validation_ratio=%g, seed %d), %d rows train",
            held_out, len(rows), rows.where, self.validation_ratio, self.seed, len(rows) - held_out,
        )
        return rows.select(sorted(order[held_out:])), rows.select(sorted(order[:held_out]))

    def _label_set(self, train: LabeledRows) -> list[str]:
        labels = label_order(train.labels)
        if len(labels) < 2:
            raise DataFileError(
                train.where, f"every row has the label {labels[0]!r}",
                "at least two classes in the training file (for a numeric target: task=custom/regression)",
            )
        log.info("%d labels, in the order of the outputs: %s", len(labels), ", ".join(labels))
        return labels

    def _refuse_unseen(self, validation: LabeledRows, train: LabeledRows) -> None:
        known = set(self.labels)
        for row, label in enumerate(validation.labels, 1):
            if label not in known:
                raise DataFileError(
                    validation.where, f"the label {label!r} does not occur in the training rows ({train.where})",
                    f"one of {', '.join(self.labels)}: add rows of {label!r} to the training file or remove this row", row, "row",
                )

    def _ids(self, rows: LabeledRows) -> LabeledSplit:
        if self.regression:
            return LabeledSplit(rows.texts, rows.labels)
        ids = {label: i for i, label in enumerate(self.labels)}
        return LabeledSplit(rows.texts, [ids[label] for label in rows.labels])
