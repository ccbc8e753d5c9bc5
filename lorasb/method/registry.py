"""Every fine-tuning method by name, and how one is built from its options."""

from __future__ import annotations

from collections.abc import Mapping

from lorasb.method.base import Method
from lorasb.method.full import Full
from lorasb.method.initialize import SVDConfig
from lorasb.method.lora_sb import LoraSB, LoraXS
from lorasb.method.peft_methods import Dora, Lora, LoraGA, Pissa


def method_classes() -> dict[str, type[Method]]:
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
