"""A 4-bit base that stays differentiable on every CPU."""

from __future__ import annotations

from torch import nn


def keep_differentiable(model: nn.Module) -> nn.Module:
    """Keep every 4-bit layer on its differentiable kernel. On a CPU with AVX512-BF16, bitsandbytes
    repacks a 4-bit weight for a faster kernel the first time its layer runs in eval mode on an
    input that needs no gradient (a validation pass), and that kernel has no backward: the
    gradient of every layer below would be lost, silently, in the estimate and in training. The
    repacking is turned off and any weight already repacked is put back."""
    for layer in model.modules():
        if not hasattr(layer, "support_avx512bf16_for_cpu"):  # bitsandbytes' Linear4bit only
            continue
        layer.support_avx512bf16_for_cpu = False
        weight = layer.weight
        if getattr(weight.quant_state, "packing_format_for_cpu", False):
            from bitsandbytes.functional import _convert_weight_packed_for_cpu_inverse

            weight.data, weight.quant_state = _convert_weight_packed_for_cpu_inverse(weight.data, weight.quant_state)
            if layer.quant_state is not None:  # the copy bitsandbytes recovers a lost state from
                layer.quant_state = weight.quant_state
    return model
