"""Fine-tune with LoRA-SB: ``python -m lorasb.train [group=option ...] [key=value ...]``.

One run, in small steps: check the choices and values; build the data module, Lightning module, loggers,
callbacks and trainer from the composed config; validate once (the "before" figure); fit (the
SB initialisation runs in ``on_fit_start``, and a run with a last checkpoint resumes from it
instead); export the adapter; evaluate the task's sets (instruction tasks); print the summary.
``--help`` lists every config group.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import hydra
from omegaconf import DictConfig

from lorasb.lightning.checkpoints import CheckpointError, UnsafeCheckpointError, refusing_unsafe, resume_from
from lorasb.config import ConfigError, check_config, check_group_choices, check_model_fits_task, register_resolvers, register_settings

if TYPE_CHECKING:  # the heavy libraries load only once a run starts, so --help and config errors are quick
    import lightning as L

    from lorasb.lightning.module import FineTuningModule
    from lorasb.lightning.summary import RunSummary

register_resolvers()
register_settings()
log = logging.getLogger(__name__)


@dataclass
class Run:
    """What one training run is made of."""

    cfg: DictConfig
    datamodule: L.LightningDataModule
    module: FineTuningModule
    trainer: L.Trainer
    loggers: list
    summary: RunSummary | None  # the callback that writes metrics.json, when configured


def build(cfg: DictConfig) -> Run:
    """Instantiate the run's parts from the config: the data are read first, then the model loads."""
    import lightning as L
    from hydra.utils import instantiate
    from lightning.pytorch.callbacks import LearningRateMonitor

    L.seed_everything(cfg.seed, workers=True)
    loggers = [instantiate(c) for c in (cfg.get("logger") or {}).values()]
    for logger in loggers:  # every key of the run's config can filter runs (W&B) or be read back (CSV)
        logger.log_hyperparams(resolved_config(cfg))
    callbacks = {name: instantiate(c) for name, c in (cfg.get("callbacks") or {}).items()}
    if not loggers:  # the learning rate has nowhere to go (Lightning refuses the monitor then)
        callbacks = {name: c for name, c in callbacks.items() if not isinstance(c, LearningRateMonitor)}
    datamodule = instantiate(cfg.data)
    datamodule.setup("fit")  # read and check the data before the model loads (Lightning's own call then finds it ready)
    return Run(
        cfg=cfg,
        datamodule=datamodule,
        module=instantiate(cfg.module, **datamodule.module_arguments()),  # e.g. the label names the data hold
        trainer=instantiate(cfg.trainer, callbacks=list(callbacks.values()), logger=loggers or False),
        loggers=loggers,
        summary=callbacks.get("summary"),
    )


def resolved_config(cfg: DictConfig) -> dict:
    """The whole resolved config with the command line's overrides (``overrides``, under Hydra)."""
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import OmegaConf

    config = OmegaConf.to_container(cfg, resolve=True)
    config["overrides"] = list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []
    return config


def fit(run: Run) -> None:
    """Validate before training (fresh runs only), fit, and export the adapter; loggers are closed after."""
    from lightning.pytorch.loggers import WandbLogger

    cfg, trainer = run.cfg, run.trainer
    ckpt_path = resume_from(trainer, cfg.ckpt_path, cfg.resume)
    try:
        if cfg.validate_before and ckpt_path is None:
            trainer.validate(run.module, datamodule=run.datamodule, verbose=False)
        with refusing_unsafe(ckpt_path):
            trainer.fit(run.module, datamodule=run.datamodule, ckpt_path=ckpt_path, weights_only=True)
        if cfg.export_adapter and trainer.is_global_zero:
            untrained = untrained_reason(run)
            if untrained:
                log.info("no adapter exported: %s", untrained)
            else:
                run.module.export_adapter(Path(cfg.run_dir) / "adapter")
    finally:
        for logger in run.loggers:
            if isinstance(logger, WandbLogger):  # close the run so the next job of a sweep starts its own
                logger.experiment.finish()


def untrained_reason(run: Run) -> str | None:
    """Why the fitted model is not worth exporting: nothing was trained, or the run diverged."""
    trainer, summary = run.trainer, (run.summary.summary if run.summary is not None else {})
    if trainer.global_step == 0:
        limits = ", ".join(f"trainer.{key}={getattr(trainer, key)}" for key in ("max_epochs", "max_steps", "limit_train_batches"))
        return f"nothing was trained (0 optimizer steps; {limits})"
    if "diverged" in summary:
        return "the run diverged (see metrics.json)"
    return None


def evaluate_after_fit(run: Run) -> None:
    """Instruction tasks: score the trained model on the task's evaluation sets, into the summary
    (a float32 model's adapters folded into its weights first: the run has ended)."""
    from lorasb.eval import evaluate_model
    from lorasb.method.attach import merged_where_exact

    cfg = run.cfg
    if not (run.trainer.is_global_zero and cfg.get("eval") and cfg.eval.after_fit):
        return
    scored = {"base_model": cfg.model.name_or_path, "trained_in": str(cfg.run_dir)}
    results = evaluate_model(merged_where_exact(run.module.model), run.datamodule.tokenizer, cfg.eval, cfg.data, cfg.run_dir, scored)
    if run.summary is not None:
        run.summary.summary["eval"] = results
        run.summary.write(Path(cfg.run_dir) / run.summary.filename)


def log_through_hydra() -> None:
    """Let Lightning's messages reach the console and the run's log file through Hydra's handlers
    on the root logger only (Lightning's own console handler would print each one twice)."""
    import lightning

    logging.getLogger(lightning.__name__).handlers.clear()


def run(cfg: DictConfig) -> dict:
    """Train as ``cfg`` says; returns the run summary written to ``metrics.json``."""
    from lorasb.lightning.summary import collapse_warning, summary_line

    check_config(cfg)
    check_model_fits_task(cfg)
    parts = build(cfg)
    fit(parts)
    evaluate_after_fit(parts)
    summary = parts.summary.summary if parts.summary is not None else {}
    if parts.trainer.is_global_zero and summary:
        log.info(summary_line(summary, cfg.task.monitor))
        if warning := collapse_warning(summary, cfg.task.monitor):
            log.warning(warning)
        log.info("run directory: %s", cfg.run_dir)
    return summary


@hydra.main(version_base="1.3", config_path="../conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    log_through_hydra()
    try:
        summary = run(cfg)
    except (ConfigError, FloatingPointError, UnsafeCheckpointError, CheckpointError) as err:  # the message says it all
        raise SystemExit(f"error: {err}") from None
    except ValueError as err:
        from lorasb.data.files import DataFileError  # imported already: the data were read

        if isinstance(err, DataFileError):
            raise SystemExit(f"error: {err}") from None
        raise
    return summary.get("best", {}).get(cfg.task.monitor)


if __name__ == "__main__":
    check_group_choices(sys.argv[1:])
    main()
