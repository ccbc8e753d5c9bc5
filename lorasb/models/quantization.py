"""Quantized base models (QLoRA's setting): linear layers held in 4 or 8 bits by bitsandbytes.

The frozen W0 of every linear layer but the output head is quantized as transformers'
``BitsAndBytesConfig`` says; the adapters, the norms, the embeddings and the head are float32.
What may run on a quantized base is checked before the model loads
(:func:`lorasb.settings.model.quantization_problem`).
"""

from __future__ import annotations

import torch
from torch import nn

from lorasb.models.differentiable import keep_differentiable
from lorasb.models.loading import torch_dtype


def bnb_config(quantization: str, compute_dtype: str, double_quant: bool):
    """transformers' ``BitsAndBytesConfig`` for ``quantization`` (nf4, fp4 or int8; ``model.quantization``),
    4-bit layers computing in ``compute_dtype``, their scales quantized too where ``double_quant``."""
    from transformers import BitsAndBytesConfig

    if quantization == "int8":
        return BitsAndBytesConfig(load_in_8bit=True)
    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type=quantization,
        bnb_4bit_compute_dtype=torch_dtype(compute_dtype),
        bnb_4bit_use_double_quant=double_quant,
    )


def prepare_for_training(model: nn.Module, gradient_checkpointing: bool) -> nn.Module:
    """QLoRA's preparation: every parameter frozen, every one that is not quantized (norms,
    embeddings, head) in float32, so the activations between the quantized layers are float32
    (a 4-bit layer computes in its compute dtype and returns its input's); with gradient
    checkpointing the embeddings' output requires a gradient, so that the recomputed blocks have
    an input to differentiate through; every 4-bit layer kept differentiable (:func:`keep_differentiable`)."""
    keep_differentiable(model)
    model.requires_grad_(False)
    for parameter in model.parameters():
        if parameter.dtype in (torch.float16, torch.bfloat16):
            parameter.data = parameter.data.float()
    if gradient_checkpointing:
        model.enable_input_require_grads()
    return model
