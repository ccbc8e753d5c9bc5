"""LoRA-SB: fine-tune through W = W0 + s·B·R·A, training only the r×r matrix R.

The method itself is plain PyTorch and works in any training loop::

    import lorasb
    layers = lorasb.attach(model, ["q_proj", "v_proj"], rank=16)
    updates = lorasb.estimate_update(model, few_batches, lr=first_step_lr)
    lorasb.initialize(model, updates)
    # ... train the parameters that require grad (the lora_R cores) ...
    lorasb.export_peft(model, "adapter/")  # or lorasb.merge(model)

The names below load ``lorasb.method`` (and torch) on first use, so the command-line entry
points start quickly.
"""

from importlib import import_module
from typing import Any

__all__ = [
    "LoraSBLinear",
    "SVDConfig",
    "adapters",
    "attach",
    "count_parameters",
    "estimate_update",
    "export_peft",
    "initialize",
    "merge",
    "unfreeze",
]


def __getattr__(name: str) -> Any:
    if name in __all__:
        return getattr(import_module("lorasb.method"), name)
    raise AttributeError(f"module 'lorasb' has no attribute {name!r}")
