"""The LoRA-SB linear layer.

    y = W0·x + s · B·R·A · dropout(x)

    W0: out×in   frozen base weight (the wrapped nn.Linear, bias included)
    A : r×in     frozen, orthonormal rows after initialisation
    R : r×r      the only trained tensor
    B : out×r    frozen, orthonormal columns after initialisation
    s : scaling = alpha / r

Before initialisation R is zero, so the layer is exactly its base layer. The update is
applied through the rank-r path (x → A → R → B), so B·R·A is never formed while training.
R is held in float32 when the base is float16 or bfloat16: an Adam update far below the
half-precision spacing of R's entries would otherwise round away. The rank-r activation is
cast to R's dtype and back, so the base path and its activations stay in their precision.
Beside a quantized W0 (:mod:`lorasb.method.quantized`) A, B and R are float32, the input is
cast to their dtype and the rank-r output to the base layer's.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from lorasb.method.quantized import compute_dtype, float_linear, float_weight


def trained_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype a trained tensor is held in beside frozen weights of ``dtype``: float32 for half types."""
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype


class LoraSBLinear(nn.Module):
    """Wraps a frozen ``nn.Linear`` with a trainable r×r core between frozen B and A."""

    def __init__(self, base: nn.Linear, rank: int, alpha: float | None = None, dropout: float = 0.0):
        super().__init__()
        if not isinstance(base, nn.Linear):
            raise TypeError(f"LoraSBLinear wraps nn.Linear, got {type(base).__name__}")
        if not 1 <= rank <= min(base.in_features, base.out_features):
            raise ValueError(
                f"rank {rank} must be between 1 and min(in, out) = "
                f"{min(base.in_features, base.out_features)} of a {base.out_features}×{base.in_features} layer"
            )
        self.base = base
        base.requires_grad_(False)
        self.rank = rank
        self.alpha = float(rank if alpha is None else alpha)
        self.scaling = self.alpha / rank
        dtype = compute_dtype(base.weight)
        factory = {"device": base.weight.device, "dtype": dtype}
        self.lora_A = nn.Parameter(torch.zeros(rank, base.in_features, **factory), requires_grad=False)
        self.lora_B = nn.Parameter(torch.zeros(base.out_features, rank, **factory), requires_grad=False)
        self.lora_R = nn.Parameter(torch.zeros(rank, rank, device=base.weight.device, dtype=trained_dtype(dtype)))
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.bypassed = False  # run the base layer alone (see lorasb.method.attach.bypassing_empty_adapters)

    @property
    def in_features(self) -> int:
        return self.base.in_features

    @property
    def out_features(self) -> int:
        return self.base.out_features

    @property
    def weight(self) -> torch.Tensor:
        """The frozen base weight W0 (what code that inspects ``layer.weight`` expects)."""
        return self.base.weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.bypassed:
            return self.base(x)
        projected = F.linear(self.dropout(x).to(self.lora_A.dtype), self.lora_A)
        core = F.linear(projected.to(self.lora_R.dtype), self.lora_R).to(projected.dtype)
        low_rank = F.linear(core, self.lora_B)
        base = self.base(x)
        return torch.add(base, low_rank.to(base.dtype), alpha=self.scaling)  # no separate s·low_rank tensor

    def delta_weight(self) -> torch.Tensor:
        """s·B·R·A, the out×in change this adapter makes to W0, in the dtype of B and A.

        The product is formed in R's dtype (float32 beside a half-precision base) and rounded
        once at the end: R rounded to bfloat16 first would lose the updates below bfloat16's
        spacing that R is held in float32 to keep (tests/test_precision.py).
        """
        dtype = self.lora_R.dtype
        product = self.lora_B.to(dtype) @ self.lora_R @ self.lora_A.to(dtype)
        return (self.scaling * product).to(self.lora_B.dtype)

    @torch.no_grad()
    def merged(self) -> nn.Linear:
        """A plain ``nn.Linear`` with weight W0 + s·B·R·A and the base bias (a quantized W0
        dequantized to float32 first)."""
        weight = float_weight(self.base)
        return float_linear(self.base, weight + self.delta_weight().to(weight.dtype))

    def extra_repr(self) -> str:
        return f"rank={self.rank}, scaling={self.scaling:g}"
