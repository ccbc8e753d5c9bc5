"""The benchmarked model: which one, how it loads, and random inputs of the right kind."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import AutoConfig, PreTrainedModel

from lorasb.config.choices import CONF_DIR, group_options
from lorasb.models import load_causal_lm, load_classifier
from lorasb.models.quantization import bnb_config, prepare_for_training
from lorasb.settings.model import ModelSettings

ALIASES = {"smollm2": "smollm2_135m"}
NUM_LABELS = 2


@dataclass(frozen=True)
class ModelSpec:
    """A model to load: folder (or Hub name), ``kind`` (encoder or causal_lm), the layers
    adapters target, the submodules that train in full beside them, the dtype, and the base's
    quantization (``nf4``, ``fp4``, ``int8``; None: none)."""

    name_or_path: str
    kind: str
    targets: tuple[str, ...]
    head: tuple[str, ...]
    dtype: str
    quantization: str | None = None


def _compose(config_name: str):
    import hydra

    from lorasb.config import register_resolvers

    register_resolvers()
    with hydra.initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return hydra.compose(config_name)


def resolve(model: str, targets: list[str] | None = None) -> ModelSpec:
    """``model``: an option of conf/model (``minilm``, ``smollm2`` for smollm2_135m, ...) or a
    local folder, whose kind and default targets come from its family in conf/family/model."""
    name = ALIASES.get(model, model)
    if name in group_options("model"):
        config = _compose(f"model/{name}").model
    elif Path(model).is_dir():
        architectures = AutoConfig.from_pretrained(model).architectures or []
        kind = "causal_lm" if any(a.endswith("ForCausalLM") for a in architectures) else "encoder"
        config = {**_compose(f"family/model/{kind}").family.model, "name_or_path": model}
    else:
        options = ", ".join([*ALIASES, *group_options("model")])
        raise SystemExit(f"unknown model {model!r}: give a local folder or one of: {options}")
    return ModelSpec(
        name_or_path=str(config["name_or_path"]),
        kind=config["kind"],
        targets=tuple(targets or config["target_modules"]),
        head=tuple(config["head"]),
        dtype=config["dtype"],
    )


def load(spec: ModelSpec, device: str) -> PreTrainedModel:
    """The pretrained model in train mode on ``device`` (a classifier with a new head for an encoder)."""
    if spec.quantization is not None:  # loaded on the device it is quantized on, prepared as a run prepares it
        settings = ModelSettings(spec.name_or_path, list(spec.targets), list(spec.head), spec.dtype, spec.kind, spec.quantization)
        quantization = bnb_config(settings.quantization, settings.layer_compute_dtype(), settings.double_quant)
        return prepare_for_training(load_causal_lm(spec.name_or_path, spec.dtype, quantization), False).train()
    if spec.kind == "causal_lm":
        model = load_causal_lm(spec.name_or_path, spec.dtype)
    else:
        model = load_classifier(spec.name_or_path, NUM_LABELS, spec.dtype)
    return model.to(device).train()


def random_batches(spec: ModelSpec, vocab_size: int, count: int, batch: int, seq_len: int, device: str, seed: int) -> list[dict]:
    """``count`` batches of seeded random token ids; class labels for an encoder, the ids for a causal LM."""
    generator = torch.Generator().manual_seed(seed)
    batches = []
    for _ in range(count):
        ids = torch.randint(0, vocab_size, (batch, seq_len), generator=generator)
        if spec.kind == "causal_lm":
            labels = ids.clone()
        else:
            labels = torch.randint(0, NUM_LABELS, (batch,), generator=generator)
        tensors = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": labels}
        batches.append({k: v.to(device) for k, v in tensors.items()})
    return batches
