"""LoRA-SB for sequence classification and regression (GLUE, and the user's own files)."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn
from torchmetrics import MaxMetric

from lorasb.data.custom_tasks import custom_task
from lorasb.data.glue_tasks import glue_task
from lorasb.data.scoring import ScoredTask
from lorasb.models import load_classifier
from lorasb.settings.data import LABELED_FILE_METRICS
from lorasb.lightning.head_bias import set_prior_bias
from lorasb.lightning.module import FineTuningModule


def task_spec(task: str, labels: list[str] | None, monitor: str | None) -> ScoredTask:
    """A GLUE task by its name, or the user's own ``classification`` over ``labels`` or
    ``regression``, monitoring ``monitor`` (:mod:`lorasb.data.custom_tasks`)."""
    if task in LABELED_FILE_METRICS:
        return custom_task(task, labels, monitor)
    return glue_task(task)


class ClassificationModule(FineTuningModule):
    """A sequence classification (or regression) task on an encoder with a classification head:
    a GLUE task, or the user's own (``labels`` name the outputs, in order, and go into the model's
    ``id2label`` / ``label2id``; ``monitor`` is the metric the run monitors).

    Logs ``train/loss``, ``val/loss``, ``val/<metric><suffix>`` for every metric of the task
    and validation split (MNLI: ``_m``, ``_mm``), and ``val/<main metric>_best``, the best
    value over the epochs so far.
    """

    def __init__(self, task: str, labels: list[str] | None = None, monitor: str | None = None, **kwargs):
        self.spec = task_spec(task, labels, monitor)
        self.labels = labels
        super().__init__(**kwargs)
        self.save_hyperparameters()
        self.val_metrics = nn.ModuleList(self.spec.metrics() for _ in self.spec.val_splits)
        self.best = MaxMetric()
        self.best.persistent(True)

    def build_model(self) -> nn.Module:
        model = self.model_settings
        return load_classifier(model.name_or_path, self.spec.num_labels, model.dtype, labels=self.labels)

    def on_fit_start(self) -> None:
        """Write the label names, in the order of the outputs, to ``<run dir>/labels.json``; then initialise."""
        if self.labels and self.trainer.is_global_zero:
            path = Path(self.trainer.default_root_dir) / "labels.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(self.labels, indent=1, ensure_ascii=False) + "\n")
        super().on_fit_start()

    def export_adapter(self, out_dir: str | Path, run_dir: str | Path | None = None) -> Path:
        """The method's export, and beside an adapter the model's configuration (``config.json``),
        which names the outputs (``id2label``, ``label2id``) and their number."""
        out = super().export_adapter(out_dir, run_dir)
        if not (out / "config.json").is_file():
            self.model.config.save_pretrained(out)
        return out

    def prepare_head(self) -> None:
        """``init.head_bias``: ``prior`` starts the output bias at the training labels'
        log class frequencies (regression: their mean); ``zero`` keeps the model's own."""
        if self.init_settings.head_bias == "prior":
            labels = torch.as_tensor(self.trainer.datamodule.train_dataset["labels"])
            set_prior_bias(self.model, labels, self.spec.num_labels)

    @property
    def monitor(self) -> str:
        return f"val/{self.spec.main_metric}"

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss = self.model(**batch).loss
        self.log("train/loss", loss, prog_bar=True, batch_size=len(batch["labels"]))
        return loss

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int, dataloader_idx: int = 0) -> None:
        output = self.model(**batch)
        suffix = self.spec.val_suffixes[dataloader_idx]
        self.log(f"val/loss{suffix}", output.loss, batch_size=len(batch["labels"]), add_dataloader_idx=False, sync_dist=True)
        self.val_metrics[dataloader_idx].update(self.spec.predict(output.logits), batch["labels"])

    def on_validation_epoch_end(self) -> None:
        values = {}
        for metrics, suffix in zip(self.val_metrics, self.spec.val_suffixes):
            values.update({f"val/{key}{suffix}": value for key, value in metrics.compute().items()})
            metrics.reset()
        if self.trainer.state.fn == "fit" and not self.trainer.sanity_checking:
            self.best.update(values[self.monitor])
            values[f"{self.monitor}_best"] = self.best.compute()
        self.log_dict(values, prog_bar=True, sync_dist=True)
