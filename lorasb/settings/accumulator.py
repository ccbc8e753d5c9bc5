"""How the summed gradient ΣG of the initialisation is held: the accumulator options
(:mod:`lorasb.method.memory` explains their memory)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

ACCUMULATOR_DTYPES = ("float32", "bfloat16")


@dataclass(frozen=True)
class AccumulatorOptions:
    """How ΣG is accumulated (``init.accumulator_dtype``, ``init.offload``, ``init.layer_groups``)."""

    dtype: str = "float32"
    offload: bool = False
    layer_groups: int = 1

    def __post_init__(self):
        if self.dtype not in ACCUMULATOR_DTYPES:
            raise ValueError(f"accumulator dtype {self.dtype!r}: choose one of {', '.join(ACCUMULATOR_DTYPES)}")
        if self.layer_groups < 1:
            raise ValueError(f"layer_groups must be at least 1, got {self.layer_groups}")

    def as_dict(self) -> dict:
        return asdict(self)
