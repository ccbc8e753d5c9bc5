"""The typed settings as Hydra structured configs: conf/train.yaml's defaults list starts with them
(and the task families' and conf/evaluate.yaml's with ``data`` and ``eval``), so those blocks take
their defaults and types from :mod:`lorasb.settings`, and Hydra refuses an override of the wrong
type, naming its key."""

from __future__ import annotations

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf, open_dict

from lorasb.settings.data import DataSettings, InstructionDataSettings, LabeledFileSettings
from lorasb.settings.evaluation import EvalAfterFitSettings, EvalSettings
from lorasb.settings.gradient_cache import GradientCacheSettings
from lorasb.settings.harness import HarnessSettings
from lorasb.settings.instruction_files import InstructionEvalDataSettings, InstructionFileSettings
from lorasb.settings.init import InitSettings
from lorasb.settings.model import ModelSettings
from lorasb.settings.optim import OptimSettings

GROUP = "settings"
SETTINGS = {
    "model": ModelSettings,
    "optim": OptimSettings,
    "init": InitSettings,
    "gradient_cache": GradientCacheSettings,
    "data": DataSettings,
    "instruction_data": InstructionDataSettings,
    "labeled_file_data": LabeledFileSettings,
    "instruction_file_data": InstructionFileSettings,
    "instruction_eval_data": InstructionEvalDataSettings,
    "eval": EvalSettings,
    "eval_after_fit": EvalAfterFitSettings,
    "harness": HarnessSettings,
}
INSTANTIATED = ("data", "instruction_data", "labeled_file_data", "instruction_file_data")  # blocks Hydra instantiates: they also name their class


def register_settings() -> None:
    """Store each settings dataclass as ``settings/<name>`` (conf/train.yaml: ``settings@<block>: <name>``)."""
    store = ConfigStore.instance()
    for name, cls in SETTINGS.items():
        node = _writable(OmegaConf.structured(cls))
        if name in INSTANTIATED:
            _with_target(node)
        store.store(group=GROUP, name=name, node=node)


def _with_target(node: DictConfig) -> DictConfig:
    """``node`` with a mandatory ``_target_``, the class the config names and Hydra's ``instantiate``
    builds, which is no setting: a structured config takes no key its dataclass lacks."""
    with open_dict(node):
        node._target_ = MISSING
    return node


def _writable(node: DictConfig) -> DictConfig:
    """``node`` with no read-only flag left: a frozen dataclass (``init.svd``) is a value the
    configs and the command line still set."""
    OmegaConf.set_readonly(node, None)
    for key in node:
        child = node._get_node(key)
        if isinstance(child, DictConfig):
            _writable(child)
    return node
