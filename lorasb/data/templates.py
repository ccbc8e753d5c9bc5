"""How a conversation becomes text: which parts are prompt (no loss) and which are response (loss).

``data.template``:

- ``alpaca``: the reference's Alpaca prompt (:mod:`lorasb.data.prompts`) before each assistant
  turn, the response after it, then EOS; a system turn opens the text as its own paragraph.
- ``chat``: the tokenizer's own chat template. Each assistant turn's text is what the template
  adds when the conversation grows by that turn (rendered prefix by prefix); the loss covers it
  up to and including the template's end-of-turn token (SmolLM2: ``<|im_end|>``).
- a template string with ``{instruction}`` (the user's turn) and optionally ``{input}`` (an Alpaca
  row's input), e.g. ``"Question: {instruction}\\nAnswer: "``: rendered as the Alpaca prompt is.
- ``auto``: ``chat`` where the tokenizer has a chat template, else ``alpaca``.

Generation stops at the template's end of turn: EOS and the Alpaca markers for the text
templates, EOS and the end-of-turn token for ``chat``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property

from transformers import PreTrainedTokenizerBase

from lorasb.data.conversation import Conversation
from lorasb.data.prompts import STOP_STRINGS, alpaca_prompt
from lorasb.settings.instruction_files import TEMPLATE_NAMES, template_problem


@dataclass(frozen=True)
class Segment:
    """A piece of an example's text; ``trained``: the loss covers its tokens."""

    text: str
    trained: bool


@dataclass(frozen=True)
class TextTemplate:
    """A prompt before each assistant turn, the response after it and EOS (``alpaca``, a template string)."""

    name: str
    prompt_of: Callable[[str, str], str]  # (instruction, input) → the prompt up to where the response starts
    stop_strings: tuple[str, ...] = ()
    special_tokens_first: bool = True  # the tokenizer adds its special tokens (BOS) before the first segment
    appends_eos: bool = True

    def segments(self, conversation: Conversation) -> list[Segment]:
        pieces = [Segment(f"{conversation.system.strip()}\n\n", False)] if conversation.system.strip() else []
        for index, (user, assistant) in enumerate(conversation.exchanges()):
            pieces += [Segment(self.prompt_of(user, conversation.context if index == 0 else ""), False), Segment(assistant, True)]
        return _merged(pieces)

    def prompt(self, conversation: Conversation, eos: str) -> str:
        """The text a model continues to answer ``conversation``'s last user turn (earlier answers followed by ``eos``)."""
        closed = Conversation(conversation.turns + (("assistant", ""),), conversation.context)
        segments = self.segments(closed)
        return "".join(s.text + (eos if s.trained else "") for s in segments[:-1])

    def stop_ids(self, tokenizer: PreTrainedTokenizerBase) -> list[int]:
        return []


@dataclass(frozen=True)
class ChatTemplate:
    """The tokenizer's chat template, read prefix by prefix (see the module's docstring)."""

    tokenizer: PreTrainedTokenizerBase
    name: str = "chat"
    stop_strings: tuple[str, ...] = ()
    special_tokens_first: bool = False  # the template writes BOS itself where the model has one
    appends_eos: bool = False

    def render(self, messages: list[dict[str, str]], generation_prompt: bool) -> str:
        return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=generation_prompt)

    def segments(self, conversation: Conversation) -> list[Segment]:
        messages, pieces, done = conversation.messages(), [], ""
        end = self.end_of_turn
        for index, message in enumerate(messages):
            if message["role"] != "assistant":
                continue
            before, after = self.render(messages[:index], True), self.render(messages[: index + 1], False)
            if not (before.startswith(done) and after.startswith(before)):
                raise ValueError(
                    "the tokenizer's chat template renders this conversation differently prefix by prefix, so its "
                    "assistant turns cannot be told apart; use data.template=alpaca or a template string"
                )
            added, content = after[len(before) :], message["content"].strip()
            stop = added.find(end, max(added.find(content), 0) + len(content)) if end else -1
            cut = stop + len(end) if stop >= 0 else len(added)
            pieces += [Segment(before[len(done) :], False), Segment(added[:cut], True), Segment(added[cut:], False)]
            done = after
        return _merged(pieces[:-1])  # what follows the last answer carries no loss: left out

    def prompt(self, conversation: Conversation, eos: str) -> str:
        return self.render(conversation.messages(), True)

    @cached_property
    def end_of_turn(self) -> str:
        """The text the template closes an assistant turn with, up to its first special token
        (``<|im_end|>``, ``<|eot_id|>``, ``<end_of_turn>``); the whole closing text where it has none."""
        marker = "\u2063answer\u2063"
        turns = [{"role": "user", "content": "question"}, {"role": "assistant", "content": marker}]
        closing = self.render(turns, False).split(marker, 1)[1]
        ids = self.tokenizer(closing, add_special_tokens=False)["input_ids"]
        special = set(self.tokenizer.all_special_ids) | set(getattr(self.tokenizer, "added_tokens_decoder", {}))
        for position, token in enumerate(ids):
            if token in special:
                return self.tokenizer.decode(ids[: position + 1])
        return closing.strip()

    def stop_ids(self, tokenizer: PreTrainedTokenizerBase) -> list[int]:
        """The end-of-turn token, where it is one token."""
        ids = tokenizer(self.end_of_turn, add_special_tokens=False)["input_ids"]
        return ids if len(ids) == 1 else []


Template = TextTemplate | ChatTemplate

ALPACA = TextTemplate("alpaca", alpaca_prompt, STOP_STRINGS)


def make_template(choice: str, tokenizer: PreTrainedTokenizerBase) -> Template:
    """The template ``data.template`` names (``auto``: ``chat`` where the tokenizer has a chat template, else ``alpaca``)."""
    problem = template_problem(choice)
    if problem:
        raise ValueError(f"data.template={choice!r}: {problem}; or choose {', '.join(TEMPLATE_NAMES)}")
    if choice == "auto":
        choice = "chat" if tokenizer.chat_template else "alpaca"
    if choice == "alpaca":
        return ALPACA
    if choice == "chat":
        if not tokenizer.chat_template:
            raise ValueError(f"data.template=chat: the tokenizer {tokenizer.name_or_path} has no chat template; use data.template=alpaca")
        return ChatTemplate(tokenizer)
    return TextTemplate("string", lambda instruction, input: choice.format(instruction=instruction, input=input))


def _merged(pieces: list[Segment]) -> list[Segment]:
    """``pieces`` without empty untrained ones, neighbours of the same kind joined."""
    merged: list[Segment] = []
    for piece in pieces:
        if not piece.text and not piece.trained:
            continue
        if merged and merged[-1].trained == piece.trained and not piece.trained:
            merged[-1] = Segment(merged[-1].text + piece.text, False)
        else:
            merged.append(piece)
    return merged
