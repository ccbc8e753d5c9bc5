"""``optim``: the optimizer (AdamW), the learning-rate schedule and the automatic choice of the lr."""

from dataclasses import dataclass
from typing import Any

from lorasb.settings.checks import Check, fraction, integer, is_number, non_negative, one_of
from lorasb.settings.fields import nested, setting

SCHEDULES = ("linear", "cosine", "constant")  # lorasb.lightning.schedule gives their factors


def _betas(value: Any) -> bool:
    return isinstance(value, (list, tuple)) and len(value) == 2 and all(is_number(b) and 0 <= b < 1 for b in value)


@dataclass
class AutoLRSettings:
    """``optim.lr=auto``: a range test over ``candidates`` before training (:mod:`lorasb.lightning.lr_search`)."""

    candidates: list[float] = setting(
        factory=list,
        help="the candidate lrs (the configs take the method's for this kind of model, conf/method/<name>.yaml lr.search)",
        check=Check("a list of numbers > 0", lambda v: isinstance(v, list) and bool(v) and all(is_number(x) and x > 0 for x in v)),
    )
    steps: int = setting(16, help="optimizer steps per candidate, at its lr, on the same training batches", check=integer(1))
    batch_size: int | None = setting(16, help="batch size of those steps (null: data.batch_size)", check=integer(1, nullable=True))
    score_rows: int = setting(
        256,
        help="other training rows, never stepped on, the candidates are scored on (training then uses every row)",
        check=integer(1),
    )
    stop_z: float = setting(
        2.0,
        help="a smaller lr ends the walk once its loss exceeds the best's by this many standard errors",
        check=non_negative(),
    )


@dataclass
class OptimSettings:
    """AdamW with a learning-rate schedule (:mod:`lorasb.lightning.schedule`)."""

    lr: Any = setting(
        help="the peak lr: a number, or auto (chosen before training by a short range test, auto_lr); "
        "the configs take the method's default for this kind of model (conf/method/<name>.yaml)",
        check=Check("a number > 0 or auto", lambda v: v == "auto" or (is_number(v) and v > 0)),
    )
    auto_lr: AutoLRSettings = nested(AutoLRSettings, help="the range test of lr=auto")
    weight_decay: float = setting(0.0, help="AdamW's decoupled weight decay", check=non_negative())
    betas: list[float] = setting(factory=lambda: [0.9, 0.999], help="AdamW's betas", check=Check("two numbers in [0, 1)", _betas))
    scheduler: str = setting("linear", help=f"the schedule after the warm-up: {' | '.join(SCHEDULES)}", check=one_of(SCHEDULES))
    warmup_ratio: float = setting(0.06, help="the fraction of the optimizer steps that warm the lr up linearly", check=fraction())
