"""The methods in plain PyTorch (no Lightning or Hydra): the LoRA-SB layer, attach, estimate, initialise, export,
and every fine-tuning method as a strategy (``build_method``)."""

from lorasb.method.attach import adapters, attach, count_parameters, merge, unfreeze
from lorasb.method.estimate import estimate_update
from lorasb.method.export import export_peft
from lorasb.method.initialize import SVDConfig, initialize
from lorasb.method.layer import LoraSBLinear
from lorasb.method.base import Method
from lorasb.method.registry import build_method

__all__ = [
    "LoraSBLinear",
    "Method",
    "SVDConfig",
    "adapters",
    "attach",
    "build_method",
    "count_parameters",
    "estimate_update",
    "export_peft",
    "initialize",
    "merge",
    "unfreeze",
]
