"""Instruction tuning data: MetaMathQA and Commonsense170K as Alpaca prompts, loss on the response.

Each example is a conversation rendered by a template (:mod:`lorasb.data.templates`) into
segments of prompt and response; the paper's sets are one exchange, ``prompt + response + EOS``.
The labels are ``-100`` (ignored) on the prompt and on padding, so only the response tokens
(and the EOS or end-of-turn token that closes each) carry loss.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from typing import Any

import datasets
import torch
from torch.utils.data import DataLoader
from transformers import DataCollatorForSeq2Seq, PreTrainedTokenizerBase

from lorasb.data.base import TextDataModule
from lorasb.data.conversation import Conversation
from lorasb.data.rows import Rows
from lorasb.data.templates import ALPACA, Segment, Template
from lorasb.data.sources import JsonSource
from lorasb.settings.data import InstructionDataSettings
from lorasb.settings.fields import default

IGNORE_INDEX = -100
log = logging.getLogger(__name__)
LLM_ADAPTERS = "https://raw.githubusercontent.com/AGI-Edgerunners/LLM-Adapters/main"


@dataclass(frozen=True)
class InstructionSet:
    """A training set and the names of its instruction, optional input and response fields."""

    source: JsonSource
    instruction: str
    response: str
    input: str | None = None

    def conversation(self, row: dict[str, Any]) -> Conversation:
        """One row as a user turn and the assistant's response."""
        context = (row.get(self.input) or "") if self.input else ""
        return Conversation.single(row[self.instruction], row[self.response], context)


INSTRUCTION_SETS: dict[str, InstructionSet] = {
    "metamath": InstructionSet(
        JsonSource("MetaMathQA", "metamathqa/train.json", "meta-math/MetaMathQA", fields=("query", "response")), "query", "response"
    ),
    "commonsense": InstructionSet(
        JsonSource(
            "Commonsense170K",
            "commonsense/train.json",
            f"{LLM_ADAPTERS}/ft-training_set/commonsense_170k.json",
            fields=("instruction", "output"),
        ),
        "instruction",
        "output",
        input="input",
    ),
}


def instruction_set(name: str) -> InstructionSet:
    if name not in INSTRUCTION_SETS:
        raise ValueError(f"unknown instruction task {name!r}; choose one of: {', '.join(INSTRUCTION_SETS)}")
    return INSTRUCTION_SETS[name]


