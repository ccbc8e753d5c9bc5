"""``data``: the training data of a task family (conf/family/task/) and how it is batched
(:mod:`lorasb.data`; the data modules' keyword defaults are these)."""

from dataclasses import dataclass

from lorasb.settings.checks import existing, integer
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
