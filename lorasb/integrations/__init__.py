"""LoRA-SB in transformers' ``Trainer`` and TRL's ``SFTTrainer``: :func:`attach_for_trainer` adapts
the model, :class:`LoraSBCallback` initialises it when training begins (README.md beside this file)."""

from lorasb.integrations.attach import attach_for_trainer
from lorasb.integrations.callback import LoraSBCallback

__all__ = ["LoraSBCallback", "attach_for_trainer"]
