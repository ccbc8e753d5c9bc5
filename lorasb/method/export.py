"""Saving a LoRA-SB model as a standard PEFT LoRA adapter.

A LoRA-SB layer is a rank-r LoRA layer with ``lora_B = B·R`` and ``lora_A = A``; with
``lora_alpha = s·r`` PEFT's scaling alpha/r equals s, so anything that serves LoRA adapters
serves it unchanged.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from safetensors.torch import save_file
from torch import nn

from lorasb.method.attach import adapters
from lorasb.method.targets import matches

PREFIX = "base_model.model."


TASK_TYPES = {  # PEFT's task_type by the Hugging Face model class's suffix
    "ForSequenceClassification": "SEQ_CLS",
    "ForCausalLM": "CAUSAL_LM",
    "ForTokenClassification": "TOKEN_CLS",
    "ForQuestionAnswering": "QUESTION_ANS",
}


def trained_modules(model: nn.Module) -> list[str]:
    """The modules outside the LoRA-SB layers whose parameters train (a classification head)."""
    layers = adapters(model)
    inside = lambda name: any(name.startswith(f"{layer}.") for layer in layers)  # noqa: E731
    owners = [name.rsplit(".", 1)[0] for name, p in model.named_parameters() if p.requires_grad and not inside(name)]
    return sorted(set(owners))


def task_type(model: nn.Module) -> str | None:
    """PEFT's task type of a Hugging Face model (``SEQ_CLS``, ``CAUSAL_LM``, ...), None if unknown."""
    name = type(model).__name__
    return next((kind for suffix, kind in TASK_TYPES.items() if name.endswith(suffix)), None)


def export_peft(
    model: nn.Module,
    out_dir: str | Path,
    modules_to_save: Iterable[str] | None = None,
    base_model_name_or_path: str | None = None,
) -> Path:
    """Write ``adapter_config.json`` and ``adapter_model.safetensors`` into ``out_dir``.

    ``modules_to_save`` names modules stored whole beside the adapter (a classification head
    trained with it), matched the way PEFT matches them; by default every module outside the
    adapters that trains (:func:`trained_modules`). ``base_model_name_or_path`` defaults to
    where the model was loaded from, and the task type comes from the model's class, so
    ``peft.AutoPeftModelFor…`` and ``PeftModel.from_pretrained`` rebuild it as trained.
    """
    layers = adapters(model)
    if not layers:
        raise ValueError("the model has no LoRA-SB layers to export")
    ranks = {layer.rank for layer in layers.values()}
    scalings = {layer.scaling for layer in layers.values()}
    dropouts = {getattr(layer.dropout, "p", 0.0) for layer in layers.values()}
    if len(ranks) > 1 or len(scalings) > 1:
        raise ValueError(f"every layer must share one rank and scaling to export, found ranks {ranks}, scalings {scalings}")
    rank, scaling = ranks.pop(), scalings.pop()
    saved = trained_modules(model) if modules_to_save is None else list(modules_to_save)

    tensors = {}
    for name, layer in layers.items():
        tensors[f"{PREFIX}{name}.lora_A.weight"] = layer.lora_A.detach()
        tensors[f"{PREFIX}{name}.lora_B.weight"] = (layer.lora_B.to(layer.lora_R.dtype) @ layer.lora_R).detach()
    module_names = {name for name, _ in model.named_modules()}
    for target in saved:
        found = [m for m in module_names if matches(m, [target])]
        if not found:
            raise ValueError(f"modules_to_save: no module of the model matches {target!r}")
        for module_name in found:
            for param_name, param in model.get_submodule(module_name).named_parameters():
                tensors[f"{PREFIX}{module_name}.{param_name}"] = param.detach()

    config = {
        "peft_type": "LORA",
        "task_type": task_type(model),
        "base_model_name_or_path": base_model_name_or_path or getattr(model, "name_or_path", None) or None,
        "r": rank,
        "lora_alpha": scaling * rank,
        "lora_dropout": max(dropouts),
        "target_modules": sorted(layers),
        "modules_to_save": saved or None,
        "bias": "none",
        "fan_in_fan_out": False,
        "use_rslora": False,
        "init_lora_weights": True,
        "inference_mode": True,
    }
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous().cpu() for k, v in tensors.items()}, out / "adapter_model.safetensors")
    (out / "adapter_config.json").write_text(json.dumps(config, indent=2) + "\n")
    return out

