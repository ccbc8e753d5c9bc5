"""One training example of an instruction file: an optional system turn, then user and assistant turns.

Both layouts of a file become a :class:`Conversation`: an Alpaca-style row (instruction, optional
input, output) is one user turn and one assistant turn, its input kept apart as ``context``;
a chat row's ``messages`` are its turns.
"""

from __future__ import annotations

from dataclasses import dataclass

ROLES = ("system", "user", "assistant")


@dataclass(frozen=True)
class Conversation:
    """``turns``: (role, content) pairs; ``context``: an Alpaca row's input, extra context to the first user turn."""

    turns: tuple[tuple[str, str], ...]
    context: str = ""

    @classmethod
    def single(cls, instruction: str, response: str, context: str = "") -> Conversation:
        return cls((("user", instruction), ("assistant", response)), context)

    @property
    def system(self) -> str:
        return self.turns[0][1] if self.turns and self.turns[0][0] == "system" else ""

    @property
    def dialogue(self) -> tuple[tuple[str, str], ...]:
        """The turns after the system turn."""
        return self.turns[1:] if self.turns and self.turns[0][0] == "system" else self.turns

    def messages(self) -> list[dict[str, str]]:
        """The turns as chat messages (``{role, content}``), the context appended to the first user turn."""
        messages, context = [], self.context.strip()
        for role, content in self.turns:
            if role == "user" and context:
                content, context = f"{content}\n\n{context}", ""
            messages.append({"role": role, "content": content})
        return messages

    def exchanges(self) -> list[tuple[str, str]]:
        """(user, assistant) pairs, for templates that render one exchange after another.

        Raises ValueError unless the turns after the system turn alternate user, assistant, ...,
        ending with the assistant's.
        """
        dialogue = self.dialogue
        roles = [role for role, _ in dialogue]
        if len(roles) % 2 or roles != ["user", "assistant"] * (len(roles) // 2):
            raise ValueError(f"turns {', '.join(roles)}: this template needs user and assistant turns in alternation, ending with the assistant's")
        return [(dialogue[i][1], dialogue[i + 1][1]) for i in range(0, len(dialogue), 2)]

    def responses(self) -> list[str]:
        return [content for role, content in self.turns if role == "assistant"]

    def until_last_response(self) -> tuple[Conversation, str]:
        """The conversation before its last assistant turn, and that turn's content (the reference answer)."""
        last = max(i for i, (role, _) in enumerate(self.turns) if role == "assistant")
        return Conversation(self.turns[:last], self.context), self.turns[last][1]
