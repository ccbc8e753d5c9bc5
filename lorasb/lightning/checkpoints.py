"""Checkpoints load as data only, and only into a run with the settings they were trained with.

Every load passes ``weights_only=True`` (tensors, containers, numbers and strings, plus the few
types torch allows); a crafted checkpoint's payload then never runs and its file is named.
"""

from __future__ import annotations

import pickle
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from os import PathLike


class UnsafeCheckpointError(ValueError):
    """A checkpoint holds Python objects beyond tensors and plain data."""


class CheckpointError(ValueError):
    """A checkpoint a run cannot resume from: trained with other settings, or damaged."""


def _flat(settings: Mapping, prefix: str = "") -> dict[str, object]:
    flat = {}
    for key, value in settings.items():
        if isinstance(value, Mapping):
            flat |= _flat(value, f"{prefix}{key}.")
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def changed_settings(saved: Mapping, current: Mapping, ignored: tuple[str, ...] = ()) -> list[str]:
    """``key: <saved> in the checkpoint, <current> now`` for every setting that differs, keys under
    ``ignored`` left out."""
    before, now = _flat(saved), _flat(current)
    keys = sorted((before.keys() | now.keys()) - {k for k in before.keys() | now.keys() if k.split(".")[0] in ignored})
    missing = "(not set)"
    return [f"{k}: {before.get(k, missing)} in the checkpoint, {now.get(k, missing)} now" for k in keys if before.get(k, missing) != now.get(k, missing)]


@contextmanager
def refusing_unsafe(path: str | PathLike) -> Iterator[None]:
    """Turns a refused unpickling inside the block into an :class:`UnsafeCheckpointError` naming ``path``."""
    try:
        yield
    except pickle.UnpicklingError as err:
        found = re.search(r"GLOBAL ([\w.]+)", str(err))
        what = f" (it names {found.group(1)})" if found else ""
        raise UnsafeCheckpointError(
            f"refused to load {path}: it holds Python objects beyond tensors and plain data{what}, which could "
            "run code when loaded; lorasb's own checkpoints hold none, so this file was not written by a lorasb run"
        ) from None
