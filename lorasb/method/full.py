"""Full fine-tuning: every weight trains."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from lorasb.method.base import Method


@dataclass
class Full(Method):
    """Full fine-tuning: every weight trains (rank, alpha and dropout are not used)."""

    name: ClassVar[str] = "full"

    def attach(self, model, targets, head=()):
        return model.requires_grad_(True)

    def export(self, model, out_dir, head, base_model, initial=None):
        """The whole fine-tuned model, in Hugging Face format."""
        model.save_pretrained(out_dir)
        return Path(out_dir)
