"""The base of every fine-tuning method: a small strategy for how a model is adapted, initialised and exported.

Every method is built from ``rank`` and its own options (``build_method``) and does these things:

    attach      adapt the model (heads named in ``head`` train in full with every method)
    digest_group      take each group of target layers' ΣG as soon as the estimate has finished
                      it, and say what of it to keep (LoRA-SB decomposes it there and keeps nothing)
    initialize        set the adapters before training; methods with ``needs_gradients`` receive
                      the summed gradient ΣG of each target weight (names as in the unadapted
                      model), or only its signs as int8 where ``gradient_form`` is ``sign``
    written_frozen    the names of frozen tensors the initialisation writes (checkpoints keep them)
    unadapted_tensors every parameter and buffer the gradient estimate reads, by its name in the
                      unadapted model (what the gradient cache's key digests)
    export            write the trained adapter (PEFT format where the method has one); methods
                      that change W0 save their initial adapter first (``save_initial``) so that
                      the export applies to the original W0

``lora_sb`` and ``lora_xs`` share the B·R·A layer of this package (:mod:`lorasb.method.lora_sb`);
``full`` trains every weight; ``lora``, ``pissa``, ``dora`` and ``lora_ga`` are PEFT's
(:mod:`lorasb.method.peft_methods`); :mod:`lorasb.method.registry` names them all.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from itertools import chain
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import torch
from torch import nn

from lorasb.method.cache import Gradients, Tensors
from lorasb.method.initialize import LayerInit, SVDConfig

# memo(name, compute): tensors derived from ΣG, computed once and kept (lorasb.method.cache.GradientCache.memo)
Memo = Callable[[str, Callable[[], Tensors]], Tensors]


def no_memo(name: str, compute: Callable[[], Tensors]) -> Tensors:
    """No memo: compute every time."""
    return compute()


def without_adapters(named: Iterable[tuple[str, torch.Tensor]], wrappers: dict[str, str]) -> Iterator[tuple[str, torch.Tensor]]:
    """``named`` tensors as the unadapted model names them: in each wrapper layer (``wrappers``:
    its name → the path of the module it wraps, inside it), the wrapped module's tensors renamed
    as the layer's own (``<layer>.<path>.weight`` → ``<layer>.weight``) and the rest left out."""
    for name, tensor in named:
        parts = name.split(".")
        owners = (".".join(parts[:i]) for i in range(len(parts) - 1, 0, -1))  # innermost first
        layer = next((owner for owner in owners if owner in wrappers), None)
        if layer is None:
            yield name, tensor
        elif name.startswith(inner := f"{layer}.{wrappers[layer]}."):
            yield f"{layer}.{name.removeprefix(inner)}", tensor


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

    def digest_group(self, model: nn.Module, group: Tensors, memo: Memo) -> Tensors:
        """What to keep of a group of target layers' ΣG (or signs) once it is final; the rest is freed
        at once. ``memo`` keeps what is derived from it. All of it, by default."""
        return group

    def initialize(self, model: nn.Module, gradients: Gradients | None, lr: float, memo: Memo = no_memo) -> dict[str, LayerInit]:
        """Set the adapters in place (``lr``: the first optimizer step's); per-layer statistics."""
        return {}

    def written_frozen(self, model: nn.Module) -> set[str]:
        """Parameter names of frozen tensors the initialisation writes."""
        return set()

    def unadapted_tensors(self, model: nn.Module) -> Iterator[tuple[str, torch.Tensor]]:
        """Every parameter and buffer of ``model`` but the adapters' own, by its name in the
        unadapted model: all that the gradient estimate reads, as its adapters are still empty
        and add nothing then. Rank and method change none of it. All of them, by default."""
        return chain(model.named_parameters(), model.named_buffers())

    def save_initial(self, model: nn.Module, out_dir: Path) -> None:
        """Keep what :meth:`export` needs of the model as initialised (nothing, unless W0 changes)."""

    def export(self, model: nn.Module, out_dir: Path, head: Iterable[str], base_model: str | None, initial: Path | None = None) -> Path:
        """Write the trained adapter; ``initial``: the folder :meth:`save_initial` wrote."""
        raise NotImplementedError
