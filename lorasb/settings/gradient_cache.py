"""``gradient_cache``: ΣG kept on disk, so that a sweep over rank, lr and method estimates it once."""

from dataclasses import dataclass
from typing import Any

from lorasb.settings.fields import setting


@dataclass
class GradientCacheSettings:
    """One file per target layer (LoRA-SB's SVD of sign(ΣG) once per rank), keyed by digests of the
    init batches and of the model's tensors, and by ``depends_on`` (:mod:`lorasb.lightning.gradient_key`)."""

    dir: str | None = setting(None, help="the cache's folder; null turns the cache off")
    depends_on: dict[str, Any] = setting(
        factory=dict,
        help="what ΣG depends on beyond the init batches and the model's tensors (init settings, seed, precision, data settings)",
    )
