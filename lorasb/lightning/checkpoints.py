"""Checkpoints load as data only, and only into a run with the settings they were trained with.

Every load passes ``weights_only=True`` (tensors, containers, numbers and strings, plus the few
types torch allows); a crafted checkpoint's payload then never runs and its file is named.
"""

from __future__ import annotations

import logging
import pickle
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from os import PathLike
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # train.py imports this module before a run starts: the heavy libraries load later
    import lightning as L

log = logging.getLogger(__name__)


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


def resume_from(trainer: L.Trainer, ckpt_path: str | None, resume: bool) -> str | None:
    """``ckpt_path`` when given; else, when ``resume`` is on and a last checkpoint exists, ``"last"``
    (Lightning's lookup), or the best checkpoint beside a damaged last one."""
    if ckpt_path:
        if not Path(ckpt_path).is_file():
            raise FileNotFoundError(f"ckpt_path={ckpt_path} does not exist")
        return str(ckpt_path)
    checkpoint = trainer.checkpoint_callback
    if not resume or checkpoint is None:
        return None
    folder = Path(checkpoint.dirpath)
    last, best = folder / f"{checkpoint.CHECKPOINT_NAME_LAST}{checkpoint.FILE_EXTENSION}", folder / f"best{checkpoint.FILE_EXTENSION}"
    if not last.is_file():
        return None
    damage = unreadable(last)
    if damage is None:
        return "last"
    if best.is_file() and unreadable(best) is None:
        log.warning("%s cannot be read (%s): resuming from %s, the latest good checkpoint", last, damage, best)
        return str(best)
    raise CheckpointError(f"{last} cannot be read ({damage}) and no good checkpoint is beside it: start a new run (resume=false)")


def unreadable(path: Path) -> str | None:
    """Why the checkpoint at ``path`` cannot be read (a truncated or damaged file), or None."""
    import torch

    try:
        torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except (RuntimeError, EOFError, OSError) as err:
        return str(err).splitlines()[0]
    return None
