"""The configs in ``conf/``: their resolvers, and friendly checks of the user's choices."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from lorasb.models import gguf_folder, package_dir

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"


def register_resolvers() -> None:
    """``${package_dir:pkg}``: the folder of an installed package (offline model weights);
    ``${gguf_folder:pkg,file.gguf}``: a GGUF file of a package, converted once to a HF folder."""
    OmegaConf.register_new_resolver("package_dir", package_dir, replace=True)
    OmegaConf.register_new_resolver("gguf_folder", gguf_folder, replace=True)


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
        unknown = [choice for choice in value.split(",") if choice not in options]
        if unknown:
            raise SystemExit(f"unknown {key} {unknown[0]!r}; choose one of: {', '.join(options)}")


def check_model_fits_task(cfg: DictConfig, conf_dir: Path = CONF_DIR) -> None:
    """Fail, naming the models that fit, when the task needs another kind of model.

    GLUE tasks train encoders (``kind: encoder``), instruction tasks causal language models
    (``kind: causal_lm``).
    """
    needed, chosen = cfg.task.get("model_kind"), cfg.model.get("kind")
    if needed is None or chosen is None or needed == chosen:
        return
    fitting = [name for name in group_options("model", conf_dir) if OmegaConf.load(conf_dir / "model" / f"{name}.yaml").get("kind") == needed]
    raise ValueError(
        f"task {cfg.task.name!r} needs a model of kind {needed}, but the chosen model is of kind {chosen}; "
        f"choose one of: {', '.join(f'model={name}' for name in fitting)}"
    )
