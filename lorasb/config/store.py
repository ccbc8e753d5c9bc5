"""The typed settings as Hydra structured configs: conf/train.yaml's defaults list starts with them,
so the ``optim``, ``init`` and ``gradient_cache`` blocks take their defaults and types from
:mod:`lorasb.settings`, and Hydra refuses an override of the wrong type, naming its key."""

from __future__ import annotations

from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf

from lorasb.settings.gradient_cache import GradientCacheSettings
from lorasb.settings.init import InitSettings
from lorasb.settings.optim import OptimSettings

GROUP = "settings"
SETTINGS = {"optim": OptimSettings, "init": InitSettings, "gradient_cache": GradientCacheSettings}


def register_settings() -> None:
    """Store each settings dataclass as ``settings/<block>`` (conf/train.yaml: ``settings@<block>: <block>``)."""
    store = ConfigStore.instance()
    for name, cls in SETTINGS.items():
        store.store(group=GROUP, name=name, node=_writable(OmegaConf.structured(cls)))


def _writable(node: DictConfig) -> DictConfig:
    """``node`` with no read-only flag left: a frozen dataclass (``init.svd``) is a value the
    configs and the command line still set."""
    OmegaConf.set_readonly(node, None)
    for key in node:
        child = node._get_node(key)
        if isinstance(child, DictConfig):
            _writable(child)
    return node
