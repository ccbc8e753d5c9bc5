"""An on-disk cache of the summed gradient ΣG and of what is computed from it.

ΣG depends on the model's weights, its target layers, the initialisation batches, the seed
(dropout during the estimate) and the precision, but not on the rank, the learning rate or the
method. So a sweep over those estimates it once: the first job writes one file per target layer
under ``<root>/<key>/<form>/``, the key being a hash of what ΣG is computed from (given by the
caller: digests of the batches and of the weights, :mod:`lorasb.method.fingerprint`, and the
settings that change the estimate; kept beside the files in ``<form>/meta.json``), and every
later job reads them. ``form`` is what the method reads
(:attr:`lorasb.method.base.Method.gradient_form`): ``sum`` (ΣG, float32 or the accumulator's
dtype) or ``sign`` (sign(ΣG) as int8, one byte per weight entry), each in its own folder; a job
that reads signs takes them from cached sums too. Derived tensors that do not depend on the
learning rate either (LoRA-SB's SVD of sign(ΣG)) are kept under the same key by
:meth:`GradientCache.memo`.

Keys are named ``v<KEY_LAYOUT>-<hash>`` and ``meta.json`` records the layout: an entry written
under another layout of the key (an older lorasb's, keyed by settings alone) is never read.

Every file is written to a temporary name and renamed into place, and ``meta.json`` is written
last, so a job that starts while another is writing sees either nothing or a complete set.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

log = logging.getLogger(__name__)

Tensors = dict[str, torch.Tensor]
OnGroup = Callable[[Tensors], Mapping[str, torch.Tensor]]  # what to keep of a group of final layers


@dataclass
class Gradients:
    """ΣG per target layer (names as in the unadapted model), or sign(ΣG) as int8 (the ``sign``
    form), over ``batches`` batches of ``samples`` samples."""

    sums: Mapping[str, torch.Tensor]
    batches: int
    samples: int
    cached: bool = False  # read from the cache rather than estimated
    accumulator: dict | None = None  # how ΣG was accumulated (lorasb.method.memory.AccumulatorOptions)


class StoredLayers(Mapping[str, torch.Tensor]):
    """The cached tensor of each layer, read from ``<folder>/<name>.pt`` each time it is asked for
    (signs as int8 where ``as_signs``), so that only the layers in use are in memory."""

    def __init__(self, folder: Path, names: list[str], as_signs: bool, device: torch.device | str):
        self.folder, self.names, self.as_signs, self.device = folder, names, as_signs, device

    def __getitem__(self, name: str) -> torch.Tensor:
        if name not in self.names:
            raise KeyError(name)
        tensor = torch.load(self.folder / f"{name}.pt", map_location=self.device, weights_only=True)
        return tensor.sign().to(torch.int8) if self.as_signs else tensor

    def __iter__(self) -> Iterator[str]:
        return iter(self.names)

    def __len__(self) -> int:
        return len(self.names)


def _atomic_write(path: Path, write: Callable[[Path], Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(handle)
    try:
        write(Path(temporary))
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


KEY_LAYOUT = 2  # what a key is made of; raised whenever that changes, so older entries are never read


def cache_key(inputs: Mapping) -> str:
    """The folder name of ``inputs``: the layout and a hash of them (JSON with sorted keys)."""
    text = json.dumps(inputs, sort_keys=True, default=str)
    return f"v{KEY_LAYOUT}-{hashlib.blake2b(text.encode(), digest_size=16).hexdigest()}"


def stored_layout(folder: Path) -> int | None:
    """The key layout ``folder/meta.json`` was written under (1: before it was recorded); None where there is none."""
    try:
        return json.loads((folder / "meta.json").read_text()).get("layout", 1)
    except (OSError, ValueError, AttributeError):
        return None


class GradientCache:
    """ΣG and derived tensors under ``root/<key of inputs>``; with ``root=None`` nothing is kept.

    ``inputs``: what ΣG is computed from. ``about``: what ``python -m lorasb.cache`` shows of
    an entry (``model``, ``data``), kept in its ``meta.json``. ``writer`` is False on every
    process but one under data parallelism (all read, one writes).
    """

    def __init__(self, root: str | Path | None, inputs: Mapping, writer: bool = True, about: Mapping | None = None):
        self.dir = Path(root) / cache_key(inputs) if root is not None else None
        self.inputs = dict(inputs)
        self.about = dict(about or {})
        self.writer = writer
        self._memos: dict[str, Tensors] = {}  # this process's: a name is read or computed once

    def gradients(
        self, compute: Callable[[OnGroup], Gradients], form: str = "sum", device: torch.device | str = "cpu", on_group: OnGroup | None = None
    ) -> Gradients:
        """The cached ΣG in ``form`` (``sum`` or ``sign``; signs are also read from cached sums), each
        layer read from disk when it is asked for; else ``compute(store)``.

        ``compute`` passes each group of layers to ``store`` as soon as they are final (as
        :func:`lorasb.method.estimate.accumulate_gradients` does with ``on_group``): ``store``
        writes them for the next job and returns what ``on_group`` keeps of them (all, without it).
        """
        folder = self.dir / form if self.dir is not None else None
        for source in (form, "sum") if folder is not None else ():
            if stored_layout(self.dir / source) == KEY_LAYOUT:
                return self._read(source, form, device)
        layers: list[str] = []

        def store(group: Tensors) -> Mapping[str, torch.Tensor]:
            if folder is not None and self.writer:
                for name, grad in group.items():
                    _atomic_write(folder / f"{name}.pt", lambda path, grad=grad: torch.save(grad.cpu(), path))
            layers.extend(group)
            return on_group(group) if on_group is not None else group

        result = compute(store)
        if folder is not None and self.writer:
            meta = {
                "layout": KEY_LAYOUT,
                **self.about,
                "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "inputs": self.inputs,
                "form": form,
                "accumulator": result.accumulator,
                "layers": layers,
                "batches": result.batches,
                "samples": result.samples,
            }
            _atomic_write(folder / "meta.json", lambda path: path.write_text(json.dumps(meta, indent=1, default=str) + "\n"))
            log.info("gradient cache: stored %d layers (%s) in %s", len(layers), form, folder)
        return result

    def _read(self, source: str, form: str, device: torch.device | str) -> Gradients:
        folder = self.dir / source
        meta = json.loads((folder / "meta.json").read_text())
        log.info("gradient cache hit: %d layers (%s) from %s", len(meta["layers"]), source, folder)
        sums = StoredLayers(folder, meta["layers"], as_signs=form == "sign" and source == "sum", device=device)
        return Gradients(sums, meta["batches"], meta["samples"], cached=True, accumulator=meta.get("accumulator"))

    def memo(self, name: str, compute: Callable[[], Tensors], device: torch.device | str = "cpu") -> Tensors:
        """Tensors derived from ΣG stored as ``<key>/<name>.pt``: loaded when present, else computed and
        stored; kept in memory too, so asking again (``optim.lr=auto``'s candidates) costs nothing."""
        if name in self._memos:
            return self._memos[name]
        path = self.dir / f"{name}.pt" if self.dir is not None else None
        if path is not None and path.is_file():
            log.debug("gradient cache hit: %s", path)
            tensors = torch.load(path, map_location=device, weights_only=True)
        else:
            tensors = compute()
            if path is not None and self.writer:
                _atomic_write(path, lambda target: torch.save({k: v.cpu() for k, v in tensors.items()}, target))
        self._memos[name] = tensors
        return tensors
