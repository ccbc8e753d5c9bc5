"""``gradient_cache``: ΣG kept on disk, so that a sweep over rank, lr and method estimates it once."""

from dataclasses import dataclass
from typing import Any

from lorasb.settings.fields import setting


@dataclass
class GradientCacheSettings:
    """One file per target layer (LoRA-SB's SVD of sign(ΣG) once per rank), keyed by a hash of
    ``depends_on`` (:class:`lorasb.method.cache.GradientCache`)."""

    dir: str | None = setting(None, help="the cache's folder; null turns the cache off")
    depends_on: dict[str, Any] = setting(
        factory=dict,
        help="exactly what ΣG depends on (the model, the training samples, the init settings, seed and precision)",
    )
