"""Data modules (GLUE, instruction tuning) and the instruction models' evaluation sets."""

from .base import TextDataModule
from .eval_sets import EVAL_SETS, EvalSet, eval_set
from .glue import GlueDataModule
from .glue_tasks import GLUE_TASKS, GlueTask, glue_task
from .instruction import INSTRUCTION_SETS, InstructionDataModule, encode_examples, fit_to_length

__all__ = [
    "EVAL_SETS",
    "GLUE_TASKS",
    "INSTRUCTION_SETS",
    "EvalSet",
    "GlueDataModule",
    "GlueTask",
    "InstructionDataModule",
    "TextDataModule",
    "encode_examples",
    "eval_set",
    "fit_to_length",
    "glue_task",
]
