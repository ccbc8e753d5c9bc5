"""The reference implementation's way of estimating the first gradient, for comparison."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import torch
from torch import nn


def reference_style_gradient_sums(model: nn.Module, batches: Iterable[Mapping[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Σ over ``batches`` of every parameter's gradient, estimated as the paper's code does: the
    whole model requires grad, ``loss.backward()`` runs per batch, and each parameter's ``.grad``
    is copied to the CPU and added to a CPU sum, then cleared."""
    model.requires_grad_(True)
    sums: dict[str, torch.Tensor] = {}
    for batch in batches:
        model(**batch).loss.backward()
        for name, param in model.named_parameters():
            if param.grad is None:
                continue
            grad = param.grad.detach().cpu()
            sums[name] = sums[name] + grad if name in sums else grad.clone()
            param.grad = None
    return sums
