"""The configs in ``conf/``: their resolvers, and a friendly check of group choices."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from omegaconf import OmegaConf

from lorasb.models import package_dir

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"


def register_resolvers() -> None:
    """``${package_dir:pkg}``: the folder of an installed package (offline model weights)."""
    OmegaConf.register_new_resolver("package_dir", package_dir, replace=True)


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
