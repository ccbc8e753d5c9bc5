"""An experiment preset's own settings, read from its file and the presets it extends."""

from pathlib import Path

from omegaconf import DictConfig, OmegaConf

EXPERIMENTS = Path(__file__).resolve().parents[2] / "conf" / "experiment"


def preset(name: str) -> DictConfig:
    """``conf/experiment/<name>.yaml`` merged over each ``/experiment/...`` entry of its defaults."""
    own = OmegaConf.load(EXPERIMENTS / f"{name}.yaml")
    parents = [entry.removeprefix("/experiment/") for entry in own.get("defaults", []) if isinstance(entry, str) and entry.startswith("/experiment/")]
    return OmegaConf.merge(*(preset(parent) for parent in parents), own)
