"""Digests of what the summed gradient ΣG is computed from: its batches and the model's tensors.

Every tensor is hashed whole (blake2b over its bytes, with its name, dtype and shape), so two
digests agree only where every byte does: a flipped label, one more row, another token id, one
changed weight anywhere in the model changes them. A tensor is read in chunks of
``CHUNK_BYTES`` (from a GPU, copied to the host one chunk at a time), so no copy of a whole
model is ever made. A model's tensors are hashed in parallel threads (hashlib lets go of the
GIL while it hashes), each on its own, and their digests hashed in order.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor

import torch

CHUNK_BYTES = 64 << 20


def _update(hasher: "hashlib._Hash", name: str, tensor: torch.Tensor) -> None:
    hasher.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
    flat = tensor.detach().reshape(-1)
    step = max(1, CHUNK_BYTES // max(1, flat.element_size()))
    for start in range(0, flat.numel(), step):
        chunk = flat[start : start + step].to("cpu").contiguous()
        hasher.update(chunk.view(torch.uint8).numpy().data)


def _digest(item: tuple[str, torch.Tensor]) -> bytes:
    hasher = hashlib.blake2b(digest_size=32)
    _update(hasher, *item)
    return hasher.digest()


def digest_tensors(named: Iterable[tuple[str, torch.Tensor]]) -> str:
    """The digest of ``named`` tensors in the order given (names, dtypes, shapes and bytes)."""
    with ThreadPoolExecutor(max_workers=os.cpu_count()) as pool:
        return hashlib.blake2b(b"".join(pool.map(_digest, named)), digest_size=32).hexdigest()


def digest_batches(batches: Iterable[Mapping[str, torch.Tensor]]) -> str:
    """The digest of every tensor of every batch, batches in order, each batch's keys sorted."""
    hasher = hashlib.blake2b(digest_size=32)
    for i, batch in enumerate(batches):
        for key in sorted(batch):
            _update(hasher, f"{i}/{key}", torch.as_tensor(batch[key]))
    return hasher.hexdigest()
