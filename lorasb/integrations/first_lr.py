"""lr₁, the learning rate of the first optimizer step that moves the weights, from a trainer's own
optimizer and scheduler.

A scheduler has set the optimizer's lr for step 0 by the time training begins. transformers'
warm-up schedules start at 0 (step k of w warm-up steps gets lr·k/w), so their step 0 moves
nothing and the first step that does is step 1, at lr/w; for a ``LambdaLR`` (every transformers
schedule) that lr is read from its factor, without stepping it.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch.optim.lr_scheduler import LambdaLR


def first_step_lr(optimizer: torch.optim.Optimizer, scheduler: object, parameters: Iterable[torch.Tensor]) -> float:
    """The lr the first moving step gives ``parameters`` (the LoRA-SB cores); they must share one."""
    held = {id(p) for p in parameters}
    groups = [i for i, group in enumerate(optimizer.param_groups) if held & {id(p) for p in group["params"]}]
    if not groups:
        raise ValueError("the optimizer holds none of the LoRA-SB cores: build the trainer after attach_for_trainer")
    lrs = {optimizer.param_groups[i]["lr"] for i in groups}
    if lrs == {0.0}:
        lrs = _next_step_lrs(scheduler, groups)
    if len(lrs) != 1:
        raise ValueError(f"the LoRA-SB cores have different learning rates {sorted(lrs)}; give LoraSBCallback(first_lr=...)")
    lr = lrs.pop()
    if not lr > 0:
        raise ValueError(f"the first two optimizer steps have learning rate {lr}; give LoraSBCallback(first_lr=...)")
    return float(lr)


def _next_step_lrs(scheduler: object, groups: list[int]) -> set[float]:
    """The lrs the scheduler gives step 1 to the param groups ``groups``."""
    scheduler = getattr(scheduler, "scheduler", scheduler)  # accelerate's AcceleratedScheduler wraps it
    if not isinstance(scheduler, LambdaLR):
        raise ValueError(
            f"the first optimizer step has learning rate 0 and the scheduler ({type(scheduler).__name__}) does not say "
            "the next one's; give LoraSBCallback(first_lr=...)"
        )
    return {scheduler.base_lrs[i] * scheduler.lr_lambdas[i](1) for i in groups}
