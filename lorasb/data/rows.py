"""Conversations read from a file, with the row number each came from (for error messages)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from lorasb.data.conversation import Conversation


@dataclass(frozen=True)
class Rows:
    """``conversations`` of the dataset ``name`` (a file, or a set's name); ``numbers``: their rows, from 1."""

    name: str
    conversations: list[Conversation]
    numbers: list[int] = field(default_factory=list)

    def __post_init__(self):
        if not self.numbers:
            self.numbers.extend(range(1, len(self.conversations) + 1))

    def subset(self, indices: Iterable[int]) -> Rows:
        indices = list(indices)
        return Rows(self.name, [self.conversations[i] for i in indices], [self.numbers[i] for i in indices])
