"""LoRA-SB for instruction tuning of decoder-only language models (MetaMathQA, Commonsense170K)."""

from __future__ import annotations

import torch
from torch import nn
from torchmetrics import MeanMetric

from lorasb.models import load_causal_lm
from lorasb.models.quantization import bnb_config, prepare_for_training
from lorasb.lightning.module import FineTuningModule


class CausalLMModule(FineTuningModule):
    """Next-token loss on the response tokens of instruction examples.

    Logs ``train/loss`` and ``val/loss``, the held-out loss averaged over response tokens.

    Args:
        gradient_checkpointing: recompute activations in the backward pass (less memory,
            about a third more compute).
        **kwargs: :class:`lorasb.lightning.module.FineTuningModule` arguments.
    """

    monitor = "val/loss"

    def __init__(self, gradient_checkpointing: bool = False, **kwargs):
        self.gradient_checkpointing = gradient_checkpointing
        super().__init__(**kwargs)
        self.save_hyperparameters()
        self.val_loss = MeanMetric()

    def build_model(self) -> nn.Module:
        settings = self.model_settings
        quantized = settings.quantization is not None
        quantization = bnb_config(settings.quantization, settings.layer_compute_dtype(), settings.double_quant) if quantized else None
        model = load_causal_lm(settings.name_or_path, settings.dtype, quantization)
        if quantized:
            prepare_for_training(model, self.gradient_checkpointing)
        if self.gradient_checkpointing:
            # transformers ≥ 5 names it activation checkpointing; older releases only know the old name
            enable = getattr(model, "activation_checkpointing_enable", None) or model.gradient_checkpointing_enable
            enable({"use_reentrant": False})
            model.config.use_cache = False
        return model

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss = self.model(**batch).loss
        self.log("train/loss", loss, prog_bar=True, batch_size=len(batch["input_ids"]))
        return loss

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        loss = self.model(**batch).loss
        tokens = (batch["labels"][:, 1:] != -100).sum()  # the positions the shifted loss averages over
        self.val_loss.update(loss, weight=tokens)
        self.log("val/loss", self.val_loss, prog_bar=True, batch_size=len(batch["input_ids"]), sync_dist=True)
