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

from lorasb.method.attach import adapters, matches

PREFIX = "base_model.model."


def export_peft(
    model: nn.Module,
    out_dir: str | Path,
    modules_to_save: Iterable[str] = (),
    base_model_name_or_path: str | None = None,
) -> Path:
    """Write ``adapter_config.json`` and ``adapter_model.safetensors`` into ``out_dir``.

    ``modules_to_save`` names modules stored whole beside the adapter (a classification head
    trained with it, e.g. ``["classifier"]``), matched the way PEFT matches them.
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
    saved = list(modules_to_save)

    tensors = {}
    for name, layer in layers.items():
        tensors[f"{PREFIX}{name}.lora_A.weight"] = layer.lora_A.detach()
        tensors[f"{PREFIX}{name}.lora_B.weight"] = (layer.lora_B @ layer.lora_R).detach()
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
        "task_type": None,
        "base_model_name_or_path": base_model_name_or_path,
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

