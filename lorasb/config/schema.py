"""Types and ranges of the training and evaluation configs' values, checked before anything heavy loads.

Each rule names a key and what it allows; every violation is reported at once, by key. The rules
of the typed settings (``optim``, ``init``, ``data``, ``eval``) are their dataclasses' checks
(:mod:`lorasb.settings`), and a key ``optim`` or ``init`` does not have is reported too. Other keys
no rule names pass unchecked (a method or an experiment may add its own), and a key a config does
not have (``data.val_size`` outside the instruction tasks) is skipped.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from omegaconf import DictConfig, MissingMandatoryValue, OmegaConf

from lorasb.settings.checks import Check, boolean, existing, fraction, integer, is_int, non_negative, one_of, positive
from lorasb.settings.data import LABELED_FILE_METRICS, DataSettings, LabeledFileSettings, unlogged_monitor
from lorasb.settings.evaluation import EvalAfterFitSettings
from lorasb.settings.fields import walk
from lorasb.settings.harness import HarnessSettings
from lorasb.settings.init import InitSettings
from lorasb.settings.instruction_files import InstructionFileSettings  # its keys hold every data module's and evaluate's
from lorasb.settings.model import ModelSettings, quantization_problem
from lorasb.settings.optim import OptimSettings

_ABSENT = object()


class ConfigError(ValueError):
    """Config values outside what they allow; the message lists each by key."""


@dataclass(frozen=True)
class Rule:
    """``key`` must hold a value ``check`` allows."""

    key: str
    check: Check

    def problem(self, value: Any) -> str | None:
        problem = self.check.problem(value)
        return problem and f"{self.key}={_show(value)}: {problem}"


def _show(value: Any) -> str:
    return "null" if value is None else str(value)


def settings_rules(cls: type, prefix: str, inherited_from: type | None = None) -> Iterator[Rule]:
    """A rule for every setting of ``cls`` that declares a check (:mod:`lorasb.settings`), but
    those of the class ``inherited_from`` (whose rules are there already)."""
    skipped = {key for key, _ in walk(inherited_from, prefix)} if inherited_from is not None else set()
    for key, field in walk(cls, prefix):
        if field.metadata.get("check") is not None and key not in skipped:
            yield Rule(key, field.metadata["check"])


RULES: tuple[Rule, ...] = (
    Rule("rank", integer(1)),
    Rule("seed", integer(0)),
    Rule("resume", boolean()),
    Rule("validate_before", boolean()),
    Rule("export_adapter", boolean()),
    Rule("ckpt_path", existing("file")),
    Rule("checkpoint", existing("file")),  # evaluation: a training checkpoint
    Rule("adapter", existing("folder")),  # evaluation: a PEFT adapter
    *settings_rules(OptimSettings, "optim"),
    Rule("method.alpha", positive(nullable=True)),
    Rule("method.dropout", fraction()),
    *settings_rules(InitSettings, "init"),
    *settings_rules(ModelSettings, "model"),
    *settings_rules(InstructionFileSettings, "data"),  # the keys a task's data lack (GLUE: val_size) are skipped
    *settings_rules(LabeledFileSettings, "data", inherited_from=DataSettings),  # the custom tasks' files and fields
    Rule("model.name_or_path", Check("a Hub name or a local folder", lambda v: isinstance(v, str) and bool(v))),
    Rule("trainer.max_epochs", integer(-1, nullable=True)),
    Rule("trainer.max_steps", integer(-1)),
    Rule("trainer.accumulate_grad_batches", integer(1)),
    Rule("trainer.log_every_n_steps", integer(1)),
    Rule("trainer.gradient_clip_val", non_negative(nullable=True)),
    Rule("task.mode", one_of(("min", "max"))),
    *settings_rules(EvalAfterFitSettings, "eval"),  # conf/evaluate.yaml's lacks after_fit: skipped
    *settings_rules(HarnessSettings, "harness"),  # evaluation: lm-evaluation-harness tasks
)


def _value(cfg: DictConfig, key: str) -> Any:
    """The resolved value at ``key`` (containers as plain lists), or ``_ABSENT``."""
    value = OmegaConf.select(cfg, key, default=_ABSENT, throw_on_missing=True)
    return OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value


def _too_few_rows(values: dict[str, Any]) -> str | None:
    """The first-step estimate draws ``init.num_samples`` rows from the training rows kept."""
    samples, limit = values.get("init.num_samples"), values.get("data.train_limit")
    held_out = values.get("data.val_size", 0)
    if not (is_int(samples) and is_int(limit) and is_int(held_out)) or samples <= limit - held_out:
        return None
    kept = f"data.train_limit={limit}" + (f" less data.val_size={held_out}" if held_out else "")
    return f"init.num_samples={samples}: expected at most the {limit - held_out} training rows kept ({kept})"


def _quantization_problem(cfg: DictConfig) -> str | None:
    """A method that writes W0 on a quantized base, a quantized encoder, or bitsandbytes missing."""
    method, kind, model_kind = (_value(cfg, key) for key in ("method.name", "model.quantization", "model.kind"))
    absent = lambda value: None if value is _ABSENT else value  # noqa: E731
    return quantization_problem(absent(method), absent(kind), absent(model_kind))


def _unlogged_monitor(cfg: DictConfig) -> str | None:
    """The user's own tasks log fixed metrics: the monitored one must be among them."""
    task, monitor = OmegaConf.select(cfg, "data.task"), OmegaConf.select(cfg, "task.monitor")
    if OmegaConf.select(cfg, "data.train_file", default=_ABSENT) is _ABSENT or task not in LABELED_FILE_METRICS:
        return None
    return unlogged_monitor(task, monitor)


SETTINGS_BLOCKS = {"optim": OptimSettings, "init": InitSettings}


def _keys(node: DictConfig, prefix: str) -> Iterator[str]:
    for key in node:
        child = node._get_node(key)
        yield from _keys(child, f"{prefix}.{key}") if isinstance(child, DictConfig) else [f"{prefix}.{key}"]


def unknown_settings(cfg: DictConfig) -> list[str]:
    """A line for every key of a settings block (``optim``, ``init``) its dataclass does not have."""
    problems = []
    for prefix, cls in SETTINGS_BLOCKS.items():
        node = OmegaConf.select(cfg, prefix)
        if isinstance(node, DictConfig):
            known = [key for key, _ in walk(cls, prefix)]
            problems += [f"{key}: no such setting; the settings of {prefix} are: {', '.join(known)}" for key in _keys(node, prefix) if key not in known]
    return problems


def config_problems(cfg: DictConfig) -> list[str]:
    """One line per invalid value, naming its key and what it allows, and per unknown setting."""
    values, problems = {}, unknown_settings(cfg)
    for rule in RULES:
        try:
            value = _value(cfg, rule.key)
        except MissingMandatoryValue:
            problems.append(f"{rule.key}: required, but not set; expected {rule.check.allowed}")
            continue
        except Exception as err:  # an interpolation that does not resolve
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
    if not problems and (problem := _quantization_problem(cfg)):
        problems.append(problem)
    if problem := _unlogged_monitor(cfg):
        problems.append(problem)
    return problems


def check_config(cfg: DictConfig) -> None:
    """Raise :class:`ConfigError` listing every invalid value of a composed training or evaluation config."""
    problems = config_problems(cfg)
    if problems:
        count = f"{len(problems)} invalid value{'s' if len(problems) > 1 else ''}"
        raise ConfigError(f"the config has {count}:\n  " + "\n  ".join(problems))
