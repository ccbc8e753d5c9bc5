"""The Lightning module that owns a LoRA-SB adapted model.

Order of events in ``fit``: the model and its adapters (R = 0) are built in ``__init__``;
Lightning moves them to the device, wraps them and builds the optimizer; ``on_fit_start``
then estimates the first update on a few training batches and writes B, R, A in place, so
every wrapper and the optimizer keep pointing at the same tensors. A run resumed from a
checkpoint restores the initialised factors and skips the estimate.
"""

from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path

import lightning as L
import torch
import torch.distributed as dist
from torch import nn

from lorasb.method.attach import adapters, attach, count_parameters, unfreeze
from lorasb.method.estimate import estimate_update
from lorasb.method.export import export_peft
from lorasb.method.initialize import SVDConfig, initialize
from lorasb.lightning.schedule import lr_factor

log = logging.getLogger(__name__)


class LoraSBModule(L.LightningModule):
    """Base module: adapters, SB initialisation, optimizer and schedule.

    Subclasses build the Hugging Face model (:meth:`build_model`) and define the steps.

    Args:
        model: ``name_or_path``, ``target_modules``, ``head`` (modules trained in full, e.g.
            a classifier) and ``dtype``.
        rank: r, the size of the trained r×r matrix.
        method: ``alpha`` (None → rank, scaling 1) and ``dropout`` on the adapter path.
        init: ``num_samples`` and ``batch_size`` of the update estimate; ``svd`` options
            (:class:`lorasb.SVDConfig`).
        optim: ``lr``, ``weight_decay``, ``betas``, ``scheduler`` (linear, cosine, constant),
            ``warmup_ratio``.
    """

    def __init__(self, model: dict, rank: int, method: dict, init: dict, optim: dict):
        super().__init__()
        self.save_hyperparameters()
        self.model = self.build_model().train()
        attach(self.model, model["target_modules"], rank, alpha=method.get("alpha"), dropout=method.get("dropout", 0.0))
        unfreeze(self.model, model.get("head", []))
        self.register_buffer("sb_initialized", torch.tensor(False))
        self.init_seconds: float | None = None

    def build_model(self) -> nn.Module:
        raise NotImplementedError

    # -- initialisation -------------------------------------------------------------------

    def on_fit_start(self) -> None:
        if bool(self.sb_initialized) or self.trainer.fit_loop.done:  # initialised already, or nothing to train
            return
        init = self.hparams.init
        datamodule = self.trainer.datamodule
        if not hasattr(datamodule, "init_dataloader"):
            raise TypeError("LoRA-SB initialisation needs a lorasb data module (one with init_dataloader)")
        loader = datamodule.init_dataloader(
            init["num_samples"], init["batch_size"], rank=self.global_rank, world_size=self.trainer.world_size
        )
        lr = self.first_step_lr()
        batches = (self.trainer.strategy.batch_to_device(batch) for batch in loader)
        scaler = getattr(self.trainer.precision_plugin, "scaler", None)  # float16 mixed precision
        start = time.perf_counter()
        with self.trainer.precision_plugin.forward_context():
            updates = estimate_update(
                self.model,
                batches,
                lr,
                reduce=self._sum_across_processes,
                progress=self.trainer.is_global_zero,
                loss_scale=scaler.get_scale() if scaler is not None else 1.0,
            )
        stats = initialize(self.model, updates, SVDConfig(**init.get("svd", {})))
        self._broadcast_factors()
        self.sb_initialized.fill_(True)
        self.init_seconds = time.perf_counter() - start
        samples = int(self._sum_across_processes(torch.tensor(len(loader.dataset), device=self.device)))
        self._report_init(lr, samples, stats)

    def first_step_lr(self) -> float:
        """lr₁ of the estimated first step, as ``init.first_lr`` says.

        ``schedule`` (default): the lr the configured schedule gives the first optimizer step
        (lr / warm-up steps under linear warm-up). ``reference``: the reference implementation's
        value, lr / (warmup_ratio · batches of its estimation loader over the whole training
        set · epochs), which counts batches of ``init.batch_size`` rather than optimizer steps
        (about 10× smaller than ``schedule`` for the paper's MetaMathQA setting). A number: that lr.
        """
        choice = self.hparams.init.get("first_lr", "schedule")
        if choice == "schedule":
            return self.trainer.optimizers[0].param_groups[0]["lr"]
        if choice == "reference":
            optim = self.hparams.optim
            if not optim.get("warmup_ratio"):
                raise ValueError("init.first_lr=reference divides by optim.warmup_ratio, which is 0; set a warm-up or init.first_lr=schedule")
            rows = len(self.trainer.datamodule.train_dataset)
            batches = math.ceil(rows / self.hparams.init["batch_size"])
            return optim["lr"] / (optim["warmup_ratio"] * batches * self.trainer.max_epochs)
        if isinstance(choice, (int, float)) and choice > 0:
            return float(choice)
        raise ValueError(f"init.first_lr={choice!r}: choose schedule, reference or a positive number")

    def _sum_across_processes(self, tensor: torch.Tensor) -> torch.Tensor:
        return self.trainer.strategy.reduce(tensor, reduce_op="sum") if self.trainer.world_size > 1 else tensor

    def _broadcast_factors(self) -> None:
        """Every process ends with rank 0's bit-identical B, R, A."""
        if self.trainer.world_size > 1 and dist.is_available() and dist.is_initialized():
            for layer in adapters(self.model).values():
                for factor in (layer.lora_A, layer.lora_B, layer.lora_R):
                    dist.broadcast(factor.data, src=0)

    def _report_init(self, lr: float, samples: int, stats) -> None:
        errors = {name: s.relative_error for name, s in stats.items()}
        summary = {
            "init/seconds": self.init_seconds,
            "init/first_step_lr": lr,
            "init/relative_error_mean": sum(errors.values()) / len(errors),
            **{f"init/relative_error/{name}": value for name, value in errors.items()},
        }
        for logger in self.loggers:
            logger.log_metrics(summary, step=0)
        if self.trainer.is_global_zero:
            run_dir = Path(self.trainer.default_root_dir)
            run_dir.mkdir(parents=True, exist_ok=True)
            layers = {name: {"relative_error": s.relative_error, "singular_values": s.singular_values} for name, s in stats.items()}
            (run_dir / "init_stats.json").write_text(json.dumps({"first_step_lr": lr, "samples": samples, "seconds": self.init_seconds, "layers": layers}, indent=1))
            log.info(
                "LoRA-SB initialised %d layers from %d samples in %.1fs (first-step lr %.3g, mean relative error %.3f)",
                len(stats), samples, self.init_seconds, lr, summary["init/relative_error_mean"],
            )

    # -- optimisation ---------------------------------------------------------------------

    def configure_optimizers(self):
        optim = self.hparams.optim
        params = [p for p in self.model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(
            params, lr=optim["lr"], weight_decay=optim.get("weight_decay", 0.0), betas=tuple(optim.get("betas", (0.9, 0.999)))
        )
        factor = lr_factor(optim.get("scheduler", "linear"), self.trainer.estimated_stepping_batches, optim.get("warmup_ratio", 0.0))
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
        # named for LearningRateMonitor, which logs it as train/lr
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step", "name": "train/lr"}}

    # -- checkpoints and export ----------------------------------------------------------

    def trained_keys(self) -> set[str]:
        """State-dict keys of what training changes: the adapters' factors and the trainable modules."""
        keys = {f"model.{name}" for name, p in self.model.named_parameters() if p.requires_grad}
        keys |= {f"model.{name}.{factor}" for name in adapters(self.model) for factor in ("lora_A", "lora_B", "lora_R")}
        return keys

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        """Keep only what training changes: the adapters, trained modules and the module's own state.

        The frozen base weights come back from the pretrained model when the module is built.
        """
        kept = self.trained_keys()
        state = checkpoint["state_dict"]
        checkpoint["state_dict"] = {k: v for k, v in state.items() if not k.startswith("model.") or k in kept}

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        """Refuse a checkpoint that lacks a trained tensor or holds tensors this model does not have,
        then complete it with the frozen pretrained weights this module was built with."""
        saved = checkpoint["state_dict"]
        own = self.state_dict()
        lost = sorted(self.trained_keys() - saved.keys())
        unexpected = sorted(saved.keys() - own.keys())
        if lost or unexpected:
            raise ValueError(f"the checkpoint does not match its model: missing {lost[:5]}, unexpected {unexpected[:5]}")
        checkpoint["state_dict"] = {**own, **saved}

    def parameter_counts(self) -> dict[str, int]:
        trainable, total = count_parameters(self.model)
        return {"trainable": trainable, "total": total}

    def export_adapter(self, out_dir: str | Path) -> Path:
        """The adapter (and trained head) in PEFT's LoRA format."""
        model_cfg = self.hparams.model
        return export_peft(self.model, out_dir, modules_to_save=model_cfg.get("head", []), base_model_name_or_path=model_cfg["name_or_path"])
