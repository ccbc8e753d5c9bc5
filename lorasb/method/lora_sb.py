"""LoRA-SB and LoRA-XS: the B·R·A layer of this package (only the r×r core R trains), set from the
SVD of the estimated first step (LoRA-SB) or of the pretrained weight (LoRA-XS)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from lorasb.method.attach import adapters, attach, unfreeze
from lorasb.method.base import Memo, Method, no_memo, without_adapters
from lorasb.method.cache import Tensors
from lorasb.method.export import export_peft
from lorasb.method.initialize import LayerInit, approximation, same_shape_batches, truncated_svd, write_factors
from lorasb.method.quantized import compute_dtype, float_weight, weight_shape


def _train_heads(model: nn.Module, head: Iterable[str]) -> nn.Module:
    unfreeze(model, head)
    return model


@dataclass
class LoraSB(Method):
    """LoRA-SB: B·R·A with B = U_r, A = V_rᵀ, R = S_r/s from the SVD of ΔW = −lr₁·sign(ΣG).

    The SVD of −sign(ΣG) does not depend on lr₁ (ΔW's singular values are lr₁ times its), so it
    is memoised and reused by every learning rate of a sweep. Only sign(ΣG) is read (int8),
    turned into floats one batch of same-shaped layers at a time (``SVDConfig.batch_bytes``);
    during a run each group of layers is decomposed as soon as its signs are final (``digest_group``),
    so no group's signs outlive its SVDs.
    """

    name: ClassVar[str] = "lora_sb"
    needs_gradients: ClassVar[bool] = True
    gradient_form: ClassVar[str] = "sign"

    def attach(self, model, targets, head=()):
        attach(model, targets, self.rank, alpha=self.alpha, dropout=self.dropout)
        return _train_heads(model, head)

    def target_weights(self, model):
        return {name: layer.base.weight for name, layer in adapters(model).items()}

    def digest_group(self, model, group, memo):
        """Decompose the group's layers at once (``memo`` keeps the factors); keep none of their signs."""
        self._factors(adapters(model), group, memo, names=list(group))
        return {}

    def initialize(self, model, gradients, lr, memo=no_memo):
        if gradients is None:
            raise ValueError(f"{self.name} needs the summed gradients of its target layers")
        layers = adapters(model)
        factors = self._factors(layers, gradients.sums, memo, names=list(layers))
        stats = {}
        for name, layer in layers.items():
            f = {k: v.to(layer.lora_R.device) for k, v in factors[name].items()}
            write_factors(layer, f["U"], lr * f["S"], f["V"])
            # ΔW = lr₁·M and its rank-r approximation is lr₁·M_r: the error and energy do not depend on lr₁
            stats[name] = LayerInit(relative_error=float(f["error"]), singular_values=(lr * f["S"]).tolist(), energy=float(f["energy"]))
        return stats

    def _factors(self, layers: Mapping[str, nn.Module], signs: Mapping[str, torch.Tensor], memo: Memo, names: list[str]) -> dict[str, Tensors]:
        """The memoised factors of M = −sign(ΣG) for each of ``names``: U, S, V (Vh) and the rank-r
        approximation's relative error and energy. Missing ones are computed from ``signs``, one
        batched SVD per batch of same-shaped layers among ``names``."""
        svd = self.svd
        tag = f"sign_factors/r{self.rank}-niter{svd.niter}-over{svd.oversample}-exact{svd.exact_max_dim}-seed{svd.seed}"
        shapes = {name: weight_shape(layers[name].base.weight) for name in names}
        batch_of = {name: batch for batch in same_shape_batches(shapes, svd.batch_bytes) for name in batch}
        computed: dict[str, Tensors] = {}

        def direction(name: str, device: torch.device) -> torch.Tensor:
            dtype = torch.promote_types(compute_dtype(layers[name].base.weight), torch.float32)
            return -signs[name].to(device).sign().to(dtype)

        def decompose(name: str) -> Tensors:
            """One batched SVD of the layer's batch of same-shaped layers, the others' kept for their turn."""
            if name not in computed:
                batch = batch_of[name]
                device = layers[batch[0]].lora_R.device  # a model split over devices: on the first one's
                matrices = torch.stack([direction(n, device) for n in batch])
                U, S, Vh = truncated_svd(matrices, self.rank, svd)
                for i, n in enumerate(batch):
                    fit = approximation(matrices[i], U[i], S[i], Vh[i])
                    error, energy = torch.tensor(fit.relative_error), torch.tensor(fit.energy)
                    computed[n] = {"U": U[i].clone(), "S": S[i].clone(), "V": Vh[i].clone(), "error": error, "energy": energy}
            return computed.pop(name)

        return {name: memo(f"{tag}/{name}", lambda name=name: decompose(name)) for name in names}

    def written_frozen(self, model):
        return {f"{name}.{factor}" for name in adapters(model) for factor in ("lora_A", "lora_B")}

    def unadapted_tensors(self, model):
        return without_adapters(super().unadapted_tensors(model), {name: "base" for name in adapters(model)})

    def export(self, model, out_dir, head, base_model, initial=None):
        return export_peft(model, out_dir, modules_to_save=list(head), base_model_name_or_path=base_model)


@dataclass
class LoraXS(LoraSB):
    """LoRA-XS (Bałazy et al.): the same B·R·A layer with B = U_r·S_r and A = V_rᵀ from the
    truncated SVD of the pretrained W0 (a quantized W0 dequantized first), and R ~ N(0, ``init_std``²),
    so the model starts at W0 up to that noise (the paper's variant, with its σ = 1e-5). Seeded by ``svd.seed``."""

    init_std: float = 1e-5

    name: ClassVar[str] = "lora_xs"
    needs_gradients: ClassVar[bool] = False

    @torch.no_grad()
    def initialize(self, model, gradients, lr, memo=no_memo):
        generator = torch.Generator().manual_seed(self.svd.seed)
        stats = {}
        for name, layer in adapters(model).items():
            weight = float_weight(layer.base)
            U, S, Vh = truncated_svd(weight, self.rank, self.svd)
            layer.lora_B.copy_(U * S)
            layer.lora_A.copy_(Vh)
            layer.lora_R.copy_(torch.randn(self.rank, self.rank, generator=generator, dtype=torch.float64) * self.init_std)
            stats[name] = approximation(weight, U, S, Vh)
        return stats


