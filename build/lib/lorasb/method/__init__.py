"""The LoRA-SB method in plain PyTorch (no Lightning or Hydra): layer, attach, estimate, initialise, export."""

from lorasb.method.attach import adapters, attach, count_parameters, merge
from lorasb.method.estimate import estimate_update
from lorasb.method.export import export_peft
from lorasb.method.initialize import SVDConfig, initialize
from lorasb.method.layer import LoraSBLinear

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
