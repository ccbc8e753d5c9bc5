"""Fine-tune with LoRA-SB: ``python -m lorasb.train [group=option ...] [key=value ...]``.

Instantiates the data module, the Lightning module, loggers, callbacks and the trainer from
the composed config, then validates once (the "before" figure), fits (the SB initialisation
runs in ``on_fit_start``), exports the adapter and, for the instruction tasks, evaluates the
trained model on the task's evaluation sets (``eval.*``). ``--help`` lists every config group.
"""

from __future__ import annotations

import sys
from pathlib import Path

import hydra
import lightning as L
from hydra.utils import instantiate
from lightning.pytorch.loggers import WandbLogger
from omegaconf import DictConfig

from lorasb.config import check_group_choices, check_model_fits_task, register_resolvers
from lorasb.evaluate import evaluate_model

register_resolvers()


def resume_checkpoint(cfg: DictConfig) -> str | None:
    """The checkpoint to resume from: ``ckpt_path``, else the run's own last checkpoint."""
    if cfg.ckpt_path:
        if not Path(cfg.ckpt_path).is_file():
            raise FileNotFoundError(f"ckpt_path={cfg.ckpt_path} does not exist")
        return str(cfg.ckpt_path)
    last = Path(cfg.run_dir) / "checkpoints" / "last.ckpt"
    return str(last) if cfg.resume and last.is_file() else None


def report(summary: dict, monitor: str) -> str:
    """One line: the monitored metric before training, at the end and at its best."""
    figures = {name: summary.get(name, {}).get(monitor) for name in ("before", "final", "best")}
    if figures["final"] is None:
        return f"{monitor}: no validation ran during training"
    line = f"{monitor}: final {figures['final']:.4f} (best {figures['best']:.4f})"
    if figures["before"] is not None:
        line = f"{monitor}: before {figures['before']:.4f} → " + line.removeprefix(f"{monitor}: ")
    return line


def run(cfg: DictConfig) -> dict:
    """Train as ``cfg`` says; returns the run summary written to ``metrics.json``."""
    check_model_fits_task(cfg)
    L.seed_everything(cfg.seed, workers=True)
    datamodule = instantiate(cfg.data)
    module = instantiate(cfg.module)
    callbacks = {name: instantiate(c) for name, c in (cfg.get("callbacks") or {}).items()}
    loggers = [instantiate(c) for c in (cfg.get("logger") or {}).values()]
    trainer = instantiate(cfg.trainer, callbacks=list(callbacks.values()), logger=loggers or False)
    ckpt_path = resume_checkpoint(cfg)
    try:
        if cfg.validate_before and ckpt_path is None:
            trainer.validate(module, datamodule=datamodule, verbose=False)
        trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path)
        if cfg.export_adapter and trainer.is_global_zero:
            module.export_adapter(Path(cfg.run_dir) / "adapter")
    finally:
        for logger in loggers:
            if isinstance(logger, WandbLogger):  # close the run so the next job of a sweep starts its own
                logger.experiment.finish()
    summary = callbacks["summary"].summary if "summary" in callbacks else {}
    if trainer.is_global_zero and cfg.get("eval") and cfg.eval.after_fit:
        summary["eval"] = evaluate_model(module.model, datamodule.tokenizer, cfg.eval, cfg.data.dir, cfg.run_dir)
        if "summary" in callbacks:
            callbacks["summary"].write(Path(cfg.run_dir) / callbacks["summary"].filename)
    if trainer.is_global_zero and summary:
        print(report(summary, cfg.task.monitor))
        print(f"run directory: {cfg.run_dir}")
    return summary


@hydra.main(version_base="1.3", config_path="../conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    summary = run(cfg)
    return summary.get("best", {}).get(cfg.task.monitor)


if __name__ == "__main__":
    check_group_choices(sys.argv[1:])
    main()
