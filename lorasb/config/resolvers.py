"""Hydra resolvers the configs in ``conf/`` use (the model loaders import only when a config resolves)."""

from __future__ import annotations

from omegaconf import OmegaConf

from lorasb.config.choices import group_options, model_kind


def _package_dir(package: str) -> str:
    from lorasb.models import package_dir

    return package_dir(package)


def _gguf_folder(package: str, filename: str) -> str:
    from lorasb.models import gguf_folder

    return gguf_folder(package, filename)


def _options(group: str, kind: str | None = None) -> str:
    options = group_options(group)
    if kind is not None:
        options = [name for name in options if model_kind(name) == kind]
    return ", ".join(options)


def register_resolvers() -> None:
    """``${package_dir:pkg}``: the folder of an installed package (offline model weights);
    ``${gguf_folder:pkg,file.gguf}``: a GGUF file of a package, converted once to a HF folder;
    ``${options:group}``: the options of a config group, comma-separated (for ``--help``);
    ``${options:model,causal_lm}``: the models of one kind."""
    OmegaConf.register_new_resolver("package_dir", _package_dir, replace=True)
    OmegaConf.register_new_resolver("gguf_folder", _gguf_folder, replace=True)
    OmegaConf.register_new_resolver("options", _options, replace=True)
