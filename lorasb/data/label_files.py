"""Rows of the user's own classification or regression data, read through ``datasets``' loaders.

A source is a local file, a dataset folder or a Hub dataset id (:mod:`lorasb.data.tables`). Every
row is checked before any is used: the text fields and the label field exist, every text is
non-empty, every label is present (a number, for a regression). A problem raises
:class:`DataFileError` naming the file, the row (counted from 1, a header line not counted) and
the fix; a file the loader cannot parse is refused whole.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import datasets

from lorasb.data.files import DataFileError
from lorasb.data.tables import load_table


@dataclass(frozen=True)
class LabeledRows:
    """Every row of one source: ``texts`` (one list per text field), ``labels`` (class names as
    strings, or scores) and ``where``, what the error messages call the source."""

    texts: tuple[list[str], ...]
    labels: list[str] | list[float]
    where: str

    def __len__(self) -> int:
        return len(self.labels)

    def select(self, rows: list[int]) -> LabeledRows:
        """The rows at these positions, in this order."""
        return LabeledRows(tuple([texts[i] for i in rows] for texts in self.texts), [self.labels[i] for i in rows], self.where)


def read_labeled(source: str, split: str, text_fields: list[str], label_field: str, regression: bool, root: Path | None = None) -> LabeledRows:
    """The texts and labels of every row of ``source``, each checked (see the module's docstring)."""
    rows, where = load_table(source, split, root)
    found = list(rows.column_names)
    for role, names in (("data.text_fields", text_fields), ("data.label_field", [label_field])):
        missing = [name for name in names if name not in found]
        if missing:
            raise DataFileError(where, f"no field {', '.join(map(repr, missing))}; the fields found are: {', '.join(found)}", f"{role} to name fields of the file")
    if not len(rows):
        raise DataFileError(where, "no rows", "at least one row")
    columns = rows.select_columns([*dict.fromkeys([*text_fields, label_field])]).to_dict()
    names = _class_names(rows.features[label_field])
    texts = tuple([_text(value, where, number, name) for number, value in enumerate(columns[name], 1)] for name in text_fields)
    read = _score if regression else _class
    labels = [read(value, where, number, label_field, names) for number, value in enumerate(columns[label_field], 1)]
    return LabeledRows(texts, labels, where)


def _class_names(feature: Any) -> list[str] | None:
    """A Hub dataset's names of its integer labels (a ``ClassLabel`` feature), else None."""
    return list(feature.names) if isinstance(feature, datasets.ClassLabel) else None


def _empty(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or (isinstance(value, str) and not value.strip())


def _text(value: Any, where: str, row: int, field: str) -> str:
    if _empty(value):
        raise DataFileError(where, f"the text field {field!r} is empty", "a text in every row: fill it in or remove the row", row, "row")
    return value if isinstance(value, str) else str(value)


def _class(value: Any, where: str, row: int, field: str, names: list[str] | None) -> str:
    """The class name of a label: a string as written, an integer (or an integral float, as a CSV
    column with a gap reads) as its digits, a ``ClassLabel`` id as its name."""
    if _empty(value):
        raise DataFileError(where, f"the label field {field!r} is empty", "a label in every row: fill it in or remove the row", row, "row")
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if names is not None and isinstance(value, int) and 0 <= value < len(names):
        return names[value]
    return str(value)


def _score(value: Any, where: str, row: int, field: str, names: list[str] | None) -> float:
    if _empty(value):
        raise DataFileError(where, f"the label field {field!r} is empty", "a number in every row: fill it in or remove the row", row, "row")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise DataFileError(where, f"the label {value!r} is not a number", "a number in every row for task=custom/regression (for class names: task=custom/classification)", row, "row")
    return float(value)


def label_order(labels: list[str]) -> list[str]:
    """The distinct labels in the order of their ids: integers by value, other names alphabetically."""
    distinct = set(labels)
    if all(label.lstrip("-").isdigit() for label in distinct):
        return sorted(distinct, key=int)
    return sorted(distinct)
