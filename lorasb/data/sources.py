"""Rows of a JSON dataset: a local file under the data root, or a copy on the Hugging Face Hub.

A local file is read strictly: valid UTF-8 JSON (a list of objects, or one object per line for
``.jsonl``), at least one row, and in every row the fields the dataset needs, as strings. Any
other content raises :class:`DataFileError` naming the file, the line or row, and the layout.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import datasets

from lorasb.data.files import DataFileError, read_text


@dataclass(frozen=True)
class JsonSource:
    """Where a dataset lives.

    Args:
        name: what the error messages call it.
        local: path under the data root (``<data.dir>/<local>``): a JSON list or JSON lines.
        hub: a Hub dataset id, or a URL of a JSON file.
        configs: the Hub configs to concatenate (``(None,)``: the default one).
        split: the Hub split.
        fields: the string fields every row must have.
    """

    name: str
    local: str
    hub: str
    configs: tuple[str | None, ...] = (None,)
    split: str = "train"
    fields: tuple[str, ...] = ()

    def rows(self, root: Path | None, limit: int | None = None) -> list[dict[str, Any]]:
        """The first ``limit`` rows (all with ``None``), from ``root`` if given, else the Hub."""
        rows = self._read_local(root) if root is not None else self._read_hub()
        return rows[:limit]

    def _read_local(self, root: Path) -> list[dict[str, Any]]:
        path = Path(root) / self.local
        if not path.is_file():
            raise FileNotFoundError(
                f"{self.name} file not found: {path}. Put it at <data.dir>/{self.local} "
                f"(data.dir={root}), or leave data.dir unset to download it from the Hub."
            )
        layout = self.layout(path)
        text = read_text(path, layout)
        if not text.strip():
            raise DataFileError(path, "the file is empty", layout)
        if path.suffix == ".jsonl":
            unit = "line"
            rows = [(number, _parse(path, line, layout, number)) for number, line in enumerate(text.split("\n"), 1) if line.strip()]
        else:
            unit = "row"
            data = _parse(path, text, layout)
            if not isinstance(data, list):
                raise DataFileError(path, f"a JSON {_json_type(data)} at the top", layout)
            rows = list(enumerate(data, 1))
        if not rows:
            raise DataFileError(path, "no rows", layout)
        for number, row in rows:
            self._check(row, path, layout, number, unit)
        return [row for _, row in rows]

    def layout(self, path: Path) -> str:
        """What a local file must hold, for error messages."""
        form = "one JSON object per line" if path.suffix == ".jsonl" else "a JSON list of objects"
        return f"{form}, each with the string fields {', '.join(self.fields)}" if self.fields else form

    def _check(self, row: Any, path: Path, layout: str, number: int, unit: str) -> None:
        if not isinstance(row, dict):
            raise DataFileError(path, f"a JSON {_json_type(row)}, not an object", layout, number, unit)
        missing = [field for field in self.fields if field not in row]
        if missing:
            raise DataFileError(path, f"no field {', '.join(missing)} (fields: {', '.join(row) or 'none'})", layout, number, unit)
        wrong = [f"{field} is a JSON {_json_type(row[field])}" for field in self.fields if not isinstance(row[field], str)]
        if wrong:
            raise DataFileError(path, ", ".join(wrong), layout, number, unit)

    def _read_hub(self) -> list[dict[str, Any]]:
        try:
            if self.hub.startswith(("http://", "https://")):
                parts = [datasets.load_dataset("json", data_files=self.hub, split="train")]
            else:
                parts = [datasets.load_dataset(self.hub, config, split=self.split) for config in self.configs]
        except Exception as err:
            raise RuntimeError(
                f"could not download {self.name} from {self.hub} ({type(err).__name__}: {err}). "
                f"Without network, point at a local copy with data.dir=<root> holding <root>/{self.local}."
            ) from err
        return [row for part in parts for row in part]


def _parse(path: Path, text: str, layout: str, line: int | None = None) -> Any:
    """``text`` as JSON; a syntax error is reported at its line (``line``: where ``text`` starts)."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        where = err.lineno if line is None else line + err.lineno - 1
        raise DataFileError(path, f"not valid JSON: {err.msg} (column {err.colno})", layout, where) from None


_JSON_TYPES = {dict: "object", list: "array", str: "string", bool: "boolean", int: "number", float: "number", type(None): "null"}


def _json_type(value: Any) -> str:
    return _JSON_TYPES.get(type(value), type(value).__name__)
