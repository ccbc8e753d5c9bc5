"""Instruction tuning data: MetaMathQA and Commonsense170K as Alpaca prompts, loss on the response.

Each example is ``prompt + response + EOS``; the labels are ``-100`` (ignored) on the prompt
and on padding, so only the response tokens and the EOS carry loss.
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

from lorasb.data.prompts import alpaca_prompt

from lorasb.data.base import TextDataModule
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

    def pair(self, row: dict[str, Any]) -> tuple[str, str]:
        """(prompt, response) of one row."""
        context = (row.get(self.input) or "") if self.input else ""
        return alpaca_prompt(row[self.instruction], context), row[self.response]


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
EMPTY_RESPONSE = "empty response"      # the response has no token: only EOS is learnt
RESPONSE_CUT = "response cut"          # too long even with the prompt shortened: the response lost its end (answer, EOS)
PROMPT_SHORTENED = "prompt shortened"  # the prompt gave up its start; the response is whole
WHOLE = "whole"


def encode_with_fit(
    tokenizer: PreTrainedTokenizerBase, pairs: list[tuple[str, str]], max_length: int
) -> list[tuple[dict[str, list[int]], str]]:
    """Each (prompt, response) pair's token ids, attention mask and labels (``-100`` on the
    prompt), with the rule its fitting to ``max_length`` applied (``WHOLE``, ``PROMPT_SHORTENED``,
    ``RESPONSE_CUT`` or ``EMPTY_RESPONSE``)."""
    if not pairs:
        return []
    prompts, responses = zip(*pairs)
    prompt_ids = tokenizer(list(prompts), add_special_tokens=True)["input_ids"]
    response_ids = tokenizer(list(responses), add_special_tokens=False)["input_ids"]
    bos = tokenizer.bos_token_id
    encoded = []
    for prompt, response in zip(prompt_ids, response_ids):
        keep_first = bos is not None and prompt[:1] == [bos]
        kept_prompt, kept_response = fit_to_length(prompt, response + [tokenizer.eos_token_id], max_length, keep_first)
        ids = kept_prompt + kept_response
        example = {"input_ids": ids, "attention_mask": [1] * len(ids), "labels": [IGNORE_INDEX] * len(kept_prompt) + kept_response}
        if not response:
            rule = EMPTY_RESPONSE
        elif len(kept_response) <= len(response):
            rule = RESPONSE_CUT
        else:
            rule = PROMPT_SHORTENED if len(kept_prompt) < len(prompt) else WHOLE
        encoded.append((example, rule))
    return encoded


def encode_examples(
    tokenizer: PreTrainedTokenizerBase, pairs: list[tuple[str, str]], max_length: int
) -> list[dict[str, list[int]]]:
    """Token ids, attention mask and labels (``-100`` on the prompt) of (prompt, response) pairs."""
    return [example for example, _ in encode_with_fit(tokenizer, pairs, max_length)]


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


class InstructionDataModule(TextDataModule):
    """MetaMathQA or Commonsense170K for a causal language model.

    With ``dir`` set, reads ``<dir>/metamathqa/train.json`` or ``<dir>/commonsense/train.json``;
    otherwise downloads ``meta-math/MetaMathQA`` from the Hub or the LLM-Adapters
    ``commonsense_170k.json``. The first ``train_limit`` rows are used (the paper: MetaMathQA's
    first 50k); ``val_size`` of them, drawn with ``seed``, are held out to measure the loss.

    Args:
        task: ``metamath`` or ``commonsense``.
        val_size: rows held out for validation (0: no validation).
        **kwargs: ``TextDataModule`` arguments (``val_limit`` caps the held-out rows further).
    """

    def __init__(self, task: str, val_size: int = default(InstructionDataSettings, "val_size"), **kwargs: Any):
        super().__init__(**kwargs)
        self.spec = instruction_set(task)
        self.val_size = val_size
        self.val_dataset: datasets.Dataset | None = None
        self.fit_counts: dict[str, Counter] = {}

    def prepare_data(self) -> None:
        """Download the training set (once, on one process) when no ``dir`` is given."""
        if self.dir is None:
            self.spec.source.rows(None)

    def setup(self, stage: str | None = None) -> None:
        if self.train_dataset is not None:
            return
        rows = self.spec.source.rows(self.dir, self.train_limit)
        if len(rows) <= self.val_size:
            raise ValueError(
                f"{self.spec.source.name} has {len(rows)} rows (train_limit={self.train_limit}), not more than "
                f"val_size={self.val_size}: raise data.train_limit or lower data.val_size"
            )
        order = torch.randperm(len(rows), generator=torch.Generator().manual_seed(self.seed)).tolist()
        held_out = sorted(order[: self.val_size][: self.val_limit])
        train = sorted(set(range(len(rows))) - set(order[: self.val_size]))
        self.train_dataset = self._encode([rows[i] for i in train], "training")
        self.val_dataset = self._encode([rows[i] for i in held_out], "validation")

    def _encode(self, rows: list[dict[str, Any]], split: str) -> datasets.Dataset:
        """Tokenised examples of ``rows``; how many had to be shortened is counted in ``fit_counts[split]`` and logged."""
        prompts, responses = zip(*(self.spec.pair(row) for row in rows)) if rows else ((), ())

        def encode(batch: dict[str, list[str]]) -> dict[str, list]:
            encoded = encode_with_fit(self.tokenizer, list(zip(batch["prompt"], batch["response"])), self.max_length)
            columns = {key: [example[key] for example, _ in encoded] for key in ("input_ids", "attention_mask", "labels")}
            return columns | {"fit": [rule for _, rule in encoded]}

        dataset = self.tokenized({"prompt": prompts, "response": responses}, encode, encoding="instruction-v2")
        where = f"{self.spec.source.name} {split} rows"
        if not len(dataset):  # no rows: ``map`` made no columns at all
            return dataset
        self.fit_counts[split] = report_fit(where, dataset["fit"], self.max_length)
        return dataset.remove_columns("fit")

    def val_dataloader(self) -> DataLoader | list:
        if self.val_dataset is None:
            self.setup("validate")
        return self._loader(self.val_dataset, self.eval_batch_size) if len(self.val_dataset) else []

    def build_collator(self) -> DataCollatorForSeq2Seq:
        """Right-pads to the longest example: pad token ids, attention 0, labels ``-100``."""
        self.tokenizer.padding_side = "right"
        return DataCollatorForSeq2Seq(self.tokenizer, padding=True, label_pad_token_id=IGNORE_INDEX, return_tensors="pt")
