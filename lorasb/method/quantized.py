"""Linear layers whose weight bitsandbytes holds in 4 or 8 bits: their shape and their float weight.

A 4-bit weight (``Params4bit``) is stored packed, two entries a byte, with its shape in its
quantization state; an 8-bit one (``Int8Params``) keeps its shape, with one scale per row.
"""

from __future__ import annotations

import torch
from torch import nn


def is_quantized(weight: torch.Tensor) -> bool:
    """Whether ``weight`` is stored as integers (a bitsandbytes 4-bit or 8-bit weight)."""
    return not weight.dtype.is_floating_point


def weight_shape(weight: torch.Tensor) -> torch.Size:
    """out×in of a linear layer's weight, quantized or not."""
    state = getattr(weight, "quant_state", None)
    return state.shape if state is not None else weight.shape


def compute_dtype(weight: torch.Tensor) -> torch.dtype:
    """The dtype a layer computes in: its weight's, or float32 for a weight stored as integers (quantized)."""
    return weight.dtype if weight.dtype.is_floating_point else torch.float32


def float_weight(layer: nn.Linear) -> torch.Tensor:
    """The layer's weight as a float32 (quantized) or own-dtype (float) out×in tensor."""
    weight = layer.weight
    if not is_quantized(weight):
        return weight
    from peft.utils.integrations import dequantize_bnb_weight

    return dequantize_bnb_weight(weight, getattr(layer, "state", None)).to(torch.float32)


def float_linear(layer: nn.Linear, weight: torch.Tensor | None = None) -> nn.Linear:
    """A plain float ``nn.Linear`` with ``layer``'s bias and ``weight`` (default: its dequantized weight)."""
    weight = float_weight(layer) if weight is None else weight
    plain = nn.Linear(layer.in_features, layer.out_features, bias=layer.bias is not None, device=weight.device, dtype=weight.dtype)
    with torch.no_grad():
        plain.weight.copy_(weight)
        if layer.bias is not None:
            plain.bias.copy_(layer.bias)
    return plain.requires_grad_(False)


def dequantize_linears(model: nn.Module) -> nn.Module:
    """Replace, in place, every quantized linear layer of ``model`` by a float32 one with its
    dequantized weight, and drop a Hugging Face model's record of its quantization."""
    for name, module in list(model.named_modules()):
        if isinstance(module, nn.Linear) and is_quantized(module.weight):
            parent, _, child = name.rpartition(".")
            setattr(model.get_submodule(parent), child, float_linear(module))
    quantizer = getattr(model, "hf_quantizer", None)
    if quantizer is not None:
        quantizer.remove_quantization_config(model)
    return model
