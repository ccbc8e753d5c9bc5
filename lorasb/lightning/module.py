"""The Lightning module that owns a model adapted by a fine-tuning method (LoRA-SB by default).

Order of events in ``fit``: the model and its adapters (LoRA-SB: R = 0) are built in
``__init__``; Lightning moves them to the device, wraps them and builds the optimizer;
``on_fit_start`` then initialises the adapters in place (methods that need it get the summed
gradient of a few training batches, from the gradient cache when an earlier job of a sweep
estimated it), so every wrapper and the optimizer keep pointing at the same tensors. A run
resumed from a checkpoint restores the initialised adapters and skips this.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Mapping
from dataclasses import asdict, replace
from pathlib import Path

import lightning as L
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader

from lorasb.lightning.checkpoints import CheckpointError, changed_settings
from lorasb.method.attach import count_parameters
from lorasb.method.cache import Gradients, OnGroup
from lorasb.method.estimate import accumulate_gradients
from lorasb.method.memory import fit_budget, memory_budget
from lorasb.method.base import Method
from lorasb.method.registry import build_method
from lorasb.settings.model import quantization_problem
from lorasb.lightning import sign_agreement
from lorasb.method.targets import abbreviate, resolve_targets
from lorasb.lightning.diagnostics import log_layers
from lorasb.lightning.gradient_key import gradient_cache
from lorasb.lightning.lr_search import SearchResult, search_lr
from lorasb.lightning.schedule import lr_factor
from lorasb.settings.convert import settings_from
from lorasb.settings.gradient_cache import GradientCacheSettings
from lorasb.settings.init import InitSettings
from lorasb.settings.model import ModelSettings
from lorasb.settings.optim import OptimSettings

log = logging.getLogger(__name__)
OLD_INITIALIZED_KEY = "sb_initialized"


class FineTuningModule(L.LightningModule):
    """A model fine-tuned with any method: the method's adapters and initialisation, optimizer and schedule.

    Subclasses build the Hugging Face model (:meth:`build_model`) and define the steps.

    The settings arrive as plain mappings (as Hydra passes them, and as checkpoints keep them in
    ``hyper_parameters``) and are read once, here, into their typed settings (:mod:`lorasb.settings`):
    ``self.model_settings``, ``self.init_settings``, ``self.optim_settings`` and
    ``self.cache_settings``; a key they do not have is an error naming it.

    Args:
        model: :class:`lorasb.settings.model.ModelSettings`.
        rank: r, the size of the trained r×r matrix.
        method: ``name`` (see :func:`lorasb.method.registry.build_method`) and the method's
            options (``alpha``, ``dropout``, ...); ``lr`` (its default learning rates, read by the
            config) is not the method's.
        init: :class:`lorasb.settings.init.InitSettings`.
        optim: :class:`lorasb.settings.optim.OptimSettings`.
        gradient_cache: :class:`lorasb.settings.gradient_cache.GradientCacheSettings`
            (the key: :mod:`lorasb.lightning.gradient_key`).
    """

    def __init__(self, model: dict, rank: int, method: dict, init: dict, optim: dict, gradient_cache: dict | None = None):
        super().__init__()
        self.save_hyperparameters()
        self.model_settings, self.init_settings, self.optim_settings, self.cache_settings = typed_settings(self.hparams)
        problem = quantization_problem(method["name"], self.model_settings.quantization, self.model_settings.kind)
        if problem:
            raise ValueError(problem)
        options = {k: v for k, v in method.items() if k not in ("name", "lr")}
        self.method = build_method(method["name"], rank, options, self.init_settings.svd)
        model = self.build_model().train()
        settings = self.model_settings
        self.target_names = resolve_targets(model, settings.target_modules, settings.head)
        log.info("model.target_modules: %d linear layers, %s", len(self.target_names), ", ".join(abbreviate(self.target_names)))
        self.model = self.method.attach(model, self.target_names, settings.head)
        self.register_buffer("initialized", torch.tensor(False))
        self.init_seconds: float | None = None

    def build_model(self) -> nn.Module:
        raise NotImplementedError

    # -- initialisation -------------------------------------------------------------------

    def on_fit_start(self) -> None:
        if bool(self.initialized) or self.trainer.fit_loop.done:  # initialised already, or nothing to train
            return
        self._refuse_sharding_strategy()
        self.prepare_head()
        start = time.perf_counter()
        loader = self._init_loader() if self.method.needs_gradients else None
        batches = list(loader) if loader is not None else []  # on the host: the cache's key digests them
        cache = gradient_cache(self, batches)
        memo = lambda name, compute: cache.memo(name, compute, device=self.device)  # noqa: E731
        prepare_seconds = []
        float_signs, agreement = self._float_base_signs(batches), {}

        def prepare(group):  # as each group of layers is final (LoRA-SB: their SVDs), timed apart
            if float_signs is not None:
                agreement.update(sign_agreement.agreement(group, float_signs))
            begin = time.perf_counter()
            kept = self.method.digest_group(self.model, group, memo)
            prepare_seconds.append(time.perf_counter() - begin)
            return kept

        form = self.method.gradient_form
        estimate = lambda on_group: self._estimate_gradients(loader, batches, on_group)  # noqa: E731
        gradients = cache.gradients(estimate, form, self.device, prepare) if self.method.needs_gradients else None
        gradient_seconds = time.perf_counter() - start - sum(prepare_seconds)

        def initialize(peak_lr: float) -> dict:
            return self.method.initialize(self.model, gradients, self.first_step_lr(peak_lr), memo)

        peak_lr, search = self.optim_settings.lr, None
        if peak_lr == "auto":
            search = self._search_lr(initialize)
            peak_lr = search.lr
            self._set_peak_lr(peak_lr)
        stats = initialize(peak_lr)
        self._broadcast_initialized()
        if self.trainer.is_global_zero:
            self.method.save_initial(self.model, self.initial_adapter_dir)
        self.initialized.fill_(True)
        self.init_seconds = time.perf_counter() - start
        self._report_init(self.first_step_lr(peak_lr), gradients, stats, gradient_seconds, search, agreement)

    def _float_base_signs(self, batches: list[dict]) -> dict[str, torch.Tensor] | None:
        """``init.sign_agreement``: sign(ΣG) of the target layers on the float base (:mod:`lorasb.lightning.sign_agreement`)."""
        if not self.init_settings.sign_agreement:
            return None
        if self.model_settings.quantization is None or self.method.gradient_form != "sign":
            raise ValueError("init.sign_agreement compares sign(ΣG) of a quantized base with the float one: set model.quantization and a method that reads signs (lora_sb)")
        to_device = self.trainer.strategy.batch_to_device
        names = self.method.target_weights(self.model)
        return sign_agreement.float_base_signs(self.model_settings, names, [to_device(b) for b in batches], self.trainer.datamodule.seed, self.device)

    def prepare_head(self) -> None:
        """Set the head's starting state from the training data, before the initialisation sees the
        model (a classifier's bias, :mod:`lorasb.lightning.head_bias`); nothing by default."""

    def _refuse_sharding_strategy(self) -> None:
        """A method whose initialisation writes whole tensors cannot run where they are held in shards."""
        from lightning.pytorch.strategies import DeepSpeedStrategy, FSDPStrategy

        strategy = self.trainer.strategy
        if isinstance(strategy, (FSDPStrategy, DeepSpeedStrategy)) and type(self.method).initialize is not Method.initialize:
            raise ValueError(
                f"method={self.method.name} writes its initialisation into whole tensors, which "
                f"{type(strategy).__name__} holds in shards across processes: use trainer=ddp (the trained "
                "parameters and their optimizer state are small enough to keep on every process)"
            )

    def _init_loader(self) -> DataLoader:
        """This process's share of the ``init.num_samples`` training samples the estimate sums over."""
        init = self.init_settings
        datamodule = self.trainer.datamodule
        if not hasattr(datamodule, "init_dataloader"):
            raise TypeError(f"{self.method.name} initialisation needs a lorasb data module (one with init_dataloader)")
        return datamodule.init_dataloader(init.num_samples, init.batch_size, rank=self.global_rank, world_size=self.trainer.world_size)

    def _estimate_gradients(self, loader: DataLoader, batches: list[dict], on_group: OnGroup) -> Gradients:
        """ΣG (or its signs, as the method reads) of the method's target weights over ``batches``
        (``loader``'s, listed) on every process, held as ``init`` says (``accumulator_dtype``,
        ``offload``, ``layer_groups``, ``memory_budget``), dropout seeded by the data's seed;
        each group of layers goes to ``on_group`` as soon as it is final, and what it returns is kept."""
        init = self.init_settings
        weights = self.method.target_weights(self.model)
        form = self.method.gradient_form
        budget = memory_budget(init.memory_budget, self.device)
        options = fit_budget(weights, init.accumulator(), form, budget, on_device=not (init.offload and self.device.type == "cuda"))
        if budget is not None and self.trainer.world_size > 1:  # every process passes over the same groups
            groups = self.trainer.strategy.reduce(torch.tensor(options.layer_groups, device=self.device), reduce_op="max")
            options = replace(options, layer_groups=int(groups))
        to_device = self.trainer.strategy.batch_to_device
        on_device = [to_device(batch) for batch in batches] if options.layer_groups > 1 else map(to_device, batches)
        scaler = getattr(self.trainer.precision_plugin, "scaler", None)  # float16 mixed precision
        # one layer at a time to the device and back: the backend may sum only device tensors
        reduce = lambda total: self._sum_across_processes(total.to(self.device)).to(total.device)  # noqa: E731
        with self.trainer.precision_plugin.forward_context():
            sums = accumulate_gradients(
                self.model,
                on_device,  # none where more processes than init samples: this one adds nothing to the sum
                weights,
                progress=self._show_progress(),
                loss_scale=scaler.get_scale() if scaler is not None else 1.0,
                form=form,
                options=options,
                reduce=reduce,
                on_group=on_group,
                seed=self.trainer.datamodule.seed,
            )
        counts = self._sum_across_processes(torch.tensor([len(loader), len(loader.dataset)], device=self.device))
        return Gradients(sums, batches=int(counts[0]), samples=int(counts[1]), accumulator=options.as_dict())

    def first_step_lr(self, peak_lr: float) -> float:
        """lr₁ of the estimated first step for a run whose peak lr is ``peak_lr``, as ``init.first_lr`` says.

        ``schedule``: the lr the configured schedule gives the first optimizer step
        (peak / warm-up steps under linear warm-up). ``reference``: the reference implementation's
        value, lr / (warmup_ratio · batches of its estimation loader over the whole training
        set · epochs), which counts batches of ``init.batch_size`` rather than optimizer steps
        (about 10× smaller than ``schedule`` for the paper's MetaMathQA setting). A number: that lr.
        """
        choice = self.init_settings.first_lr
        if choice == "schedule":
            return peak_lr * self._scheduler.lr_lambdas[0](0)
        if choice == "reference":
            warmup_ratio = self.optim_settings.warmup_ratio
            if not warmup_ratio:
                raise ValueError("init.first_lr=reference divides by optim.warmup_ratio, which is 0; set a warm-up or init.first_lr=schedule")
            rows = len(self.trainer.datamodule.train_dataset)
            batches = math.ceil(rows / self.init_settings.batch_size)
            return peak_lr / (warmup_ratio * batches * self.trainer.max_epochs)
        if isinstance(choice, (int, float)) and choice > 0:
            return float(choice)
        raise ValueError(f"init.first_lr={choice!r}: choose schedule, reference or a positive number")

    @property
    def _scheduler(self) -> torch.optim.lr_scheduler.LambdaLR:
        return self.trainer.lr_scheduler_configs[0].scheduler

    def _set_peak_lr(self, peak_lr: float) -> None:
        """Make ``peak_lr`` the optimizer's lr before the first step (the schedule scales it from there)."""
        scheduler = self._scheduler
        scheduler.base_lrs = [peak_lr] * len(scheduler.base_lrs)
        for group, factor in zip(scheduler.optimizer.param_groups, scheduler.lr_lambdas):
            group["initial_lr"] = peak_lr
            group["lr"] = peak_lr * factor(scheduler.last_epoch)

    def _search_lr(self, initialize) -> SearchResult:
        """``optim.lr=auto``: a range test over ``optim.auto_lr.candidates`` (:mod:`lorasb.lightning.lr_search`).

        The candidates step on ``steps`` batches of training rows and are scored on
        ``score_rows`` other training rows, in batches of the same size (both seeded subsets;
        training itself then uses every row). Every process runs the same test on the same rows;
        rank 0's choice is used by all.
        """
        optim = self.optim_settings
        options = optim.auto_lr
        datamodule = self.trainer.datamodule
        if not hasattr(datamodule, "init_dataloader"):
            raise TypeError("optim.lr=auto needs a lorasb data module (one with init_dataloader)")
        rows = len(datamodule.train_dataset)
        if rows < 2:
            raise ValueError(f"optim.lr=auto needs at least 2 training rows (1 to step on, 1 to score), got {rows}: set optim.lr to a number")
        steps, batch_size = options.steps, options.batch_size or datamodule.batch_size
        score_rows = min(options.score_rows, rows // 2)
        step_rows = min(steps * batch_size, rows - score_rows)
        to_device = self.trainer.strategy.batch_to_device
        train = [to_device(b) for b in datamodule.init_dataloader(step_rows, batch_size)]
        scored = [to_device(b) for b in datamodule.init_dataloader(score_rows, batch_size, skip=step_rows)]
        result = search_lr(
            self.model,
            [float(lr) for lr in options.candidates],
            initialize,
            self.initialized_names(),
            train,
            scored,
            {"weight_decay": optim.weight_decay, "betas": tuple(optim.betas)},
            clip_norm=self.trainer.gradient_clip_val,
            seed=datamodule.seed,
            stop_z=float(options.stop_z),
            forward_context=self.trainer.precision_plugin.forward_context,
            progress=self._show_progress(),
        )
        if self.trainer.world_size > 1:
            result = replace(result, lr=self.trainer.strategy.broadcast(result.lr, src=0))
        scores = ", ".join(f"{lr:g}: {score:.4f}" for lr, score in result.scores.items())
        log.info(
            "optim.lr=auto chose %g in %.1fs (held-out loss before any step %.4f; after %d steps: %s)%s",
            result.lr, result.seconds, result.untrained, steps, scores,
            "" if result.conclusive else ": no candidate beat the untrained model beyond the noise, so the middle one was taken",
        )
        return result

    def _show_progress(self) -> bool:
        """Progress bars of the initialisation: on rank 0, where the run shows its progress bar."""
        return self.trainer.is_global_zero and self.trainer.progress_bar_callback is not None

    def _sum_across_processes(self, tensor: torch.Tensor) -> torch.Tensor:
        return self.trainer.strategy.reduce(tensor, reduce_op="sum") if self.trainer.world_size > 1 else tensor

    def _broadcast_initialized(self) -> None:
        """Every process ends with rank 0's bit-identical initialised tensors."""
        if self.trainer.world_size > 1 and dist.is_available() and dist.is_initialized():
            parameters = dict(self.model.named_parameters())
            for name in sorted(self.initialized_names()):
                dist.broadcast(parameters[name].data, src=0)

    def initialized_names(self) -> set[str]:
        """Parameter names (in ``self.model``) of what the initialisation writes or training changes."""
        return {name for name, p in self.model.named_parameters() if p.requires_grad} | self.method.written_frozen(self.model)

    def _report_init(
        self, lr: float, gradients: Gradients | None, stats: dict, gradient_seconds: float, search: SearchResult | None, agreement: dict
    ) -> None:
        """Init figures to the loggers (step 0) and ``init_stats.json``; one line printed."""
        counts = self.parameter_counts()
        figures = {
            "init/seconds": self.init_seconds,
            "init/gradient_seconds": gradient_seconds,
            "init/factor_seconds": self.init_seconds - gradient_seconds,  # SVDs and writing the adapters
            "init/first_step_lr": lr,
            "parameters/trainable": counts["trainable"],
            "parameters/total": counts["total"],
            "parameters/trainable_ratio": counts["trainable"] / counts["total"],
        }
        if stats:
            figures["init/relative_error_mean"] = sum(s.relative_error for s in stats.values()) / len(stats)
            figures["init/energy_mean"] = sum(s.energy for s in stats.values()) / len(stats)
            figures |= {f"init/relative_error/{name}": s.relative_error for name, s in stats.items()}
        if search is not None:
            figures["init/auto_lr"] = search.lr
            figures["init/auto_lr_seconds"] = search.seconds
            figures |= {f"init/auto_lr/loss_at_{lr:g}": score for lr, score in search.scores.items()}
            figures["init/auto_lr/loss_untrained"] = search.untrained
        for logger in self.loggers:
            logger.log_metrics(figures, step=0)
        if not self.trainer.is_global_zero:
            return
        log_layers(self.loggers, stats)
        run_dir = Path(self.trainer.default_root_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        record = {
            "method": self.method.name,
            "first_step_lr": lr,
            "samples": gradients.samples if gradients else 0,
            "gradients": "none" if gradients is None else "cached" if gradients.cached else "estimated",
            "accumulator": gradients.accumulator if gradients else None,  # dtype, offload, layer_groups
            "seconds": self.init_seconds,
            "gradient_seconds": gradient_seconds,
            "layers": {name: asdict(s) for name, s in stats.items()},
            "target_modules": self.target_names,  # the linear layers the method adapts (model.target_modules resolved)
        }
        if search is not None:
            record["auto_lr"] = {
                "lr": search.lr,
                "seconds": search.seconds,
                "held_out_loss": {f"{lr:g}": v for lr, v in search.scores.items()},
                "held_out_loss_untrained": search.untrained,
                "conclusive": search.conclusive,
            }
        if agreement:  # init.sign_agreement
            record["sign_agreement_with_float_base"] = sign_agreement.summary(agreement)
            log.info("sign(ΣG) on the %s base agrees with the float base's on %.4f of the entries (least layer %.4f)",
                     self.model_settings.quantization, record["sign_agreement_with_float_base"]["mean"], record["sign_agreement_with_float_base"]["min"])
        (run_dir / "init_stats.json").write_text(json.dumps(record, indent=1))
        line = f"{self.method.name} initialised in {self.init_seconds:.1f}s"
        if gradients is not None:
            line += f" from {gradients.samples} samples ({record['gradients']} gradients, first-step lr {lr:.3g})"
        if stats:
            line += f", mean relative error {figures['init/relative_error_mean']:.3f}"
        log.info(line)

    # -- optimisation ---------------------------------------------------------------------

    def configure_optimizers(self):
        optim = self.optim_settings
        params = [p for p in self.model.parameters() if p.requires_grad]
        peak_lr = 0.0 if optim.lr == "auto" else optim.lr  # auto: set in on_fit_start
        optimizer = torch.optim.AdamW(params, lr=peak_lr, weight_decay=optim.weight_decay, betas=tuple(optim.betas))
        total_steps = max(1, self.trainer.estimated_stepping_batches)  # 0 (trainer.max_steps=0): nothing trains, no step reads it
        factor = lr_factor(optim.scheduler, total_steps, optim.warmup_ratio)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
        # named for LearningRateMonitor, which logs it as train/lr
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step", "name": "train/lr"}}

    # -- checkpoints and export ----------------------------------------------------------

    def trained_keys(self) -> set[str]:
        """State-dict keys of what training changes and of what the initialisation wrote."""
        return {f"model.{name}" for name in self.initialized_names()}

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        """Keep only what training changes: the adapters, trained modules and the module's own state.

        The frozen base weights come back from the pretrained model when the module is built.
        """
        kept = self.trained_keys()
        state = checkpoint["state_dict"]
        checkpoint["state_dict"] = {k: v for k, v in state.items() if not k.startswith("model.") or k in kept}

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        """Refuse a checkpoint trained with other settings (naming each), or one that lacks a trained
        tensor or holds tensors this model does not have; then complete it with the frozen
        pretrained weights this module was built with."""
        # where the gradient cache lies and what it is keyed by cannot change what was trained
        # both as typed settings, every default filled in: a checkpoint written before a setting existed keeps its default
        saved_settings = with_defaults(checkpoint.get("hyper_parameters", {}))
        changes = changed_settings(saved_settings, with_defaults(self.hparams), ignored=("gradient_cache",))
        if changes:
            raise CheckpointError(
                "the checkpoint was trained with other settings than this run's:\n  " + "\n  ".join(changes)
                + "\nresume with the same settings, or start a new run (another hydra.run.dir, or resume=false)"
            )
        saved = checkpoint["state_dict"]
        if OLD_INITIALIZED_KEY in saved:  # written before the buffer took its method-neutral name
            saved["initialized"] = saved.pop(OLD_INITIALIZED_KEY)
        own = self.state_dict()
        lost = sorted(self.trained_keys() - saved.keys())
        unexpected = sorted(saved.keys() - own.keys())
        if lost or unexpected:
            raise ValueError(f"the checkpoint does not match its model: missing {lost[:5]}, unexpected {unexpected[:5]}")
        # a quantized layer's state dict also holds its quantization state, which loading does not take back
        tensors = {name for name, _ in self.named_parameters(remove_duplicate=False)} | {name for name, _ in self.named_buffers(remove_duplicate=False)}
        checkpoint["state_dict"] = {**{k: v for k, v in own.items() if k in tensors}, **saved}

    def parameter_counts(self) -> dict[str, int]:
        trainable, total = count_parameters(self.model)
        return {"trainable": trainable, "total": total}

    @property
    def initial_adapter_dir(self) -> Path:
        """Where methods that change W0 (PiSSA, LoRA-GA) keep their adapter as initialised."""
        return initial_adapter_dir(self.trainer.default_root_dir)

    def export_adapter(self, out_dir: str | Path, run_dir: str | Path | None = None) -> Path:
        """The adapter and trained head (PEFT format; ``full``: the whole model); ``run_dir``: the
        run's folder (default: the trainer's), where the initial adapter lies."""
        model = self.model_settings
        initial = initial_adapter_dir(run_dir) if run_dir is not None else self.initial_adapter_dir
        return self.method.export(self.model, Path(out_dir), model.head, model.name_or_path, initial=initial)


LoraSBModule = FineTuningModule  # its former name, for code that imports it


def typed_settings(hparams: Mapping) -> tuple[ModelSettings, InitSettings, OptimSettings, GradientCacheSettings]:
    """The module's ``model``, ``init``, ``optim`` and ``gradient_cache`` arguments as their settings."""
    return (
        settings_from(ModelSettings, hparams["model"], "model"),
        settings_from(InitSettings, hparams["init"], "init"),
        settings_from(OptimSettings, hparams["optim"], "optim"),
        settings_from(GradientCacheSettings, hparams["gradient_cache"], "gradient_cache"),
    )


def with_defaults(hparams: Mapping) -> dict:
    """``hparams`` with its typed settings groups as plain mappings, every default filled in."""
    groups = dict(zip(("model", "init", "optim", "gradient_cache"), map(asdict, typed_settings(hparams))))
    return {**hparams, **groups}


def initial_adapter_dir(run_dir: str | Path) -> Path:
    return Path(run_dir) / "initial_adapter"
