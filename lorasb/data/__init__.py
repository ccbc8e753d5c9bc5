"""Data modules: the shared text base and GLUE."""

from .base import TextDataModule
from .glue import GlueDataModule
from .glue_tasks import GLUE_TASKS, GlueTask, glue_task

__all__ = ["GLUE_TASKS", "GlueDataModule", "GlueTask", "TextDataModule", "glue_task"]