def fit_to_length(prompt: list[int], response: list[int], max_length: int, keep_first: bool) -> tuple[list[int], list[int]]:
    """Cut ``prompt + response`` to ``max_length`` tokens, keeping the response where possible.

    The response is kept whole when the prompt can give up the room; the prompt keeps at
    least half of ``max_length`` (its last tokens: the end of the instruction and the
    ``### Response:`` marker, plus its first token when ``keep_first``, e.g. BOS), and a
    response that still does not fit loses its end (EOS included).
    """
    if len(prompt) + len(response) <= max_length:
        return prompt, response
    head = prompt[:1] if keep_first else []
    prompt_room = max(max_length - len(response), min(len(prompt), max_length // 2))
    tail_room = prompt_room - len(head)
    kept_prompt = head + (prompt[len(prompt) - tail_room :] if tail_room > 0 else [])
    return kept_prompt, response[: max_length - len(kept_prompt)]


# How an example met data.max_length, worst first: the rules a data module counts and reports.
NO_RESPONSE_TOKEN = "no response token"  # nothing of any response is left within max_length: refused
EMPTY_RESPONSE = "empty response"      # the response has no token: only EOS is learnt
RESPONSE_CUT = "response cut"          # too long even with the prompt shortened: the response lost its end (answer, EOS)
PROMPT_SHORTENED = "prompt shortened"  # the prompt gave up its start; the response is whole
WHOLE = "whole"


def encode_segments(
    tokenizer: PreTrainedTokenizerBase,
    examples: list[list[Segment]],
    max_length: int,
    special_tokens_first: bool = True,
    appends_eos: bool = True,
) -> list[tuple[dict[str, list[int]], str]]:
    """Each example's token ids, attention mask and labels (``-100`` on untrained segments), fitted
    to ``max_length``, with the rule its fitting applied (``WHOLE`` ... ``NO_RESPONSE_TOKEN``).

    Segments are tokenised apart (the first with the tokenizer's special tokens where
    ``special_tokens_first``; EOS after each trained one where ``appends_eos``). The prompt is
    everything before the first trained segment; the rest (responses and any later turns) is
    fitted as :func:`fit_to_length` fits a response.
    """
    if not examples:
        return []
    firsts = tokenizer([segments[0].text for segments in examples], add_special_tokens=special_tokens_first)["input_ids"]
    later = [segment.text for segments in examples for segment in segments[1:]]
    later_ids = iter(tokenizer(later, add_special_tokens=False)["input_ids"] if later else [])
    bos, eos = tokenizer.bos_token_id, [tokenizer.eos_token_id] if appends_eos else []
    encoded = []
    for segments, first in zip(examples, firsts):
        tokens: list[tuple[int, bool]] = []
        for segment, ids in zip(segments, [first, *(next(later_ids) for _ in segments[1:])]):
            tokens += [(token, segment.trained) for token in ids + (eos if segment.trained else [])]
        start = next((i for i, (_, trained) in enumerate(tokens) if trained), len(tokens))
        prompt, rest = [token for token, _ in tokens[:start]], tokens[start:]
        kept_prompt, kept = fit_to_length(prompt, list(range(len(rest))), max_length, bos is not None and prompt[:1] == [bos])
        ids = kept_prompt + [rest[i][0] for i in kept]
        labels = [IGNORE_INDEX] * len(kept_prompt) + [token if trained else IGNORE_INDEX for token, trained in (rest[i] for i in kept)]
        if all(label == IGNORE_INDEX for label in labels):
            rule = NO_RESPONSE_TOKEN
        elif not any(segment.text for segment in segments if segment.trained):
            rule = EMPTY_RESPONSE
        elif len(kept) < len(rest):
            rule = RESPONSE_CUT
        else:
            rule = PROMPT_SHORTENED if len(kept_prompt) < len(prompt) else WHOLE
        encoded.append(({"input_ids": ids, "attention_mask": [1] * len(ids), "labels": labels}, rule))
    return encoded


def encode_conversations(
    tokenizer: PreTrainedTokenizerBase, template: Template, conversations: list[Conversation], max_length: int
) -> list[tuple[dict[str, list[int]], str]]:
    """:func:`encode_segments` of ``conversations`` as ``template`` renders them."""
    return encode_segments(
        tokenizer, [template.segments(c) for c in conversations], max_length, template.special_tokens_first, template.appends_eos
    )


def encode_examples(
    tokenizer: PreTrainedTokenizerBase, pairs: list[tuple[str, str]], max_length: int
) -> list[dict[str, list[int]]]:
    """Token ids, attention mask and labels (``-100`` on the prompt) of (prompt, response + EOS) pairs."""
    examples = [[Segment(prompt, False), Segment(response, True)] for prompt, response in pairs]
    return [example for example, _ in encode_segments(tokenizer, examples, max_length)]


def report_fit(where: str, rules: list[str], max_length: int) -> Counter:
    """Count the fitting rules of a split's examples and log those that changed an example."""
    counts, total = Counter(rules), len(rules)
    if counts[RESPONSE_CUT]:
        log.warning(
            f"{where}: {counts[RESPONSE_CUT]} of {total} examples are longer than data.max_length={max_length} even with "
            "their prompt shortened, so their response lost its end (the answer and EOS); raise data.max_length to keep it"
        )
    if counts[EMPTY_RESPONSE]:
        log.warning(f"{where}: {counts[EMPTY_RESPONSE]} of {total} examples have an empty response (only EOS is learnt)")
    if counts[PROMPT_SHORTENED]:
        log.info(
            f"{where}: {counts[PROMPT_SHORTENED]} of {total} examples gave up the start of their prompt to keep "
            f"their response whole within data.max_length={max_length}"
        )
    return counts


class NoResponseTokenError(ValueError):
    """Examples with no response token left within ``data.max_length``: they would train on nothing."""


def no_response_refusal(rows: Rows, rules: list[str], max_length: int) -> str | None:
    """A line naming the rows (of ``rows``, fitted by ``rules``) left without a response token, or None."""
    empty = [number for number, rule in zip(rows.numbers, rules) if rule == NO_RESPONSE_TOKEN]
    if not empty:
        return None
    shown = ", ".join(map(str, empty[:10])) + (", ..." if len(empty) > 10 else "")
    return (
        f"{rows.name}: {len(empty)} of {len(rules)} rows keep no response token within data.max_length={max_length} "
        f"(rows {shown}), so they would train on nothing; raise data.max_length or shorten their prompts"
    )


def _rules(dataset: datasets.Dataset) -> list[str]:
    return dataset["fit"] if len(dataset) else []


class ConversationDataModule(TextDataModule):
    """Conversations for a causal language model, rendered by a template, loss on the responses.

    Subclasses say where the conversations come from (:meth:`read`) and how they are rendered
    (``template``). Without validation rows of their own, ``val_size`` training rows, drawn with
    ``seed``, are held out to measure the loss.

    Args:
        val_size: rows held out for validation (0: no validation).
        **kwargs: ``TextDataModule`` arguments (``val_limit`` caps the validation rows further).
    """

    template: Template = ALPACA

    def __init__(self, val_size: int = default(InstructionDataSettings, "val_size"), **kwargs: Any):
        super().__init__(**kwargs)
        self.val_size = val_size
        self.val_dataset: datasets.Dataset | None = None
        self.fit_counts: dict[str, Counter] = {}

    def read(self) -> tuple[Rows, Rows | None]:
        """The training rows and the validation rows (None: hold ``val_size`` training rows out)."""
        raise NotImplementedError

    def setup(self, stage: str | None = None) -> None:
        if self.train_dataset is not None:
            return
        rows, validation = self.read()
        if validation is None:
            if len(rows.conversations) <= self.val_size:
                raise ValueError(
                    f"{rows.name} has {len(rows.conversations)} rows (train_limit={self.train_limit}), not more than "
                    f"val_size={self.val_size}: raise data.train_limit or lower data.val_size"
                )
            order = torch.randperm(len(rows.conversations), generator=torch.Generator().manual_seed(self.seed)).tolist()
            held_out = sorted(order[: self.val_size][: self.val_limit])
            rows, validation = rows.subset(sorted(set(range(len(rows.conversations))) - set(order[: self.val_size]))), rows.subset(held_out)
        else:
            validation = validation.subset(range(min(len(validation.conversations), self.val_limit or len(validation.conversations))))
        encoded = {split: self._encode(part, split) for split, part in (("training", rows), ("validation", validation))}
        parts = (("training", rows), ("validation", validation))
        refused = [line for split, part in parts if (line := no_response_refusal(part, _rules(encoded[split]), self.max_length))]
        if refused:
            raise NoResponseTokenError("\n".join(refused))
        self.train_dataset, self.val_dataset = (encoded[split].remove_columns("fit") if len(encoded[split]) else encoded[split] for split in encoded)

    def _encode(self, rows: Rows, split: str) -> datasets.Dataset:
        """Tokenised examples of ``rows``; how many had to be shortened is counted in ``fit_counts[split]`` and logged."""
        template = self.template
        texts = [[{"text": segment.text, "trained": segment.trained} for segment in template.segments(c)] for c in rows.conversations]

        def encode(batch: dict[str, list]) -> dict[str, list]:
            examples = [[Segment(**segment) for segment in segments] for segments in batch["segments"]]
            encoded = encode_segments(self.tokenizer, examples, self.max_length, template.special_tokens_first, template.appends_eos)
            columns = {key: [example[key] for example, _ in encoded] for key in ("input_ids", "attention_mask", "labels")}
            return columns | {"fit": [rule for _, rule in encoded]}

        dataset = self.tokenized({"segments": texts}, encode, encoding=f"instruction-v3-{template.special_tokens_first}-{template.appends_eos}")
        if len(dataset):  # no rows: ``map`` made no columns at all
            self.fit_counts[split] = report_fit(f"{rows.name} {split} rows", dataset["fit"], self.max_length)
        return dataset

    def val_dataloader(self) -> DataLoader | list:
        if self.val_dataset is None:
            self.setup("validate")
        return self._loader(self.val_dataset, self.eval_batch_size) if len(self.val_dataset) else []

    def build_collator(self) -> DataCollatorForSeq2Seq:
        """Right-pads to the longest example: pad token ids, attention 0, labels ``-100``."""
        self.tokenizer.padding_side = "right"
        return DataCollatorForSeq2Seq(self.tokenizer, padding=True, label_pad_token_id=IGNORE_INDEX, return_tensors="pt")


class InstructionDataModule(ConversationDataModule):
    """MetaMathQA or Commonsense170K for a causal language model, as Alpaca prompts.

    With ``dir`` set, reads ``<dir>/metamathqa/train.json`` or ``<dir>/commonsense/train.json``;
    otherwise downloads ``meta-math/MetaMathQA`` from the Hub or the LLM-Adapters
    ``commonsense_170k.json``. The first ``train_limit`` rows are used (the paper: MetaMathQA's
    first 50k); ``val_size`` of them, drawn with ``seed``, are held out to measure the loss.

    Args:
        task: ``metamath`` or ``commonsense``.
        **kwargs: :class:`ConversationDataModule` arguments.
    """

    def __init__(self, task: str, **kwargs: Any):
        super().__init__(**kwargs)
        self.spec = instruction_set(task)

    def prepare_data(self) -> None:
        """Download the training set (once, on one process) when no ``dir`` is given."""
        if self.dir is None:
            self.spec.source.rows(None)

    def read(self) -> tuple[Rows, None]:
        rows = self.spec.source.rows(self.dir, self.train_limit)
        return Rows(self.spec.source.name, [self.spec.conversation(row) for row in rows]), None
