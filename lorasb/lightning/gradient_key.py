"""The gradient cache of a run, keyed by what its summed gradient ΣG is computed from.

The key holds:

- a digest of the initialisation batches: every tensor of every batch (token ids, attention
  masks, labels), in order, as the estimate's loader yields them after tokenisation, so a
  flipped label, an added row or a tokenizer that splits a word otherwise changes it;
- a digest of the model as the estimate reads it: every parameter and buffer but the empty
  adapters' (:meth:`lorasb.method.base.Method.unadapted_tensors`), hashed whole with its name,
  dtype and shape. ΣG of a target layer depends on every weight the forward and backward pass
  through, the freshly initialised head and its prior bias too, and nothing else of the model
  enters the estimate, so this changes whenever anything ΣG reads does: a fine-tuned model saved
  into the same folder, a Hub model updated under its name, another head. It names no adapter
  tensor, so rank and method change none of it;
- the target weights' names, the seed (it draws the estimate's dropout masks) and the settings
  of ``gradient_cache.depends_on`` (precision, accumulator dtype, ...).

Under data parallelism every process digests its own batches; the digests are gathered in rank
order, so all processes compute the same key.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence

import lightning as L
import torch
from torch import nn

from lorasb.method.base import Method
from lorasb.method.cache import GradientCache
from lorasb.method.fingerprint import digest_batches, digest_tensors

log = logging.getLogger(__name__)


def gradient_cache(module: L.LightningModule, batches: Sequence[Mapping[str, torch.Tensor]]) -> GradientCache:
    """The cache of ``module``'s run (``gradient_cache.dir``; none for a method that needs no ΣG)
    for the estimate over ``batches``, this process's initialisation batches."""
    config = module.hparams.gradient_cache or {}
    if config.get("dir") is None or not module.method.needs_gradients:
        return GradientCache(None, {})
    start = time.perf_counter()
    settings = config.get("depends_on", {})
    gather = lambda digest: _gathered(module, digest)  # noqa: E731
    inputs = estimate_inputs(module.method, module.model, batches, module.trainer.datamodule.seed, settings, gather)
    log.info("gradient cache key: init batches and model digested in %.2fs", time.perf_counter() - start)
    about = {"model": module.hparams.model.get("name_or_path"), "data": _describe(settings.get("data", {}))}
    return GradientCache(config["dir"], inputs, writer=module.trainer.is_global_zero, about=about)


def estimate_inputs(
    method: Method,
    model: nn.Module,
    batches: Iterable[Mapping[str, torch.Tensor]],
    seed: int,
    settings: Mapping,
    gather: Callable[[str], list[str]] = lambda digest: [digest],
) -> dict:
    """What ΣG of ``method``'s target weights in ``model`` over ``batches`` is computed from: the
    cache's key. ``gather``: every process's digest of its batches and model, in rank order."""
    digests = gather(digest_batches(batches) + digest_tensors(method.unadapted_tensors(model)))
    return {
        "batches": [digest[:64] for digest in digests],
        "weights": [digest[64:] for digest in digests],
        "targets": sorted(method.target_weights(model)),
        "seed": seed,
        "settings": dict(settings),
    }


def _gathered(module: L.LightningModule, digest: str) -> list[str]:
    """Every process's ``digest`` (hex), in rank order."""
    if module.trainer.world_size == 1:
        return [digest]
    local = torch.tensor(list(bytes.fromhex(digest)), dtype=torch.uint8, device=module.device)
    return [bytes(row.tolist()).hex() for row in module.trainer.strategy.all_gather(local).cpu()]


def _describe(data: Mapping) -> str:
    """The data's task, folder (or the Hub) and row limit, for listings."""
    where = data.get("dir") or "the Hub"
    limit = f", first {data['train_limit']} rows" if data.get("train_limit") else ""
    return f"{data.get('task', '?')} from {where}{limit}"
