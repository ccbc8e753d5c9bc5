"""Timing and peak memory of one measured call, on the CPU or a CUDA device."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path

import torch

STATUS = Path("/proc/self/status")
CLEAR_REFS = Path("/proc/self/clear_refs")
LIBC = ctypes.CDLL(ctypes.util.find_library("c"))


def memory_measure(device: str) -> str:
    """What the memory figures are, in words."""
    if device.startswith("cuda"):
        return "peak GPU memory allocated by PyTorch in the measuring process (torch.cuda.max_memory_allocated)"
    return (
        "peak RSS of the measuring process (VmHWM, reset through /proc/self/clear_refs before each "
        "measurement, after malloc_trim returned the freed heap)"
    )


def _status_bytes(field: str) -> int:
    for line in STATUS.read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"{STATUS} has no {field}")


def reset_peak(device: str) -> int:
    """Start a new peak; returns the memory in use now, in bytes."""
    if device.startswith("cuda"):
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        return torch.cuda.memory_allocated(device)
    if hasattr(LIBC, "malloc_trim"):  # glibc keeps freed heap resident: the last call's peak would stay in RSS
        LIBC.malloc_trim(0)
    CLEAR_REFS.write_text("5")
    return _status_bytes("VmRSS")


def peak(device: str) -> int:
    """The peak memory since :func:`reset_peak`, in bytes."""
    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated(device)
    return _status_bytes("VmHWM")


def seconds(call: Callable[[], object], device: str) -> float:
    """Wall-clock seconds ``call()`` takes, its CUDA work included."""
    if device.startswith("cuda"):
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    call()
    if device.startswith("cuda"):
        torch.cuda.synchronize(device)
    return time.perf_counter() - start


def measured(run: Callable[[], dict[str, float]], device: str) -> dict:
    """One measurement of ``run`` (which returns the seconds of its phases, if it has several):
    seconds, peak memory and the memory in use at the start."""
    start_bytes = reset_peak(device)
    phases: dict[str, float] = {}
    total = seconds(lambda: phases.update(run()), device)
    return {"seconds": total, "peak_bytes": peak(device), "start_bytes": start_bytes, "phases": phases}


def machine(device: str) -> dict:
    """The processor (and GPU, on CUDA) and the library versions measured with."""
    import peft
    import transformers

    cpu = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        names = [line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines() if line.startswith("model name")]
        cpu = names[0] if names else cpu
    return {
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "gpu": torch.cuda.get_device_name(device) if device.startswith("cuda") else None,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "peft": peft.__version__,
    }
