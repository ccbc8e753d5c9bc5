"""Friendly checks of the user's config choices, made before anything heavy loads."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

CONF_DIR = Path(__file__).resolve().parents[2] / "conf"
MODEL_FAMILIES = "family/model"  # what models of one kind share; not an option of any group (task families: family/task)


def group_options(group: str, conf_dir: Path = CONF_DIR) -> list[str]:
    """The options of a config group, nested ones as ``glue/mrpc``."""
    root = conf_dir / group
    return sorted(str(path.relative_to(root).with_suffix("")) for path in root.rglob("*.yaml"))


def check_group_choices(overrides: Iterable[str], conf_dir: Path = CONF_DIR) -> None:
    """Fail early, listing the valid options, when an override picks an unknown group option.

    Hydra itself lists options only for flat groups; ``task=glue/foo`` would not show them.
    """
    groups = {path.name for path in conf_dir.iterdir() if path.is_dir()}
    for override in overrides:
        key, sep, value = override.lstrip("+~").partition("=")
        if not sep or key not in groups or value in ("", "null") or "(" in value:
            continue
        options = group_options(key, conf_dir)
        unknown = [choice for choice in value.strip("[]").split(",") if choice not in options]  # a, a,b or [a,b]
        if unknown:
            raise SystemExit(f"unknown {key} {unknown[0]!r}; choose one of: {', '.join(options)}")


def model_kind(name: str, conf_dir: Path = CONF_DIR) -> str | None:
    """The ``kind`` of a model option: its own, else that of the model family it pulls in
    (``/family/model/<family>@_here_``, conf/family/model/<family>.yaml)."""
    config = OmegaConf.load(conf_dir / "model" / f"{name}.yaml")
    if "kind" in config:
        return config.kind
    for entry in config.get("defaults", []):
        if isinstance(entry, str) and entry.startswith(f"/{MODEL_FAMILIES}/"):
            family = entry.removeprefix(f"/{MODEL_FAMILIES}/").split("@")[0]
            return OmegaConf.load(conf_dir / MODEL_FAMILIES / f"{family}.yaml").get("kind")
    return None


def check_model_fits_task(cfg: DictConfig, conf_dir: Path = CONF_DIR) -> None:
    """Fail, naming the models that fit, when the task needs another kind of model.

    GLUE tasks train encoders (``kind: encoder``), instruction tasks causal language models
    (``kind: causal_lm``).
    """
    needed, chosen = cfg.task.get("model_kind"), cfg.model.get("kind")
    if needed is None or chosen is None or needed == chosen:
        return
    fitting = [name for name in group_options("model", conf_dir) if model_kind(name, conf_dir) == needed]
    raise ValueError(
        f"task {cfg.task.name!r} needs a model of kind {needed}, but the chosen model is of kind {chosen}; "
        f"choose one of: {', '.join(f'model={name}' for name in fitting)}"
    )
