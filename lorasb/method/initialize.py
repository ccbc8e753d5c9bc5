"""LoRA-SB initialisation from an approximate update.

For each layer, with ΔW ≈ U_r·S_r·V_rᵀ the truncated SVD:

    B = U_r        A = V_rᵀ        R = S_r / s

so s·B·R·A is the best rank-r approximation of ΔW (Eckart–Young), B and A are orthonormal
and W0 is left as it is: training starts one approximate full step in.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import nn

from lorasb.method.attach import adapters
from lorasb.method.layer import LoraSBLinear
from lorasb.method.quantized import weight_shape
from lorasb.settings.svd import SVDConfig


@dataclass(frozen=True)
class LayerInit:
    """What initialisation achieved on one layer: the relative error ‖M − M_r‖/‖M‖ of the rank-r
    approximation M_r of the matrix M it approximates, the kept singular values and the energy
    ‖M_r‖²/‖M‖² captured at rank r."""

    relative_error: float
    singular_values: list[float]
    energy: float


def truncated_svd(matrix: torch.Tensor, rank: int, config: SVDConfig = SVDConfig()):
    """The leading ``rank`` singular triplets of ``matrix`` (m×n, or a stack of them, …×m×n):
    U (…×m×r), S (…×r), Vh (…×r×n)."""
    work = matrix if matrix.dtype in (torch.float32, torch.float64) else matrix.float()
    m, n = work.shape[-2:]
    if min(m, n) <= config.exact_max_dim:
        U, S, Vh = torch.linalg.svd(work, full_matrices=False)
        return U[..., :rank], S[..., :rank], Vh[..., :rank, :]
    devices = [work.device] if work.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(config.seed)
        U, S, V = torch.svd_lowrank(work, q=min(rank + config.oversample, m, n), niter=config.niter)
    return U[..., :rank], S[..., :rank], V[..., :rank].mT


def same_shape_batches(shapes: Mapping[str, torch.Size], batch_bytes: int) -> list[list[str]]:
    """The names grouped by shape, in order of first appearance, each group cut into batches of
    at most ``batch_bytes`` of float32 (at least one name per batch)."""
    by_shape: dict[torch.Size, list[str]] = {}
    for name, shape in shapes.items():
        by_shape.setdefault(tuple(shape), []).append(name)
    batches = []
    for shape, names in by_shape.items():
        per_batch = max(1, batch_bytes // (4 * math.prod(shape)))
        batches += [names[i : i + per_batch] for i in range(0, len(names), per_batch)]
    return batches


@torch.no_grad()
def initialize(
    model: nn.Module,
    updates: Mapping[str, torch.Tensor],
    svd: SVDConfig = SVDConfig(),
) -> dict[str, LayerInit]:
    """Write B = U_r, A = V_rᵀ, R = S_r / s into every LoRA-SB layer, in place.

    ``updates`` maps each layer name (as from :func:`lorasb.estimate_update`) to its ΔW.
    Values are copied into the existing parameters, so optimisers and distributed wrappers
    built around them stay valid. Returns per-layer statistics: the relative approximation
    error ‖ΔW − s·B·R·A‖/‖ΔW‖ and the kept singular values.
    """
    layers = adapters(model)
    missing = sorted(set(layers) - set(updates))
    unknown = sorted(set(updates) - set(layers))
    if missing or unknown:
        raise KeyError(f"updates do not match the model's LoRA-SB layers: missing {missing}, unknown {unknown}")
    stats = {}
    for name, layer in layers.items():
        delta = updates[name]
        if delta.shape != weight_shape(layer.base.weight):
            raise ValueError(f"update for {name!r} has shape {tuple(delta.shape)}, the layer {tuple(weight_shape(layer.base.weight))}")
        delta = delta.to(layer.lora_R.device)
        U, S, Vh = truncated_svd(delta, layer.rank, svd)
        write_factors(layer, U, S, Vh)
        stats[name] = approximation(delta, U, S, Vh)
    return stats


@torch.no_grad()
def write_factors(layer: LoraSBLinear, U: torch.Tensor, S: torch.Tensor, Vh: torch.Tensor) -> None:
    """Write B = U, A = Vh, R = diag(S) / s in place, so that s·B·R·A = U·diag(S)·Vh."""
    layer.lora_B.copy_(U)
    layer.lora_A.copy_(Vh)
    layer.lora_R.copy_(torch.diag(S / layer.scaling))


def approximation(matrix: torch.Tensor, U: torch.Tensor, S: torch.Tensor, Vh: torch.Tensor) -> LayerInit:
    """How well U·diag(S)·Vh approximates ``matrix``."""
    approx = (U * S) @ Vh
    matrix = matrix.to(approx)
    norm = torch.linalg.matrix_norm(matrix).clamp_min(1e-30)
    error = torch.linalg.matrix_norm(matrix - approx) / norm
    energy = torch.linalg.matrix_norm(approx) ** 2 / norm**2
    return LayerInit(relative_error=error.item(), singular_values=S.tolist(), energy=energy.item())
