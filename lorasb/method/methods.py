"""Fine-tuning methods as small strategies: how a model is adapted, initialised and exported.

Every method is built from ``rank`` and its own options (``build_method``) and does these things:

    attach      adapt the model (heads named in ``head`` train in full with every method)
    prepare     take each group of target layers' ΣG as soon as the estimate has finished it, and
                say what of it to keep (LoRA-SB decomposes it there and keeps nothing)
    initialize  set the adapters before training; methods with ``needs_gradients`` receive the
                summed gradient ΣG of each target weight (names as in the unadapted model), or
                only its signs as int8 where ``gradient_form`` is ``sign`` (4× less memory)
    kept        the names of frozen tensors the initialisation wrote (checkpoints keep them)
    export      write the trained adapter (PEFT format where the method has one); methods that
                change W0 save their initial adapter first (``save_initial``) so that the export
                applies to the original W0

``lora_sb`` and ``lora_xs`` share the B·R·A layer of this package; ``full`` trains every
weight; ``lora``, ``pissa``, ``dora`` and ``lora_ga`` are PEFT's (:mod:`lorasb.method.peft_methods`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import torch
from torch import nn

from lorasb.method.attach import adapters, attach, unfreeze
from lorasb.method.cache import Gradients, Tensors
from lorasb.method.export import export_peft
from lorasb.method.initialize import LayerInit, SVDConfig, approximation, same_shape_batches, truncated_svd, write_factors

# memo(name, compute): tensors derived from ΣG, computed once and kept (lorasb.method.cache.GradientCache.memo)
Memo = Callable[[str, Callable[[], Tensors]], Tensors]


def no_memo(name: str, compute: Callable[[], Tensors]) -> Tensors:
    """No memo: compute every time."""
    return compute()


@dataclass
class Method:
    """A fine-tuning method; subclasses set ``name`` and override what differs."""

    rank: int
    alpha: float | None = None
    dropout: float = 0.0
    svd: SVDConfig = field(default_factory=SVDConfig)

    name: ClassVar[str]
    needs_gradients: ClassVar[bool] = False
    gradient_form: ClassVar[str] = "sum"  # what initialize reads: ΣG ("sum") or sign(ΣG) as int8 ("sign")

    def attach(self, model: nn.Module, targets: Iterable[str], head: Iterable[str] = ()) -> nn.Module:
        """The model to train; every parameter frozen except the method's and those of ``head``."""
        raise NotImplementedError

    def target_weights(self, model: nn.Module) -> dict[str, torch.Tensor]:
        """The frozen weight of every adapted layer, by its name in the unadapted model."""
        return {}

    def prepare(self, model: nn.Module, group: Tensors, memo: Memo) -> Tensors:
        """What to keep of a group of target layers' ΣG (or signs) once it is final; the rest is freed
        at once. ``memo`` keeps what is derived from it. All of it, by default."""
        return group

    def initialize(self, model: nn.Module, gradients: Gradients | None, lr: float, memo: Memo = no_memo) -> dict[str, LayerInit]:
        """Set the adapters in place (``lr``: the first optimizer step's); per-layer statistics."""
        return {}

    def kept(self, model: nn.Module) -> set[str]:
        """Parameter names of frozen tensors the initialisation writes."""
        return set()

    def save_initial(self, model: nn.Module, out_dir: Path) -> None:
        """Keep what :meth:`export` needs of the model as initialised (nothing, unless W0 changes)."""

    def export(self, model: nn.Module, out_dir: Path, head: Iterable[str], base_model: str | None, initial: Path | None = None) -> Path:
        """Write the trained adapter; ``initial``: the folder :meth:`save_initial` wrote."""
        raise NotImplementedError


def _train_heads(model: nn.Module, head: Iterable[str]) -> nn.Module:
    unfreeze(model, head)
    return model


@dataclass
class LoraSB(Method):
    """LoRA-SB: B·R·A with B = U_r, A = V_rᵀ, R = S_r/s from the SVD of ΔW = −lr₁·sign(ΣG).

    The SVD of −sign(ΣG) does not depend on lr₁ (ΔW's singular values are lr₁ times its), so it
    is memoised and reused by every learning rate of a sweep. Only sign(ΣG) is read (int8),
    turned into floats one batch of same-shaped layers at a time (``SVDConfig.batch_bytes``);
    during a run each group of layers is decomposed as soon as its signs are final (``prepare``),
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

    def prepare(self, model, group, memo):
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
        shapes = {name: layers[name].base.weight.shape for name in names}
        batch_of = {name: batch for batch in same_shape_batches(shapes, svd.batch_bytes) for name in batch}
        computed: dict[str, Tensors] = {}

        def direction(name: str, device: torch.device) -> torch.Tensor:
            dtype = torch.promote_types(layers[name].base.weight.dtype, torch.float32)
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

    def kept(self, model):
        return {f"{name}.{factor}" for name in adapters(model) for factor in ("lora_A", "lora_B")}

    def export(self, model, out_dir, head, base_model, initial=None):
        return export_peft(model, out_dir, modules_to_save=list(head), base_model_name_or_path=base_model)


@dataclass
class LoraXS(LoraSB):
    """LoRA-XS (Bałazy et al.): the same B·R·A layer with B = U_r·S_r and A = V_rᵀ from the
    truncated SVD of the pretrained W0, and R ~ N(0, ``init_std``²), so the model starts at W0
    up to that noise (the paper's variant, with its σ = 1e-5). Seeded by ``svd.seed``."""

    init_std: float = 1e-5

    name: ClassVar[str] = "lora_xs"
    needs_gradients: ClassVar[bool] = False

    @torch.no_grad()
    def initialize(self, model, gradients, lr, memo=no_memo):
        generator = torch.Generator().manual_seed(self.svd.seed)
        stats = {}
        for name, layer in adapters(model).items():
            weight = layer.base.weight
            U, S, Vh = truncated_svd(weight, self.rank, self.svd)
            layer.lora_B.copy_(U * S)
            layer.lora_A.copy_(Vh)
            layer.lora_R.copy_(torch.randn(self.rank, self.rank, generator=generator, dtype=torch.float64) * self.init_std)
            stats[name] = approximation(weight, U, S, Vh)
        return stats


@dataclass
class Full(Method):
    """Full fine-tuning: every weight trains (rank, alpha and dropout are not used)."""

    name: ClassVar[str] = "full"

    def attach(self, model, targets, head=()):
        return model.requires_grad_(True)

    def export(self, model, out_dir, head, base_model, initial=None):
        """The whole fine-tuned model, in Hugging Face format."""
        model.save_pretrained(out_dir)
        return Path(out_dir)


def method_classes() -> dict[str, type[Method]]:
    from lorasb.method.peft_methods import Dora, Lora, LoraGA, Pissa

    return {cls.name: cls for cls in (LoraSB, LoraXS, Lora, Pissa, Dora, LoraGA, Full)}


def build_method(name: str, rank: int, options: Mapping | None = None, svd: SVDConfig = SVDConfig()) -> Method:
    """The method called ``name`` with ``rank`` and its ``options`` (its dataclass fields)."""
    classes = method_classes()
    if name not in classes:
        raise ValueError(f"unknown method {name!r}; choose one of: {', '.join(classes)}")
    cls = classes[name]
    options = dict(options or {})
    known = set(cls.__dataclass_fields__) - {"rank", "svd"}
    unknown = sorted(set(options) - known)
    if unknown:
        raise ValueError(f"method {name} has no option {', '.join(unknown)}; its options are: {', '.join(sorted(known))}")
    return cls(rank=rank, svd=svd, **options)
