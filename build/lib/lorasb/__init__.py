"""LoRA-SB: fine-tune through W = W0 + s·B·R·A, training only the r×r matrix R.

The method itself is plain PyTorch and works in any training loop::

    import lorasb
    layers = lorasb.method.attach(model, ["q_proj", "v_proj"], rank=16)
    updates = lorasb.estimate_update(model, few_batches, lr=first_step_lr)
    lorasb.method.initialize(model, updates)
    # ... train the parameters that require grad (the lora_R cores) ...
    lorasb.export_peft(model, "adapter/")  # or lorasb.merge(model)
"""

from lorasb.method import (
    LoraSBLinear,
    SVDConfig,
    adapters,
    attach,
    count_parameters,
    estimate_update,
    export_peft,
    initialize,
    merge,
)

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
]
