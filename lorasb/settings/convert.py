"""A config block (a plain mapping, as Hydra passes it) as its settings dataclass, strictly."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, TypeVar

T = TypeVar("T")


class SettingsError(ValueError):
    """A config block with a key its settings do not have, or without a required one."""


def settings_from(cls: type[T], values: Mapping[str, Any] | T | None, key: str) -> T:
    """``values`` (the block at ``key``) as a ``cls``; nested blocks as their own dataclasses.

    Missing keys take the dataclass's defaults; an unknown or a missing required key is a
    :class:`SettingsError` naming it and the known ones.
    """
    if isinstance(values, cls):
        return values
    values = dict(values or {})
    fields = {field.name: field for field in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise SettingsError(f"{key}.{unknown[0]}: no such setting; the settings of {key} are: {', '.join(fields)}")
    missing = [name for name, field in fields.items() if name not in values and _required(field)]
    if missing:
        raise SettingsError(f"{key}.{missing[0]}: required, but not set")
    for name, value in values.items():
        inner = fields[name].default_factory
        if dataclasses.is_dataclass(inner) and isinstance(value, Mapping):
            values[name] = settings_from(inner, value, f"{key}.{name}")
    return cls(**values)


def _required(field: dataclasses.Field) -> bool:
    return field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING

