"""Hydra resolvers the configs in ``conf/`` use (the model loaders import only when a config resolves)."""

from __future__ import annotations

import re

from omegaconf import OmegaConf


def _package_dir(package: str) -> str:
    from lorasb.models import package_dir

    return package_dir(package)


def _gguf_folder(package: str, filename: str) -> str:
    from lorasb.models import gguf_folder

    return gguf_folder(package, filename)


def _cache_dir() -> str:
    from lorasb.models import cache_dir

    return str(cache_dir())


def path_safe(text: str) -> str:
    """``text`` as one folder or run name: ``/`` becomes ``-``; other characters than letters,
    digits and ``._=,+-`` become ``_``; at most 200 characters."""
    return re.sub(r"[^A-Za-z0-9._=,+-]", "_", str(text).replace("/", "-"))[:200]


def register_resolvers() -> None:
    """``${package_dir:pkg}``: the folder of an installed package (offline model weights);
    ``${gguf_folder:pkg,file.gguf}``: a GGUF file of a package, converted once to a HF folder;
    ``${cache_dir:}``: lorasb's cache folder; ``${path_safe:text}``: text usable as a folder name."""
    OmegaConf.register_new_resolver("package_dir", _package_dir, replace=True)
    OmegaConf.register_new_resolver("gguf_folder", _gguf_folder, replace=True)
    OmegaConf.register_new_resolver("cache_dir", _cache_dir, replace=True)
    OmegaConf.register_new_resolver("path_safe", path_safe, replace=True)
