"""Approximating the first full fine-tuning update.

With the adapters still empty (R = 0) the model is its base model, and the gradient of the
loss with respect to a wrapped layer's effective weight W0 + s·B·R·A is its gradient G with
respect to W0. Summed over a few batches, one Adam step from zero moments moves every entry
by the learning rate against the sign of its gradient:

    ΔW ≈ −lr₁ · sign(Σ_batches G)

Only the wrapped layers' gradients are computed (``torch.autograd.grad`` on their base
weights), held in at least float32, and no ``.grad`` of the model is written. In float16 a
small gradient underflows to zero, so the loss can be scaled before it is differentiated and
the gradient unscaled into the float32 sum (the scale halves and the batch is redone when a
gradient overflows), as mixed-precision training does.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

import torch
from torch import nn
from tqdm.auto import tqdm

from lorasb.method.attach import adapters

Reduce = Callable[[torch.Tensor], torch.Tensor]


def accumulate_gradients(
    model: nn.Module,
    batches: Iterable[Mapping[str, torch.Tensor]],
    weights: Mapping[str, torch.Tensor] | None = None,
    progress: bool = False,
    loss_scale: float = 1.0,
) -> dict[str, torch.Tensor]:
    """Σ over ``batches`` of ∂loss/∂W for each of ``weights`` (≥ float32), weights untouched.

    ``weights`` defaults to the base weights W0 of the model's LoRA-SB layers. Each batch is
    passed as ``model(**batch)`` in train mode and its output's ``.loss`` (times ``loss_scale``,
    see the module docstring) is differentiated. The model's train/eval mode and
    ``requires_grad`` flags are restored.
    """
    if weights is None:
        layers = adapters(model)
        if not layers:
            raise ValueError("the model has no LoRA-SB layers; call lorasb.method.attach first")
        weights = {name: layer.base.weight for name, layer in layers.items()}
    sums = zero_sums(weights)
    names = list(weights)
    weights = [weights[name] for name in names]
    was_training = model.training
    model.train()
    try:
        for w in weights:
            w.requires_grad_(True)
        count = 0
        for batch in tqdm(batches, desc="estimating the first full fine-tuning gradient", disable=not progress):
            grads, scale = _scaled_gradients(model, batch, weights, loss_scale)
            for name, grad in zip(names, grads):
                if grad is None:
                    raise RuntimeError(f"layer {name!r} got no gradient: it does not take part in the loss")
                sums[name] += grad.to(sums[name].dtype) / scale
            count += 1
    finally:
        for w in weights:
            w.requires_grad_(False)
        model.train(was_training)
    if count == 0:
        raise ValueError("no batches to estimate the update from; give at least one batch")
    return sums


def zero_sums(weights: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A zero gradient sum for each weight, in at least float32."""
    return {name: torch.zeros_like(w, dtype=torch.promote_types(w.dtype, torch.float32)) for name, w in weights.items()}


def _scaled_gradients(
    model: nn.Module, batch: Mapping[str, torch.Tensor], weights: list[torch.Tensor], scale: float
) -> tuple[tuple[torch.Tensor | None, ...], float]:
    """∂(scale·loss)/∂weights of one batch and the scale used: halved until no gradient overflows."""
    while True:
        loss = model(**batch).loss
        grads = torch.autograd.grad(loss * scale, weights, allow_unused=True)
        if scale <= 1.0 or all(g is None or torch.isfinite(g).all() for g in grads):
            return grads, scale
        scale /= 2


def estimate_update(
    model: nn.Module,
    batches: Iterable[Mapping[str, torch.Tensor]],
    lr: float,
    reduce: Reduce | None = None,
    progress: bool = False,
    loss_scale: float = 1.0,
) -> dict[str, torch.Tensor]:
    """``{name: −lr·sign(ΣG)}`` (out×in, at least float32) for every LoRA-SB layer of ``model``.

    ``reduce`` sums a tensor across processes (data parallel): each process passes its own share
    of the samples and the summed gradient is taken before the sign. NaN or Inf in a gradient
    raises an error that names the layer. ``loss_scale`` > 1 keeps float16 gradients from
    underflowing (see the module docstring); it does not change the result otherwise.
    """
    if not lr > 0:
        raise ValueError(f"the first-step learning rate must be positive, got {lr}")
    sums = reduced(accumulate_gradients(model, batches, progress=progress, loss_scale=loss_scale), reduce)
    return {name: grad.sign_().mul_(-lr) for name, grad in sums.items()}


def reduced(sums: Mapping[str, torch.Tensor], reduce: Reduce | None = None) -> dict[str, torch.Tensor]:
    """``sums`` summed across processes by ``reduce`` (if given), each checked to be finite."""
    checked = {}
    for name, grad in sums.items():
        if reduce is not None:
            grad = reduce(grad)
        if not torch.isfinite(grad).all():
            raise FloatingPointError(
                f"the gradient of layer {name!r} contains NaN or Inf; check the inputs and the loss "
                "(a lower precision, an empty label mask or a too long sequence are usual causes)"
            )
        checked[name] = grad
    return checked
