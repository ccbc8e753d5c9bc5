"""Hydra resolvers the configs in ``conf/`` use (the model loaders import only when a config resolves)."""

from __future__ import annotations

from omegaconf import OmegaConf


def _package_dir(package: str) -> str:
    from lorasb.models import package_dir

    return package_dir(package)


def _gguf_folder(package: str, filename: str) -> str:
    from lorasb.models import gguf_folder

    return gguf_folder(package, filename)


def register_resolvers() -> None:
    """``${package_dir:pkg}``: the folder of an installed package (offline model weights);
    ``${gguf_folder:pkg,file.gguf}``: a GGUF file of a package, converted once to a HF folder."""
    OmegaConf.register_new_resolver("package_dir", _package_dir, replace=True)
    OmegaConf.register_new_resolver("gguf_folder", _gguf_folder, replace=True)
