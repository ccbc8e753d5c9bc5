"""The memory of the gradient estimate: its accumulator options, layer groups and a budget.

The estimate sums each target weight's gradient into an accumulator (float32, or bfloat16) as
backward produces it. With ``layer_groups`` = k the target layers are split into k contiguous
groups and the initialisation batches are passed over once per group, so only the largest
group's accumulators exist at a time (k× the gradient passes). For the ``sign`` form (LoRA-SB)
each finished group's sums become int8 signs, which LoRA-SB decomposes at once and frees before
the next group's pass; the ``sum`` form (LoRA-GA) keeps every group's sums, so groups do not
lower its peak. With ``offload`` the accumulators are in CPU memory and the device holds only
the gradient of the layer being added.

Peak device bytes of the estimate, besides the model and its activations:

    transient (largest gradient of one layer)
    + sign form: largest group · accumulator size
    + sum form:  all entries · accumulator size

Between two passes LoRA-SB's SVDs of a group hold its signs (1 byte an entry, less than its
sums) and one batch of same-shaped layers in float32 (at most ``init.svd.batch_bytes``).

``fit_budget`` keeps the configured dtype and offload and picks the smallest ``layer_groups``
≥ the configured one that fits ``init.memory_budget``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path

import torch

from lorasb.settings.accumulator import ACCUMULATOR_DTYPES, AccumulatorOptions
from lorasb.method.quantized import compute_dtype, weight_shape

log = logging.getLogger(__name__)

DTYPES = {name: getattr(torch, name) for name in ACCUMULATOR_DTYPES}
FORMS = ("sum", "sign")


def _greedy(sizes: Sequence[int], capacity: int, groups: int | None = None) -> list[list[int]]:
    """Positions of ``sizes`` in contiguous groups of total ≤ ``capacity`` (a size above it alone),
    closing a group early where needed to make exactly ``groups`` of them."""
    out: list[list[int]] = [[]]
    total = 0
    for i, size in enumerate(sizes):
        forced = groups is not None and len(sizes) - i == groups - len(out)  # one layer left per group to open
        if out[-1] and (total + size > capacity or forced):
            out.append([])
            total = 0
        out[-1].append(i)
        total += size
    return out


def split_groups(sizes: Sequence[int], groups: int) -> list[list[int]]:
    """``min(groups, len(sizes))`` contiguous groups of positions whose largest total is the
    smallest possible (the binary search finds that total; the greedy pass then cuts at it)."""
    groups = min(groups, len(sizes))
    low, high = max(sizes), sum(sizes)
    while low < high:
        middle = (low + high) // 2
        if len(_greedy(sizes, middle)) <= groups:
            high = middle
        else:
            low = middle + 1
    return _greedy(sizes, low, groups)


def group_names(weights: Mapping[str, torch.Tensor], groups: int) -> list[list[str]]:
    """The names of ``weights`` in ``groups`` contiguous groups of about equal numbers of entries."""
    names = list(weights)
    return [[names[i] for i in group] for group in split_groups([_entries(w) for w in weights.values()], groups)]


def _entries(weight: torch.Tensor) -> int:
    """The entries of a weight's gradient (out×in, also where the weight is stored quantized)."""
    return weight_shape(weight).numel()


def _largest_gradient(weights: Mapping[str, torch.Tensor]) -> int:
    return max(_entries(w) * compute_dtype(w).itemsize for w in weights.values())


def needed_bytes(weights: Mapping[str, torch.Tensor], options: AccumulatorOptions, form: str, on_device: bool = True) -> int:
    """Peak device bytes of the estimate (see the module docstring); ``on_device``: False when the
    accumulators are in CPU memory apart from the device (offload on a GPU)."""
    transient = _largest_gradient(weights)
    if not on_device:
        return transient
    size = DTYPES[options.dtype].itemsize
    if form == "sum":
        return transient + sum(_entries(w) for w in weights.values()) * size
    largest = max(sum(_entries(weights[name]) for name in group) for group in group_names(weights, options.layer_groups))
    return transient + largest * size


def fit_budget(
    weights: Mapping[str, torch.Tensor], options: AccumulatorOptions, form: str, budget: int | None, on_device: bool = True
) -> AccumulatorOptions:
    """``options`` with the smallest ``layer_groups`` ≥ the configured one whose peak (``needed_bytes``)
    is at most ``budget`` bytes; ``options`` unchanged without a budget. ValueError if none fits."""
    if budget is None:
        return options
    sizes = [_entries(w) for w in weights.values()]
    groups = options.layer_groups
    if on_device and form == "sign":  # the entries a group's accumulators may hold; greedy cuts the fewest groups
        size = DTYPES[options.dtype].itemsize
        capacity = (budget - _largest_gradient(weights)) // size
        groups = max(groups, len(_greedy(sizes, capacity)) if capacity >= max(sizes) else len(sizes))
    fitted = replace(options, layer_groups=min(groups, len(weights)))
    needed = needed_bytes(weights, fitted, form, on_device)
    if needed > budget:
        raise ValueError(
            f"init.memory_budget={budget} bytes is less than the {needed} bytes the gradient estimate needs "
            f"(accumulators in {options.dtype}, offload={str(options.offload).lower()}, "
            f"{fitted.layer_groups} layer group{'s' if fitted.layer_groups > 1 else ''}); "
            "set init.offload=true, init.accumulator_dtype=bfloat16 or a larger init.memory_budget"
        )
    log.info(
        "init.memory_budget=%d bytes: %d layer group(s) of %s accumulators%s, %d bytes needed",
        budget, fitted.layer_groups, options.dtype, " in CPU memory" if options.offload else "", needed,
    )
    return fitted


def memory_budget(value: int | float | str | None, device: torch.device) -> int | None:
    """``init.memory_budget`` in bytes: a number, ``auto`` (the device's free memory: CUDA's, or
    MemAvailable of /proc/meminfo on a CPU) or None (no budget)."""
    if value is None:
        return None
    if value != "auto":
        return int(value)
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("init.memory_budget=auto: /proc/meminfo has no MemAvailable line; give a number of bytes")
