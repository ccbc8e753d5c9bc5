"""The user's instruction files: JSON, JSONL, CSV or Parquet, a dataset folder or a Hub dataset
(:mod:`lorasb.data.tables`), checked row by row before anything trains on them.

Two layouts: Alpaca-style rows (an instruction, an optional input, an output; field names set
by ``data.instruction_field``, ``input_field``, ``output_field``) and chat rows (a list of
``{role, content}`` turns in ``data.messages_field``, roles ``system``, ``user``, ``assistant``).
Every problem is a :class:`DataFileError` naming the file, the row (counted from 1 in file order;
a CSV's header is no row) and what was expected; a file with any bad row is refused whole.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import datasets

from lorasb.data.conversation import ROLES, Conversation
from lorasb.data.files import DataFileError
from lorasb.data.instruction import ConversationDataModule
from lorasb.data.rows import Rows
from lorasb.data.tables import load_table
from lorasb.data.templates import make_template
from lorasb.settings.data import FILE_KINDS
from lorasb.settings.fields import default
from lorasb.settings.instruction_files import InstructionFileSettings, InstructionLayout

@dataclass(frozen=True)
class RowFormat:
    """The ``layout`` of an instruction file's rows and the names of their fields (``data.*_field``)."""

    layout: str = default(InstructionLayout, "layout")
    instruction_field: str = default(InstructionLayout, "instruction_field")
    input_field: str = default(InstructionLayout, "input_field")
    output_field: str = default(InstructionLayout, "output_field")
    messages_field: str = default(InstructionLayout, "messages_field")

    def expected(self, layout: str) -> str:
        if layout == "chat":
            return f"rows with {self.messages_field}: a list of {{role, content}} turns (roles {', '.join(ROLES)}; content a string)"
        return (
            f"rows with the string fields {self.instruction_field} and {self.output_field} (and optionally {self.input_field}); "
            "other names: data.instruction_field, data.input_field, data.output_field"
        )

    def layout_of(self, columns: list[str]) -> str:
        if self.layout != "auto":
            return self.layout
        return "chat" if self.messages_field in columns else "alpaca"

    def conversations(self, dataset: datasets.Dataset, name: str) -> Rows:
        """Every row of ``dataset`` as a conversation; the first bad row raises :class:`DataFileError`."""
        layout = self.layout_of(dataset.column_names)
        expected = self.expected(layout)
        needed = [self.messages_field] if layout == "chat" else [self.instruction_field, self.output_field]
        missing = [field for field in needed if field not in dataset.column_names]
        if missing:
            setting = {self.messages_field: "messages_field", self.instruction_field: "instruction_field", self.output_field: "output_field"}[missing[0]]
            raise DataFileError(
                name,
                f"no field {missing[0]!r} (fields: {', '.join(dataset.column_names) or 'none'}); name the right one with "
                f"data.{setting}=<field>" + ("" if self.layout != "auto" else f", or give a {self.messages_field} field for chat rows"),
                expected,
            )
        read = self._chat if layout == "chat" else self._alpaca
        conversations = []
        for number, row in enumerate(dataset, 1):
            try:
                conversations.append(read(row))
            except ValueError as err:
                raise DataFileError(name, str(err), expected, number, "row") from None
        if not conversations:
            raise DataFileError(name, "no rows", expected)
        return Rows(name, conversations)

    def _alpaca(self, row: dict[str, Any]) -> Conversation:
        instruction, output = _text(row, self.instruction_field), _text(row, self.output_field)
        if not instruction.strip():
            raise ValueError(f"{self.instruction_field} is empty")
        context = _text(row, self.input_field) if row.get(self.input_field) is not None else ""
        return Conversation.single(instruction, output, context)

    def _chat(self, row: dict[str, Any]) -> Conversation:
        turns = row[self.messages_field]
        if not isinstance(turns, list) or not turns:
            raise ValueError(f"{self.messages_field} is {_kind(turns)}, not a list of turns")
        read = []
        for number, turn in enumerate(turns, 1):
            if not isinstance(turn, dict):
                raise ValueError(f"turn {number} is {_kind(turn)}, not an object {{role, content}}")
            role, content = turn.get("role"), turn.get("content")
            if role not in ROLES:
                raise ValueError(f"turn {number} has the role {role!r}; the roles are {', '.join(ROLES)}")
            if not isinstance(content, str):
                raise ValueError(f"turn {number} ({role}) has content {_kind(content)}, not a string")
            if role == "system" and number > 1:
                raise ValueError(f"turn {number} is a system turn; only the first turn may be")
            read.append((role, content))
        dialogue = [role for role, _ in read if role != "system"]
        if "assistant" not in dialogue:
            raise ValueError("no assistant turn: nothing to learn; give each row at least one assistant turn")
        if dialogue[0] != "user":
            raise ValueError(f"the conversation opens with a {dialogue[0]} turn; it must open with a user turn (after an optional system turn)")
        return Conversation(tuple(read))


def read_instruction_rows(source: str | None, split: str, format: RowFormat, setting: str, limit: int | None = None) -> Rows:
    """The conversations of an instruction file or Hub dataset, every row checked."""
    if not source:
        raise DataFileError(setting, "not set", f"{FILE_KINDS}, e.g. data.train_file=train.jsonl")
    dataset, name = load_table(source, split)
    if limit is not None:
        dataset = dataset.select(range(min(limit, len(dataset))))
    return format.conversations(dataset, name)


def _text(row: dict[str, Any], field: str) -> str:
    """A field's text; numbers (a CSV column of numbers) read as their text."""
    value = row[field]
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    raise ValueError(f"{field} is {_kind(value)}, not a string")


def _kind(value: Any) -> str:
    return "null" if value is None else f"a {type(value).__name__}"


class InstructionFileDataModule(ConversationDataModule):
    """``task=custom/instruction``: the user's instruction file for a causal language model.

    Reads ``train_file`` (and ``validation_file``, else ``val_size`` rows of the training file
    held out) as :class:`RowFormat` says, renders each conversation with ``template``
    (:func:`lorasb.data.templates.make_template`) and trains on the assistant turns only.

    Args:
        task: the task's name (``instruction``), which names its rows in the logs.
        train_file, validation_file: a file, a dataset folder or a Hub dataset id (:mod:`lorasb.data.tables`).
        train_split, validation_split: the splits of folders and Hub datasets.
        template: ``auto``, ``alpaca``, ``chat`` or a template string.
        layout, instruction_field, input_field, output_field, messages_field: :class:`RowFormat`.
        **kwargs: :class:`lorasb.data.instruction.ConversationDataModule` arguments.
    """

    def __init__(
        self,
        task: str,
        train_file: str | None = default(InstructionFileSettings, "train_file"),
        validation_file: str | None = default(InstructionFileSettings, "validation_file"),
        train_split: str = default(InstructionFileSettings, "train_split"),
        validation_split: str = default(InstructionFileSettings, "validation_split"),
        template: str = default(InstructionLayout, "template"),
        layout: str = default(InstructionLayout, "layout"),
        instruction_field: str = default(InstructionLayout, "instruction_field"),
        input_field: str = default(InstructionLayout, "input_field"),
        output_field: str = default(InstructionLayout, "output_field"),
        messages_field: str = default(InstructionLayout, "messages_field"),
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self.task = task
        self.train_file, self.validation_file = train_file, validation_file
        self.train_split, self.validation_split = train_split, validation_split
        self.format = RowFormat(layout, instruction_field, input_field, output_field, messages_field)
        self.template = make_template(template, self.tokenizer)

    def read(self) -> tuple[Rows, Rows | None]:
        train = read_instruction_rows(self.train_file, self.train_split, self.format, "data.train_file", self.train_limit)
        if self.validation_file is None:
            return train, None
        return train, read_instruction_rows(self.validation_file, self.validation_split, self.format, "data.validation_file")
