"""What a setting's value may be: a predicate and its description, as the config check reports it."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Check:
    """A value ``accepts`` takes (described by ``allowed``), or null where ``nullable``."""

    allowed: str
    accepts: Callable[[Any], bool]
    nullable: bool = False

    def problem(self, value: Any) -> str | None:
        """``expected <allowed>`` when ``value`` is not allowed, else None."""
        if value is None and self.nullable:
            return None
        if value is not None and self.accepts(value):
            return None
        return f"expected {self.allowed}{' or null' if self.nullable else ''}"


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    return (is_int(value) or isinstance(value, float)) and math.isfinite(value)


def integer(minimum: int, nullable: bool = False) -> Check:
    return Check(f"an integer ≥ {minimum}", lambda v: is_int(v) and v >= minimum, nullable)


def positive(nullable: bool = False) -> Check:
    return Check("a number > 0", lambda v: is_number(v) and v > 0, nullable)


def non_negative(nullable: bool = False) -> Check:
    return Check("a number ≥ 0", lambda v: is_number(v) and v >= 0, nullable)


def fraction() -> Check:
    """A probability or ratio in [0, 1)."""
    return Check("a number in [0, 1)", lambda v: is_number(v) and 0 <= v < 1)


def one_of(names: tuple[str, ...], nullable: bool = False) -> Check:
    return Check(f"one of {', '.join(names)}", lambda v: v in names, nullable)


def boolean() -> Check:
    return Check("true or false", lambda v: isinstance(v, bool))


def existing(kind: str) -> Check:
    """A path to an existing ``file`` or ``folder`` (null allowed: the key is optional)."""
    exists = Path.is_file if kind == "file" else Path.is_dir
    return Check(f"an existing {kind}", lambda v: isinstance(v, str) and exists(Path(v)), nullable=True)


def names(allowed: tuple[str, ...] | None = None, empty: bool = False) -> Check:
    """A list of names (of ``allowed``, where given), non-empty unless ``empty``."""
    what = f"a list of {', '.join(allowed)}" if allowed else "a list of names"
    what = what if empty else f"a non-empty {what.removeprefix('a ')}"
    return Check(what, lambda v: isinstance(v, list) and (empty or bool(v)) and all(isinstance(n, str) and (allowed is None or n in allowed) for n in v))
