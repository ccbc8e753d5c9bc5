"""``data`` of ``task=custom/instruction`` (the user's instruction files) and of ``python -m lorasb.evaluate``
scoring such a file: where the rows are, their layout and fields, and the prompt template."""

from __future__ import annotations

import string
from dataclasses import dataclass

from lorasb.settings.checks import Check, integer, one_of
from lorasb.settings.data import FILE_KINDS, InstructionDataSettings
from lorasb.settings.fields import setting

LAYOUTS = ("auto", "alpaca", "chat")
TEMPLATE_NAMES = ("auto", "alpaca", "chat")
TEMPLATE_FIELDS = ("instruction", "input")  # what a template string may name


def template_problem(choice: object) -> str | None:
    """Why ``choice`` is no ``data.template`` (None when it is one)."""
    if not isinstance(choice, str):
        return "expected a string"
    if choice in TEMPLATE_NAMES:
        return None
    try:
        named = {field for _, field, _, _ in string.Formatter().parse(choice) if field is not None}
    except ValueError as err:
        return f"not a format string ({err}; write literal braces as {{{{ and }}}})"
    if "instruction" not in named:
        return "a template string must hold {instruction}, where the user's turn goes"
    unknown = sorted(named - set(TEMPLATE_FIELDS))
    if unknown:
        return f"a template string may name only {{instruction}} and {{input}}, not {', '.join('{' + n + '}' for n in unknown)}"
    return None


TEMPLATE_CHECK = Check(
    "auto, alpaca, chat or a template string holding {instruction} (and optionally {input})", lambda v: template_problem(v) is None
)


@dataclass(kw_only=True)
class InstructionLayout:
    """How the rows of an instruction file read and render."""

    layout: str = setting(
        "auto",
        help="alpaca: rows {instruction, input, output}; chat: rows {messages: [{role, content}]}; auto: chat where "
        "the rows have the messages field, else alpaca",
        check=one_of(LAYOUTS),
    )
    template: str = setting(
        "auto",
        help="alpaca (the reference's prompt), chat (the tokenizer's chat template), a template string with {instruction} "
        "(and {input}), or auto: chat where the tokenizer has a chat template, else alpaca",
        check=TEMPLATE_CHECK,
    )
    instruction_field: str = setting("instruction", help="alpaca layout: the field of the instruction")
    input_field: str = setting("input", help="alpaca layout: the field of the optional input (context); rows may lack it")
    output_field: str = setting("output", help="alpaca layout: the field of the response")
    messages_field: str = setting("messages", help="chat layout: the field of the list of {role, content} turns")


@dataclass
class InstructionFileSettings(InstructionLayout, InstructionDataSettings):
    """task=custom/instruction: the user's files (read by the datasets library) or a Hub dataset."""

    train_file: str | None = setting(
        None, help=f"{FILE_KINDS} (required)"
    )
    validation_file: str | None = setting(
        None, help="held-out rows of the same layout (a file, folder or Hub id); null: data.val_size rows of train_file held out"
    )
    train_split: str = setting("train", help="the split of a dataset folder or Hub id train_file")
    validation_split: str = setting("validation", help="the split of a dataset folder or Hub id validation_file")


@dataclass
class InstructionEvalDataSettings(InstructionLayout):
    """python -m lorasb.evaluate: the data root of the paper's sets and the layout of eval.file."""

    dir: str | None = setting(None, help="a local data root laid out as lorasb/data/README.md shows; null: the Hub")
    max_length: int = setting(512, help="eval.file: truncation length in tokens of the scored examples", check=integer(1))
