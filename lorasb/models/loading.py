"""Loading pretrained Hugging Face models, from the Hub or from local folders."""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from lorasb.models.differentiable import keep_differentiable

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16, "float64": torch.float64}


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


def load_classifier(name_or_path: str, num_labels: int, dtype: str = "float32", labels: list[str] | None = None) -> PreTrainedModel:
    """A sequence classifier (a regressor when ``num_labels`` is 1) with a freshly initialised head;
    ``labels`` name its outputs in order (the config's ``id2label`` and ``label2id``)."""
    names = {"id2label": dict(enumerate(labels)), "label2id": {label: i for i, label in enumerate(labels)}} if labels else {}
    return from_pretrained(
        AutoModelForSequenceClassification, name_or_path, num_labels=num_labels, dtype=torch_dtype(dtype), **names
    )


def load_causal_lm(name_or_path: str, dtype: str = "float32", quantization_config=None) -> PreTrainedModel:
    """A decoder-only language model (Llama, Mistral, Gemma, ...); with a ``BitsAndBytesConfig``
    its linear layers quantized (:mod:`lorasb.models.quantization`) on the device it loads on."""
    if quantization_config is None:
        return from_pretrained(AutoModelForCausalLM, name_or_path, dtype=torch_dtype(dtype))
    # bitsandbytes quantizes on the device the model loads on: the current GPU, else the CPU
    device = torch.cuda.current_device() if torch.cuda.is_available() else "cpu"
    model = from_pretrained(AutoModelForCausalLM, name_or_path, dtype=torch_dtype(dtype), quantization_config=quantization_config, device_map={"": device})
    return keep_differentiable(model)


def load_tokenizer(name_or_path: str) -> PreTrainedTokenizerBase:
    """A tokenizer with a padding token (the EOS token where the model defines none)."""
    tokenizer = from_pretrained(AutoTokenizer, name_or_path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer
