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
- the model's configuration (dropout probabilities, activation, attention implementation...),
  the target weights' names, the seed (it draws the estimate's dropout masks) and the settings
  of ``gradient_cache.depends_on`` (precision, accumulator dtype, ...).

Under data parallelism process 0 makes the key from the init samples in their global order (the
batches one process would sum over; the processes deal them out between them) and sends it to
the others, so all agree. The number of processes is not in the key: the same samples summed by
more processes give the same ΣG but for the order of the additions (and, with dropout, other
masks), as a sweep over world sizes expects.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping

import lightning as L
import torch
from torch import nn

from lorasb.method.base import Method
from lorasb.method.cache import GradientCache
from lorasb.method.fingerprint import digest_batches, digest_tensors

log = logging.getLogger(__name__)


def gradient_cache(module: L.LightningModule, batches: Iterable[Mapping[str, torch.Tensor]]) -> GradientCache:
    """The cache of ``module``'s run (``gradient_cache.dir``; none for a method that needs no ΣG)
    for the estimate over ``batches``, this process's initialisation batches (all of them where
    it is the only one)."""
    config = module.cache_settings
    if config.dir is None or not module.method.needs_gradients:
        return GradientCache(None, {})
    trainer, settings = module.trainer, config.depends_on
    inputs = None
    if trainer.is_global_zero:
        if trainer.world_size > 1:  # the processes' shares of the samples, in the global order
            init = module.init_settings
            batches = trainer.datamodule.init_dataloader(init.num_samples, init.batch_size)
        start = time.perf_counter()
        inputs = estimate_inputs(module.method, module.model, batches, trainer.datamodule.seed, settings)
        log.info("gradient cache key: init batches and model digested in %.2fs", time.perf_counter() - start)
    if trainer.world_size > 1:
        inputs = trainer.strategy.broadcast(inputs, src=0)
    about = {"model": module.model_settings.name_or_path, "data": _describe(settings.get("data") or {})}
    return GradientCache(config.dir, inputs, writer=trainer.is_global_zero, about=about)


def estimate_inputs(method: Method, model: nn.Module, batches: Iterable[Mapping[str, torch.Tensor]], seed: int, settings: Mapping) -> dict:
    """What ΣG of ``method``'s target weights in ``model`` over ``batches`` is computed from: the cache's key."""
    config = getattr(model, "config", None)
    return {
        "batches": digest_batches(batches),
        "weights": digest_tensors(method.unadapted_tensors(model)),
        "architecture": config.to_dict() if hasattr(config, "to_dict") else type(model).__name__,
        "targets": sorted(method.target_weights(model)),
        "seed": seed,
        "settings": dict(settings),
    }


def _describe(data: Mapping) -> str:
    """The data's task, folder (or the Hub) and row limit, for listings."""
    where = data.get("dir") or "the Hub"
    limit = f", first {data['train_limit']} rows" if data.get("train_limit") else ""
    return f"{data.get('task') or 'a task'} from {where}{limit}"
