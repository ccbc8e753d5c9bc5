"""The LoRA family through PEFT: LoRA, PiSSA, DoRA and LoRA-GA (no layer of them written here).

Each wraps the model with ``peft.get_peft_model``; heads train in full as PEFT's
``modules_to_save`` and are saved with the adapter by ``save_pretrained``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import torch
from peft import LoraConfig, LoraGAConfig, get_peft_model, get_peft_model_state_dict
from safetensors.torch import load_file, save_file
from peft.tuners.lora import LoraLayer
from peft.utils import ModulesToSaveWrapper

from lorasb.method.base import Method, no_memo, without_adapters

PREFIX = "base_model.model."


def lora_layers(model) -> dict[str, LoraLayer]:
    """PEFT's LoRA layers by their name in the unadapted model."""
    return {name.removeprefix(PREFIX): m for name, m in model.named_modules() if isinstance(m, LoraLayer)}


@dataclass
class Lora(Method):
    """LoRA (Hu et al.): W0 + (α/r)·B·A, B = 0 and A random; trains A and B (PEFT's convention)."""

    alpha: float | None = 16.0

    name: ClassVar[str] = "lora"
    rewrites_base: ClassVar[bool] = False  # the initialisation changes W0 (checkpoints keep it)

    def lora_config(self, targets, head) -> LoraConfig:
        return LoraConfig(
            r=self.rank,
            lora_alpha=self.rank if self.alpha is None else self.alpha,
            lora_dropout=self.dropout,
            target_modules=list(targets),
            modules_to_save=list(head) or None,
            **self.options(),
        )

    def options(self) -> dict:
        """What this variant adds to the ``LoraConfig``."""
        return {}

    def attach(self, model, targets, head=()):
        return get_peft_model(model, self.lora_config(targets, head))

    def target_weights(self, model):
        return {name: layer.get_base_layer().weight for name, layer in lora_layers(model).items()}

    def written_frozen(self, model):
        if not self.rewrites_base:
            return set()
        return {f"{PREFIX}{name}.base_layer.weight" for name in lora_layers(model)}

    def unadapted_tensors(self, model):
        """The LoRA layers' base layers and the trained copies of the heads (what the forward runs)."""
        named = ((name.removeprefix(PREFIX), t) for name, t in super().unadapted_tensors(model))
        heads = {name.removeprefix(PREFIX): "modules_to_save.default" for name, m in model.named_modules() if isinstance(m, ModulesToSaveWrapper)}
        return without_adapters(named, {**{name: "base_layer" for name in lora_layers(model)}, **heads})

    def save_initial(self, model, out_dir):
        if self.rewrites_base:
            model.save_pretrained(out_dir)

    def export(self, model, out_dir, head, base_model, initial=None):
        """PEFT's adapter; PiSSA and LoRA-GA (which change W0) as PEFT's conversion from the
        ``initial`` adapter, a LoRA of rank 2r that applies to the original W0."""
        convert = self.rewrites_base and initial is not None and Path(initial, "adapter_config.json").is_file()
        model.save_pretrained(out_dir, path_initial_model_for_weight_conversion=str(initial) if convert else None)
        if convert and head:  # PEFT's conversion leaves the modules_to_save out: put them back
            path = Path(out_dir) / "adapter_model.safetensors"
            saved = get_peft_model_state_dict(model)
            heads = {k: v for k, v in saved.items() if "lora_" not in k}
            save_file({**load_file(path), **{k: v.contiguous() for k, v in heads.items()}}, path, metadata={"format": "pt"})
        return Path(out_dir)


@dataclass
class Pissa(Lora):
    """PiSSA (Meng et al.): A, B from the top-r singular part of W0, which keeps the residual.

    ``init``: ``pissa`` (exact SVD) or ``pissa_niter_<n>`` (randomised, faster on large layers).
    """

    init: str = "pissa"

    name: ClassVar[str] = "pissa"
    rewrites_base: ClassVar[bool] = True

    def options(self):
        return {"init_lora_weights": self.init}


@dataclass
class Dora(Lora):
    """DoRA (Liu et al.): LoRA with a learned magnitude per output feature."""

    name: ClassVar[str] = "dora"

    def options(self):
        return {"use_dora": True}


@dataclass
class LoraGA(Lora):
    """LoRA-GA (Wang et al.): A, B from the SVD of the first gradient, W0 offset by their product.

    PEFT's ``LoraGAConfig`` and its layer initialisation; the gradient is the mean over the
    initialisation batches of each target weight's gradient (what ``peft.preprocess_loraga``
    attaches), taken from the same estimate LoRA-SB uses.
    """

    direction: str = "ArB2r"
    scale: str = "stable"
    stable_gamma: int = 16

    name: ClassVar[str] = "lora_ga"
    needs_gradients: ClassVar[bool] = True
    rewrites_base: ClassVar[bool] = True

    def options(self):
        config = LoraGAConfig(direction=self.direction, scale=self.scale, stable_gamma=self.stable_gamma)
        return {"init_lora_weights": "lora_ga", "lora_ga_config": config}

    @torch.no_grad()
    def initialize(self, model, gradients, lr, memo=no_memo):
        if gradients is None:
            raise ValueError(f"{self.name} needs the summed gradients of its target layers")
        config = model.peft_config["default"].lora_ga_config
        for name, layer in lora_layers(model).items():
            base = layer.get_base_layer()
            total = gradients.sums[name].to(base.weight.device)
            base._peft_loraga_grad = total.to(torch.promote_types(total.dtype, torch.float32)) / gradients.batches
            layer.lora_ga_init("default", config)
        return {}
