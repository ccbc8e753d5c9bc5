"""Rows of a JSON dataset: a local file under the data root, or a copy on the Hugging Face Hub."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import datasets


@dataclass(frozen=True)
class JsonSource:
    """Where a dataset lives.

    Args:
        name: what the error messages call it.
        local: path under the data root (``<data.dir>/<local>``): a JSON list or JSON lines.
        hub: a Hub dataset id, or a URL of a JSON file.
        configs: the Hub configs to concatenate (``(None,)``: the default one).
        split: the Hub split.
    """

    name: str
    local: str
    hub: str
    configs: tuple[str | None, ...] = (None,)
    split: str = "train"

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
        text = path.read_text(encoding="utf-8")
        if path.suffix == ".jsonl":
            return [json.loads(line) for line in text.splitlines() if line.strip()]
        rows = json.loads(text)
        if not isinstance(rows, list):
            raise ValueError(f"{path}: expected a JSON list of objects, got a {type(rows).__name__}")
        return rows

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
