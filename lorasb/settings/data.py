"""``data``: the training data of a task family (conf/family/task/) and how it is batched
(:mod:`lorasb.data`; the data modules' keyword defaults are these)."""

from dataclasses import dataclass

from lorasb.settings.checks import Check, existing, integer, is_number
from lorasb.settings.fields import setting


@dataclass
class DataSettings:
    """What every data module takes: the task's rows, tokenised and batched."""

    task: str = setting(help="the task whose rows are read (conf/task/)")
    tokenizer: str = setting(help="a Hugging Face name or local folder of the tokenizer (the configs: the model's)")
    dir: str | None = setting(None, help="a local data root laid out as lorasb/data/README.md shows; null: the Hub", check=existing("folder"))
    max_length: int = setting(128, help="truncation length in tokens", check=integer(1))
    batch_size: int = setting(32, help="training batch size", check=integer(1))
    eval_batch_size: int | None = setting(None, help="validation batch size (null: batch_size)", check=integer(1, nullable=True))
    num_workers: int = setting(0, help="DataLoader worker processes", check=integer(0))
    train_limit: int | None = setting(None, help="only the first N training rows (null: all)", check=integer(1, nullable=True))
    val_limit: int | None = setting(None, help="only the first N validation rows (null: all)", check=integer(1, nullable=True))
    seed: int = setting(42, help="seed of the shuffling, the init batches' subset and the held-out rows (the configs: seed, checked there)")


@dataclass
class InstructionDataSettings(DataSettings):
    """The instruction tasks' (metamath, commonsense): validation rows are held out of the training rows."""

    val_size: int = setting(200, help="training rows held out for val/loss (0: none)", check=integer(0))


FILE_KINDS = "a CSV, TSV, JSON, JSONL or Parquet file, a dataset folder, or a Hugging Face Hub dataset id"
LABELED_FILE_METRICS = {"classification": ("accuracy", "macro_f1", "matthews"), "regression": ("pearson", "spearman")}  # what each task logs


def unlogged_monitor(task: str, monitor: str) -> str | None:
    """Why ``monitor`` cannot be the metric of the user's ``task`` (``classification``, ``regression``), or None."""
    choices = [f"val/{metric}" for metric in LABELED_FILE_METRICS[task]]
    return None if monitor in choices else f"task.monitor={monitor}: the {task} task logs {', '.join(choices)}; monitor one of them"


def _field_names(most: int) -> Check:
    return Check(f"a list of 1 to {most} field names", lambda v: isinstance(v, list) and 1 <= len(v) <= most and all(isinstance(n, str) and n for n in v))


@dataclass
class LabeledFileSettings(DataSettings):
    """The user's own classification or regression rows (conf/task/custom/): a file or a Hub
    dataset read by ``datasets``, texts in ``text_fields``, the label in ``label_field``."""

    monitor: str = setting("val/accuracy", help="the metric the run monitors, checked against the task's before the data are read (the configs: task.monitor)")
    train_file: str | None = setting(None, help=f"the training rows: {FILE_KINDS} (relative paths: under data.dir when set)", check=Check(FILE_KINDS, lambda v: isinstance(v, str) and bool(v)))
    train_split: str = setting("train", help="the split of a dataset folder or Hub id read for training")
    validation_file: str | None = setting(None, help=f"the validation rows: {FILE_KINDS} (null: data.validation_ratio of the training rows)")
    validation_split: str = setting("validation", help="the split of a dataset folder or Hub id read for validation")
    validation_ratio: float = setting(0.1, help="the share of the training rows held out for validation, drawn by data.seed, when no validation_file is given", check=Check("a number in (0, 1)", lambda v: is_number(v) and 0 < v < 1))
    text_fields: list[str] = setting(factory=lambda: ["text"], help="the field holding each row's text, or two fields of a text pair", check=_field_names(2))
    label_field: str = setting("label", help="the field holding each row's label (classification: any strings or integers; regression: a number)", check=Check("a field name", lambda v: isinstance(v, str) and bool(v)))
