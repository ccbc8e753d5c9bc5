"""Evaluating a causal language model on the instruction evaluation sets (GSM8K, MATH, commonsense)."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from lorasb.eval.sets import eval_set
from lorasb.eval.generation import generate

log = logging.getLogger(__name__)


def evaluate_sets(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    names: Sequence[str],
    data_dir: str | Path | None,
    out_dir: str | Path,
    limit: int | None = None,
    batch_size: int = 8,
    max_new_tokens: int | None = None,
    progress: bool = True,
) -> dict[str, dict[str, float]]:
    """Accuracy of greedy generations on each set; writes ``eval.json`` and ``predictions/<set>.jsonl``.

    Args:
        names: evaluation sets (``gsm8k``, ``math``, ``boolq``, ``piqa``, ...).
        data_dir: the local data root, or ``None`` for the Hub.
        out_dir: where ``eval.json`` and the per-example predictions go.
        limit: the first N examples of each set (all with ``None``).
        max_new_tokens: overrides every set's own budget (GSM8K 256, MATH 512, commonsense 32).

    Returns:
        ``{set: {"accuracy", "correct", "count", "seconds", "seconds_per_example"}}``.
    """
    sets = [eval_set(name) for name in names]  # unknown names fail before any generation
    out_dir = Path(out_dir)
    (out_dir / "predictions").mkdir(parents=True, exist_ok=True)
    data_dir = Path(data_dir) if data_dir is not None else None
    results: dict[str, dict[str, float]] = {}
    for spec in sets:
        rows = spec.source.rows(data_dir, limit)
        prompts = [spec.prompt(row) for row in rows]
        start = time.perf_counter()
        generations = generate(
            model, tokenizer, prompts, max_new_tokens or spec.max_new_tokens, batch_size, desc=spec.name, progress=progress
        )
        seconds = time.perf_counter() - start
        records = [
            {
                "index": index,
                "prompt": prompt,
                "generation": text,
                "prediction": spec.extract(text),
                "gold": spec.gold(row),
                "correct": spec.correct(text, row),
            }
            for index, (row, prompt, text) in enumerate(zip(rows, prompts, generations))
        ]
        with open(out_dir / "predictions" / f"{spec.name}.jsonl", "w", encoding="utf-8") as file:
            file.writelines(json.dumps(record, ensure_ascii=False) + "\n" for record in records)
        correct = sum(record["correct"] for record in records)
        results[spec.name] = {
            "accuracy": correct / len(records) if records else 0.0,
            "correct": correct,
            "count": len(records),
            "seconds": seconds,
            "seconds_per_example": seconds / len(records) if records else 0.0,
        }
        if progress:
            log.info("%s: accuracy %.4f (%d/%d)", spec.name, results[spec.name]["accuracy"], correct, len(records))
    (out_dir / "eval.json").write_text(json.dumps(results, indent=2) + "\n")
    return results


def resolve_device(name: str) -> torch.device:
    """``auto`` is CUDA when there is a GPU, else the CPU; any other name is a torch device."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def evaluate_model(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    options: Mapping,
    data_dir: str | Path | None,
    out_dir: str | Path,
    device: str = "auto",
) -> dict[str, dict[str, float]]:
    """:func:`evaluate_sets` on ``device`` with the keys of an ``eval`` config block
    (``sets``, ``limit``, ``batch_size``, ``max_new_tokens``)."""
    model.to(resolve_device(device))
    return evaluate_sets(
        model,
        tokenizer,
        list(options["sets"]),
        data_dir,
        out_dir,
        limit=options.get("limit"),
        batch_size=options.get("batch_size", 8),
        max_new_tokens=options.get("max_new_tokens"),
    )
