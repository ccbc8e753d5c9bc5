"""Learning-rate schedules with linear warm-up, as a factor of the peak learning rate.

Optimizer step k (counted from 0) uses ``lr · factor(k)``:

    warm-up   k < w :  (k + 1) / w          the first step already moves, at lr / w
    linear          :  (T − k) / (T − w)    down to 0 at step T
    cosine          :  ½ · (1 + cos(π · (k − w) / (T − w)))
    constant        :  1

so the learning rate of the first real step, lr₁ = lr · factor(0), is what the LoRA-SB
initialisation needs.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from lorasb.settings.optim import SCHEDULES


def warmup_steps(total_steps: int, warmup_ratio: float) -> int:
    """Number of warm-up steps for a ratio of the total (rounded up, 0 for a ratio of 0)."""
    if not 0.0 <= warmup_ratio < 1.0:
        raise ValueError(f"warmup_ratio must be in [0, 1), got {warmup_ratio}")
    return math.ceil(total_steps * warmup_ratio)


def lr_factor(kind: str, total_steps: int, warmup_ratio: float = 0.0) -> Callable[[int], float]:
    """The factor of the peak learning rate at each optimizer step (see the module docstring)."""
    if kind not in SCHEDULES:
        raise ValueError(f"unknown schedule {kind!r}; choose one of {', '.join(SCHEDULES)}")
    if total_steps < 1:
        raise ValueError(f"total_steps must be at least 1, got {total_steps}")
    warmup = warmup_steps(total_steps, warmup_ratio)
    decay = max(1, total_steps - warmup)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / decay)
        if kind == "linear":
            return 1.0 - progress
        if kind == "cosine":
            return 0.5 * (1.0 + math.cos(math.pi * progress))
        return 1.0

    return factor
