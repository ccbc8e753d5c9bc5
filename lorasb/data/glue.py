"""GLUE data: official TSV files under a local root, or ``nyu-mll/glue`` from the Hub."""

import math
from pathlib import Path
from typing import Any

import datasets

from lorasb.data.files import DataFileError, read_text
from lorasb.data.glue_tasks import GlueTask, glue_task
from lorasb.data.sentences import LabeledSplit, SentenceDataModule

HUB_DATASET = "nyu-mll/glue"


def tsv_layout(task: GlueTask) -> str:
    """What a TSV file of ``task`` must hold, for error messages."""
    if task.tsv_columns is not None:
        columns = f"no header; rows of {len(task.tsv_columns)} tab-separated fields ({', '.join(task.tsv_columns)})"
    else:
        columns = f"a header line naming the columns (among them {', '.join((*task.tsv_texts, task.tsv_label))}), then one tab-separated row per example"
    return f"a GLUE {task.folder} TSV file: {columns}"


def read_glue_tsv(task: GlueTask, path: Path) -> LabeledSplit:
    """Read an official GLUE TSV (or its gzip-compressed ``.tsv.gz``) into a ``LabeledSplit``,
    refusing anything it would have to guess.

    A leading BOM (MRPC) is dropped, quotes are kept verbatim (CoLA, SST-2, QNLI) and empty
    lines are skipped. Every row must have as many tab-separated fields as the header (a tab
    inside a text would shift the columns) and a label of the task (a score in its range for
    STS-B). Anything else raises :class:`DataFileError` naming the file, the line and what was
    expected.
    """
    layout = tsv_layout(task)
    lines = read_text(path, layout).replace("\r\n", "\n").split("\n")
    rows = [(number, line.split("\t")) for number, line in enumerate(lines, start=1) if line]
    if not rows:
        raise DataFileError(path, "the file is empty", layout)
    header = task.tsv_columns
    if header is None:
        (_, header), rows = rows[0], rows[1:]
        missing = [name for name in (*task.tsv_texts, task.tsv_label) if name not in header]
        if missing:
            raise DataFileError(path, f"the header ({', '.join(header)}) lacks the columns {', '.join(missing)}", layout, line=1)
        if not rows:
            raise DataFileError(path, "the file has a header but no data rows", layout)
    texts: tuple[list[str], ...] = tuple([] for _ in task.tsv_texts)
    text_columns = [header.index(name) for name in task.tsv_texts]
    label_column = header.index(task.tsv_label)
    labels = []
    for number, row in rows:
        if len(row) != len(header):
            raise DataFileError(
                path,
                f"{len(row)} tab-separated fields",
                f"{len(header)}, one per column ({', '.join(header)}); a tab inside a text splits it",
                number,
            )
        labels.append(_label(task, row[label_column], path, number))
        for column, index in zip(texts, text_columns):
            column.append(row[index])
    return LabeledSplit(texts, labels)


def _label(task: GlueTask, raw: str, path: Path, line: int) -> int | float:
    """The Hub id of a class label, or the score of a regression task, as the row spells it."""
    if task.is_regression:
        low, high = task.score_range
        try:
            score = float(raw)
        except ValueError:
            score = math.nan
        if not low <= score <= high:
            raise DataFileError(path, f"{task.tsv_label} {raw!r}", f"a number in [{low:g}, {high:g}]", line)
        return score
    if raw not in task.label_ids:
        raise DataFileError(path, f"{task.tsv_label} {raw!r}", f"one of {', '.join(task.label_ids)}", line)
    return task.label_ids[raw]


class GlueDataModule(SentenceDataModule):
    """One GLUE task, tokenized as a single sentence or a sentence pair.

    With ``dir`` set, reads ``<dir>/glue/<FOLDER>/train.tsv`` and ``dev.tsv`` (MNLI:
    ``dev_matched.tsv``, ``dev_mismatched.tsv``), or their gzip-compressed ``.tsv.gz``;
    otherwise loads ``nyu-mll/glue`` from the Hub.
    Labels follow the Hub's ids (int64; float32 scores for STS-B).

    Args:
        task: one of ``GLUE_TASKS`` (``cola``, ``sst2``, ``mrpc``, ...).
        **kwargs: ``TextDataModule`` arguments.
    """

    def __init__(self, task: str, **kwargs: Any):
        super().__init__(**kwargs)
        self.task_spec = glue_task(task)

    def prepare_data(self) -> None:
        """Download the task from the Hub (once, on one process) when no ``dir`` is given."""
        if self.dir is None:
            self._load_hub()

    def _title(self) -> str:
        return f"GLUE {self.task_spec.name}"

    def _read(self, split: str) -> LabeledSplit:
        if self.dir is not None:
            return read_glue_tsv(self.task_spec, self._tsv_path(split))
        fields = self.task_spec.text_fields
        rows = self._load_hub(split).select_columns([*fields, "label"]).to_dict()
        return LabeledSplit(tuple(rows[field] for field in fields), rows["label"])

    def _source(self) -> str:
        """Where the rows come from, for the log."""
        if self.dir is None:
            return f"{HUB_DATASET} from the Hugging Face Hub"
        return f"local files in {self.dir / 'glue' / self.task_spec.folder}"

    @staticmethod
    def _tsv_name(split: str) -> str:
        """Official file name of a Hub split: train.tsv, dev.tsv, dev_matched.tsv, ..."""
        return split.replace("validation", "dev") + ".tsv"

    def _layout(self, root: str) -> str:
        """The expected local files of this task under ``root``, for error messages."""
        folder = f"{root}/glue/{self.task_spec.folder}"
        names = [self._tsv_name(split) for split in ("train", *self.task_spec.val_splits)]
        return f"{folder}/{names[0]} and " + ", ".join(f"{folder}/{name}" for name in names[1:])

    def _tsv_path(self, split: str) -> Path:
        path = self.dir / "glue" / self.task_spec.folder / self._tsv_name(split)
        compressed = path.with_name(path.name + ".gz")
        if not path.is_file() and compressed.is_file():
            return compressed
        if not path.is_file():
            raise FileNotFoundError(
                f"GLUE file not found: {path}. Expected the official layout "
                f"<dir>/glue/<FOLDER>/train.tsv, here {self._layout(str(self.dir))}."
            )
        return path

    def _load_hub(self, split: str | None = None) -> datasets.Dataset | datasets.DatasetDict:
        try:
            return datasets.load_dataset(HUB_DATASET, self.task_spec.name, split=split)
        except Exception as err:
            raise RuntimeError(
                f"Could not load GLUE task {self.task_spec.name!r} from the Hugging Face Hub "
                f"({HUB_DATASET}): the Hub could not be reached ({type(err).__name__}: {err}). "
                f"Point at local GLUE files instead with data.dir=<root>, laid out as "
                f"{self._layout('<root>')}."
            ) from err
