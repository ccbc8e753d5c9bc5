"""Declaring a setting: its default, the check of its values and its help, as dataclass field metadata."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

from lorasb.settings.checks import Check

_NO_DEFAULT = dataclasses.MISSING


def setting(default: Any = _NO_DEFAULT, *, help: str, check: Check | None = None, factory: Any = _NO_DEFAULT) -> Any:
    """A dataclass field with ``help`` and ``check`` in its metadata; ``factory`` for a mutable
    default, neither ``default`` nor ``factory`` for a required setting."""
    metadata = {"help": help, "check": check}
    if factory is not _NO_DEFAULT:
        return dataclasses.field(default_factory=factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def nested(cls: type, help: str) -> Any:
    """A group of settings inside another (``optim.auto_lr``, ``init.svd``), its defaults by default."""
    return dataclasses.field(default_factory=cls, metadata={"help": help, "check": None})


def default(cls: type, name: str) -> Any:
    """The default of setting ``name`` of ``cls``: what code taking the setting as an argument defaults to."""
    field = next(field for field in dataclasses.fields(cls) if field.name == name)
    return field.default_factory() if field.default_factory is not _NO_DEFAULT else field.default


def walk(cls: type, prefix: str) -> Iterator[tuple[str, dataclasses.Field]]:
    """Every setting of ``cls`` as (``prefix.name``, field), nested groups' settings in place of the group."""
    for field in dataclasses.fields(cls):
        key = f"{prefix}.{field.name}"
        inner = field.default_factory if field.default_factory is not _NO_DEFAULT else None
        if inner is not None and dataclasses.is_dataclass(inner):
            yield from walk(inner, key)
        else:
            yield key, field
