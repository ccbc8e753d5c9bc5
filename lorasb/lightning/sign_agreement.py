"""How far quantizing the base moves the first-step estimate: per target layer, the fraction of
entries where sign(ΣG) on the quantized base equals sign(ΣG) on the float base it was quantized from.

The float base is loaded beside the quantized one (``model.dtype``, no quantization) and passes
over the same batches with the same dropout seed, so the only difference is the quantized W0.
"""

from __future__ import annotations

import gc
from collections.abc import Iterable, Mapping

import torch

from lorasb.method.estimate import accumulate_gradients
from lorasb.models import load_causal_lm
from lorasb.settings.model import ModelSettings


def float_base_signs(settings: ModelSettings, names: Iterable[str], batches: list, seed: int | None, device: torch.device) -> dict[str, torch.Tensor]:
    """sign(ΣG) as int8 of the layers ``names`` of the unquantized base model over ``batches``."""
    model = load_causal_lm(settings.name_or_path, settings.dtype).to(device)
    weights = {name: model.get_submodule(name).weight for name in names}
    signs = accumulate_gradients(model, batches, weights, form="sign", seed=seed)
    del model, weights
    gc.collect()
    return signs


def agreement(signs: Mapping[str, torch.Tensor], reference: Mapping[str, torch.Tensor]) -> dict[str, float]:
    """Per layer of ``signs``, the fraction of its entries equal to ``reference``'s."""
    return {name: (s.to(reference[name].device) == reference[name]).float().mean().item() for name, s in signs.items()}


def summary(per_layer: Mapping[str, float]) -> dict:
    """What init_stats.json records: the mean and least agreement over the layers, and each layer's."""
    values = list(per_layer.values())
    return {"mean": sum(values) / len(values), "min": min(values), "layers": dict(per_layer)}
