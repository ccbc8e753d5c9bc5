"""Scoring a held-out instruction file: the loss and perplexity of its responses, and, when asked,
how often a generated answer equals or contains the reference.

The rows are read and rendered as for training (:mod:`lorasb.data.instruction_files`,
:mod:`lorasb.data.templates`). The loss is the mean over every response token of the file
(every assistant turn); perplexity is its exponential. For ``match``, the model answers each
row's last user turn (greedily, stopping at the template's end of turn) and its answer is
compared with that row's last assistant turn.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import DataCollatorForSeq2Seq, PreTrainedModel, PreTrainedTokenizerBase

from lorasb.data.instruction import IGNORE_INDEX, encode_conversations, no_response_refusal
from lorasb.data.instruction_files import RowFormat, read_instruction_rows
from lorasb.data.prompts import first_turn
from lorasb.data.templates import make_template
from lorasb.eval.generation import generate

DEFAULT_MAX_NEW_TOKENS = 256


@dataclass(frozen=True)
class InstructionFile:
    """``eval.file`` and how to read and render it (``data.*`` of the run or of conf/evaluate.yaml)."""

    source: str
    split: str
    format: RowFormat
    template: str
    max_length: int
    match: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        """The results' key and predictions file: the file's name without its suffixes, or the Hub id's last part."""
        return Path(self.source).name.split(".")[0] or "file"


def normalized(text: str) -> str:
    """Spaces collapsed, ends trimmed, lower case: what ``exact`` and ``contains`` compare."""
    return " ".join(text.split()).lower()


@torch.no_grad()
def score_file(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    spec: InstructionFile,
    limit: int | None,
    batch_size: int,
    max_new_tokens: int | None,
    progress: bool = True,
) -> tuple[dict[str, float], list[dict]]:
    """(results, per-example records) of ``spec``'s first ``limit`` rows.

    Results: ``loss``, ``perplexity``, ``tokens`` (response tokens scored), ``count``, ``seconds``,
    and per ``match`` its rate (``exact_match``, ``contains``).
    """
    start = time.perf_counter()
    rows = read_instruction_rows(spec.source, spec.split, spec.format, "eval.file", limit)
    template = make_template(spec.template, tokenizer)
    encoded = encode_conversations(tokenizer, template, rows.conversations, spec.max_length)
    refusal = no_response_refusal(rows, [rule for _, rule in encoded], spec.max_length)
    if refusal:
        raise ValueError(refusal)
    losses, counts = _response_losses(model, tokenizer, [example for example, _ in encoded], batch_size)
    records = [
        {"index": i, "row": number, "loss": loss / count if count else None, "tokens": count}
        for i, (number, loss, count) in enumerate(zip(rows.numbers, losses, counts))
    ]
    tokens = sum(counts)
    loss = sum(losses) / tokens
    results = {"loss": loss, "perplexity": math.exp(loss), "tokens": tokens, "count": len(records)}
    if spec.match:
        asked = [conversation.until_last_response() for conversation in rows.conversations]
        prompts = [template.prompt(before, tokenizer.eos_token) for before, _ in asked]
        answers = generate(
            model, tokenizer, prompts, max_new_tokens or DEFAULT_MAX_NEW_TOKENS, batch_size, template.stop_strings,
            desc=spec.name, progress=progress, stop_ids=template.stop_ids(tokenizer), add_special_tokens=template.special_tokens_first,
        )
        for record, prompt, (_, reference), answer in zip(records, prompts, asked, answers):
            answer = first_turn(answer, template.stop_strings).strip()
            record |= {"prompt": prompt, "generation": answer, "reference": reference}
            if "exact" in spec.match:
                record["exact"] = normalized(answer) == normalized(reference)
            if "contains" in spec.match:
                record["contains"] = normalized(reference) in normalized(answer)
        for key, name in (("exact", "exact_match"), ("contains", "contains")):
            if key in spec.match:
                results[name] = sum(record[key] for record in records) / len(records)
    results["seconds"] = time.perf_counter() - start
    return results, records


def _response_losses(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, examples: Sequence[dict], batch_size: int
) -> tuple[list[float], list[int]]:
    """Each example's summed next-token loss over its response tokens, and their number."""
    tokenizer.padding_side = "right"
    collate = DataCollatorForSeq2Seq(tokenizer, padding=True, label_pad_token_id=IGNORE_INDEX, return_tensors="pt")
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    losses: list[float] = []
    counts: list[int] = []
    try:
        for begin in range(0, len(examples), batch_size):
            batch = collate(list(examples[begin : begin + batch_size])).to(device)
            labels = batch.pop("labels")
            logits = model(**batch).logits[:, :-1].float()
            targets = labels[:, 1:]
            per_token = torch.nn.functional.cross_entropy(logits.transpose(1, 2), targets, ignore_index=IGNORE_INDEX, reduction="none")
            losses += per_token.sum(dim=1).tolist()
            counts += (targets != IGNORE_INDEX).sum(dim=1).tolist()
    finally:
        model.train(was_training)
    return losses, counts
