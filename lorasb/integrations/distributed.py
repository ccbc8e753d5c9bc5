"""Data-parallel processes of a trainer: ΣG summed across them, rank 0's factors on all."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.distributed as dist
from torch import nn

from lorasb.method.attach import adapters


def world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def sum_across_processes(device: torch.device) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """A function that sums a tensor over every process (on ``device``, where the backend sums), or
    None on one process."""
    if world_size() == 1:
        return None

    def reduce(tensor: torch.Tensor) -> torch.Tensor:
        total = tensor.to(device)
        dist.all_reduce(total, op=dist.ReduceOp.SUM)
        return total.to(tensor.device)

    return reduce


@torch.no_grad()
def broadcast_factors(model: nn.Module) -> None:
    """Every process ends with rank 0's B, R and A, bit for bit, written in place."""
    if world_size() == 1:
        return
    for name, layer in sorted(adapters(model).items()):
        for tensor in (layer.lora_A, layer.lora_B, layer.lora_R):
            dist.broadcast(tensor.data, src=0)
