"""Types and ranges of the training and evaluation configs' values, checked before anything heavy loads.

Each rule names a key and what it allows; every violation is reported at once, by key. Keys no
rule names pass unchecked (a method or an experiment may add its own), and a key a config does
not have (``data.val_size`` outside the instruction tasks) is skipped.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from lorasb.lightning.schedule import SCHEDULES

_ABSENT = object()


class ConfigError(ValueError):
    """Config values outside what they allow; the message lists each by key."""


@dataclass(frozen=True)
class Rule:
    """``key`` must hold a value ``accepts`` takes (described by ``allowed``), or null where ``nullable``."""

    key: str
    allowed: str
    accepts: Callable[[Any], bool]
    nullable: bool = False

    def problem(self, value: Any) -> str | None:
        if value is None and self.nullable:
            return None
        if value is not None and self.accepts(value):
            return None
        return f"{self.key}={_show(value)}: expected {self.allowed}{' or null' if self.nullable else ''}"


def _show(value: Any) -> str:
    return "null" if value is None else str(value)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return (_is_int(value) or isinstance(value, float)) and math.isfinite(value)


def integer(key: str, minimum: int, nullable: bool = False) -> Rule:
    return Rule(key, f"an integer ≥ {minimum}", lambda v: _is_int(v) and v >= minimum, nullable)


def positive(key: str, nullable: bool = False) -> Rule:
    return Rule(key, "a number > 0", lambda v: _is_number(v) and v > 0, nullable)


def non_negative(key: str, nullable: bool = False) -> Rule:
    return Rule(key, "a number ≥ 0", lambda v: _is_number(v) and v >= 0, nullable)


def fraction(key: str) -> Rule:
    """A probability or ratio in [0, 1)."""
    return Rule(key, "a number in [0, 1)", lambda v: _is_number(v) and 0 <= v < 1)


def one_of(key: str, names: tuple[str, ...]) -> Rule:
    return Rule(key, f"one of {', '.join(names)}", lambda v: v in names)


def boolean(key: str) -> Rule:
    return Rule(key, "true or false", lambda v: isinstance(v, bool))


def existing(key: str, kind: str) -> Rule:
    """A path to an existing ``file`` or ``folder`` (null allowed: the key is optional)."""
    exists = Path.is_file if kind == "file" else Path.is_dir
    return Rule(key, f"an existing {kind}", lambda v: isinstance(v, str) and exists(Path(v)), nullable=True)


def _betas(value: Any) -> bool:
    return isinstance(value, (list, tuple)) and len(value) == 2 and all(_is_number(b) and 0 <= b < 1 for b in value)


RULES: tuple[Rule, ...] = (
    integer("rank", 1),
    integer("seed", 0),
    boolean("resume"),
    boolean("validate_before"),
    boolean("export_adapter"),
    existing("ckpt_path", "file"),
    existing("checkpoint", "file"),  # evaluation: a training checkpoint
    existing("adapter", "folder"),  # evaluation: a PEFT adapter
    Rule("optim.lr", "a number > 0 or auto", lambda v: v == "auto" or (_is_number(v) and v > 0)),
    Rule("optim.auto_lr.candidates", "a list of numbers > 0", lambda v: isinstance(v, list) and bool(v) and all(_is_number(x) and x > 0 for x in v)),
    integer("optim.auto_lr.steps", 1),
    integer("optim.auto_lr.batch_size", 1, nullable=True),
    integer("optim.auto_lr.score_rows", 1),
    non_negative("optim.auto_lr.stop_z"),
    non_negative("optim.weight_decay"),
    Rule("optim.betas", "two numbers in [0, 1)", _betas),
    one_of("optim.scheduler", SCHEDULES),
    fraction("optim.warmup_ratio"),
    positive("method.alpha", nullable=True),
    fraction("method.dropout"),
    integer("init.num_samples", 1),
    integer("init.batch_size", 1),
    Rule("init.first_lr", "schedule, reference or a number > 0", lambda v: v in ("schedule", "reference") or (_is_number(v) and v > 0)),
    one_of("init.accumulator_dtype", ("float32", "bfloat16")),  # lorasb.method.memory.DTYPES
    boolean("init.offload"),
    integer("init.layer_groups", 1),
    Rule("init.memory_budget", "a number of bytes > 0 or auto", lambda v: v == "auto" or (_is_number(v) and v > 0), nullable=True),
    one_of("init.head_bias", ("prior", "zero")),  # lorasb.lightning.head_bias
    integer("init.svd.niter", 0),
    integer("init.svd.oversample", 0),
    integer("init.svd.exact_max_dim", 0),
    integer("init.svd.batch_bytes", 1),
    existing("data.dir", "folder"),
    integer("data.max_length", 1),
    integer("data.batch_size", 1),
    integer("data.eval_batch_size", 1, nullable=True),
    integer("data.num_workers", 0),
    integer("data.train_limit", 1, nullable=True),
    integer("data.val_limit", 1, nullable=True),
    integer("data.val_size", 0),
    integer("trainer.max_epochs", -1, nullable=True),
    integer("trainer.max_steps", -1),
    integer("trainer.accumulate_grad_batches", 1),
    integer("trainer.log_every_n_steps", 1),
    non_negative("trainer.gradient_clip_val", nullable=True),
    one_of("task.mode", ("min", "max")),
    integer("eval.limit", 1, nullable=True),
    integer("eval.batch_size", 1),
    integer("eval.max_new_tokens", 1, nullable=True),
    one_of("eval.grading", ("reference", "lenient")),  # lorasb.eval.evaluation.GRADING_MODES
)


def _value(cfg: DictConfig, key: str) -> Any:
    """The resolved value at ``key`` (containers as plain lists), or ``_ABSENT``."""
    value = OmegaConf.select(cfg, key, default=_ABSENT, throw_on_missing=True)
    return OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value


def _too_few_rows(values: dict[str, Any]) -> str | None:
    """The first-step estimate draws ``init.num_samples`` rows from the training rows kept."""
    samples, limit = values.get("init.num_samples"), values.get("data.train_limit")
    held_out = values.get("data.val_size", 0)
    if not (_is_int(samples) and _is_int(limit) and _is_int(held_out)) or samples <= limit - held_out:
        return None
    kept = f"data.train_limit={limit}" + (f" less data.val_size={held_out}" if held_out else "")
    return f"init.num_samples={samples}: expected at most the {limit - held_out} training rows kept ({kept})"


def config_problems(cfg: DictConfig) -> list[str]:
    """One line per invalid value, naming its key and what it allows."""
    values, problems = {}, []
    for rule in RULES:
        try:
            value = _value(cfg, rule.key)
        except Exception as err:  # an interpolation that does not resolve, a missing mandatory value
            problems.append(f"{rule.key}: cannot be read ({err})")
            continue
        if value is _ABSENT:
            continue
        values[rule.key] = value
        problem = rule.problem(value)
        if problem:
            problems.append(problem)
    if not problems and (problem := _too_few_rows(values)):
        problems.append(problem)
    return problems


def check_config(cfg: DictConfig) -> None:
    """Raise :class:`ConfigError` listing every invalid value of a composed training or evaluation config."""
    problems = config_problems(cfg)
    if problems:
        count = f"{len(problems)} invalid value{'s' if len(problems) > 1 else ''}"
        raise ConfigError(f"the config has {count}:\n  " + "\n  ".join(problems))
