"""Which linear layers a method adapts: names (or name suffixes) from the config, or ``all-linear``.

``all-linear`` follows PEFT's convention: every ``nn.Linear`` of the model except its output
layer (the language-model head, ``get_output_embeddings()``) and the modules trained in full
(``head``: a classifier). Fused projections (Phi-3's ``qkv_proj`` and ``gate_up_proj``) are
ordinary ``nn.Linear`` layers and are adapted as such.
"""

from __future__ import annotations

from collections.abc import Iterable

from torch import nn

ALL_LINEAR = "all-linear"


def matches(name: str, targets: Iterable[str]) -> bool:
    """PEFT-style matching: the qualified name equals a target or ends with ``.target``."""
    return any(name == target or name.endswith("." + target) for target in targets)


def linear_layers(model: nn.Module) -> dict[str, nn.Linear]:
    """Every ``nn.Linear`` of ``model`` by qualified name."""
    return {name: module for name, module in model.named_modules() if isinstance(module, nn.Linear)}


def abbreviate(names: Iterable[str]) -> list[str]:
    """Layer names with numbered blocks collapsed (``layer.*.attention.self.query``), first seen first."""
    return list(dict.fromkeys(".".join("*" if part.isdigit() else part for part in name.split(".")) for name in names))


def resolve_targets(model: nn.Module, target_modules: str | Iterable[str], head: Iterable[str] = ()) -> list[str]:
    """The qualified names of the ``nn.Linear`` layers ``target_modules`` picks, in the model's order.

    ``target_modules``: ``all-linear`` (alone, or as the only entry of a list), or names each of
    which must match at least one linear layer (a name that matches none is refused, listing the
    model's linear layers). ``head``: the modules trained in full, which ``all-linear`` leaves out.
    """
    targets = [target_modules] if isinstance(target_modules, str) else list(target_modules)
    linears = linear_layers(model)
    if ALL_LINEAR in targets:
        if targets != [ALL_LINEAR]:
            raise ValueError(f"target_modules={targets}: {ALL_LINEAR} stands alone; give it without other names")
        output = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
        heads = list(head)
        chosen = [name for name, m in linears.items() if m is not output and not _inside(name, heads)]
    else:
        unmatched = [target for target in targets if not any(matches(name, [target]) for name in linears)]
        if unmatched or not targets:
            raise ValueError(
                f"no nn.Linear matches target_modules entry {', '.join(map(repr, unmatched)) or '(none given)'}. "
                f"The model's linear layers are: {', '.join(abbreviate(linears))}; "
                f"name some of them (or a suffix of their names), or give model.target_modules={ALL_LINEAR}"
            )
        chosen = [name for name in linears if matches(name, targets)]
    if not chosen:
        raise ValueError(f"target_modules={targets} leaves no linear layer to adapt in {type(model).__name__}")
    return chosen


def _inside(name: str, modules: list[str]) -> bool:
    """Whether ``name`` is one of ``modules`` or inside one (matched as PEFT matches names)."""
    parts = name.split(".")
    return any(matches(".".join(parts[: i + 1]), modules) for i in range(len(parts)))
