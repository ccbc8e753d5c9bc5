"""Data modules: GLUE and the user's own classification and regression files for encoders;
MetaMathQA, Commonsense170K and the user's instruction files for causal language models."""

from lorasb.data.base import TextDataModule
from lorasb.data.custom import LabeledFileDataModule
from lorasb.data.glue import GlueDataModule
from lorasb.data.glue_tasks import GLUE_TASKS, GlueTask, glue_task
from lorasb.data.instruction import INSTRUCTION_SETS, InstructionDataModule, encode_examples, fit_to_length
from lorasb.data.instruction_files import InstructionFileDataModule

__all__ = [
    "GLUE_TASKS",
    "INSTRUCTION_SETS",
    "GlueDataModule",
    "GlueTask",
    "InstructionDataModule",
    "LabeledFileDataModule",
    "InstructionFileDataModule",
    "TextDataModule",
    "encode_examples",
    "fit_to_length",
    "glue_task",
]
