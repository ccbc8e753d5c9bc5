"""Evaluating a causal language model on the instruction evaluation sets (GSM8K, MATH, commonsense)."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping, Sequence
from importlib.metadata import version
from pathlib import Path

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from lorasb.data.prompts import STOP_STRINGS
from lorasb.data.instruction_files import RowFormat
from lorasb.eval.sets import eval_set
from lorasb.eval.generation import generate
from lorasb.eval.instruction_file import InstructionFile, score_file
from lorasb.settings.evaluation import GRADING_MODES, EvalSettings
from lorasb.settings.fields import default

log = logging.getLogger(__name__)


def evaluate_sets(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    names: Sequence[str],
    data_dir: str | Path | None,
    out_dir: str | Path,
    limit: int | None = default(EvalSettings, "limit"),
    batch_size: int = default(EvalSettings, "batch_size"),
    max_new_tokens: int | None = default(EvalSettings, "max_new_tokens"),
    grading: str = default(EvalSettings, "grading"),
    scored: Mapping[str, str | None] | None = None,
    progress: bool = True,
    file: InstructionFile | None = None,
) -> dict[str, dict[str, float]]:
    """Accuracy of greedy generations on each set, and the scores of an instruction ``file``
    (:func:`lorasb.eval.instruction_file.score_file`); writes ``eval.json`` and ``predictions/<name>.jsonl``.

    Generation stops at the prompt template's markers (:data:`STOP_STRINGS`).

    Args:
        names: evaluation sets (``gsm8k``, ``math``, ``boolq``, ``piqa``, ...).
        data_dir: the local data root, or ``None`` for the Hub.
        out_dir: where ``eval.json`` and the per-example predictions go.
        limit: the first N examples of each set (all with ``None``).
        max_new_tokens: overrides every set's own budget (GSM8K 256, MATH 512, commonsense 32).
        grading: one of :data:`GRADING_MODES`.
        scored: what model was scored (base model, adapter or checkpoint), for ``eval.json``.
        file: a held-out instruction file, scored under its name (``held_out.jsonl``: ``held_out``).

    Returns:
        ``{set: {"accuracy", "correct", "count", "seconds", "seconds_per_example"}}``; the
        keys are ``<set>_lenient`` under lenient grading. ``eval.json`` holds them under
        ``results`` beside ``setup``: the scored model, sets, limit, token budgets, stop
        strings, grading mode and lorasb version.
    """
    if grading not in GRADING_MODES:
        raise ValueError(f"unknown grading mode {grading!r}; choose one of {', '.join(GRADING_MODES)}")
    lenient = grading == "lenient"
    sets = [eval_set(name) for name in names]  # unknown names fail before any generation
    if not sets and file is None:
        raise ValueError("nothing to evaluate: name evaluation sets (eval.sets=[gsm8k]) or an instruction file (eval.file=<file>)")
    out_dir = Path(out_dir)
    (out_dir / "predictions").mkdir(parents=True, exist_ok=True)
    data_dir = Path(data_dir) if data_dir is not None else None
    results: dict[str, dict[str, float]] = {}
    budgets = {spec.name: max_new_tokens or spec.max_new_tokens for spec in sets}
    for spec in sets:
        key = f"{spec.name}_lenient" if lenient else spec.name
        rows = spec.source.rows(data_dir, limit)
        prompts = [spec.prompt(row) for row in rows]
        start = time.perf_counter()
        generations = generate(
            model, tokenizer, prompts, budgets[spec.name], batch_size, STOP_STRINGS, desc=spec.name, progress=progress
        )
        seconds = time.perf_counter() - start
        records = [
            {
                "index": index,
                "prompt": prompt,
                "generation": text,
                "prediction": spec.extract(text, lenient),
                "gold": spec.gold(row),
                "correct": spec.correct(text, row, lenient),
            }
            for index, (row, prompt, text) in enumerate(zip(rows, prompts, generations))
        ]
        _write_records(out_dir / "predictions" / f"{key}.jsonl", records)
        correct = sum(record["correct"] for record in records)
        results[key] = {
            "accuracy": correct / len(records) if records else 0.0,
            "correct": correct,
            "count": len(records),
            "seconds": seconds,
            "seconds_per_example": seconds / len(records) if records else 0.0,
        }
        if progress:
            log.info("%s: accuracy %.4f (%d/%d)", key, results[key]["accuracy"], correct, len(records))
    if file is not None:
        results[file.name], records = score_file(model, tokenizer, file, limit, batch_size, max_new_tokens, progress)
        _write_records(out_dir / "predictions" / f"{file.name}.jsonl", records)
        if progress:
            log.info("%s: %s", file.name, ", ".join(f"{key} {value:.4f}" for key, value in results[file.name].items()))
    setup = {
        "model": dict(scored or {}),
        "sets": [spec.name for spec in sets],
        "limit": limit,
        "max_new_tokens": budgets,
        "stop_strings": list(STOP_STRINGS),
        "grading": grading,
        "file": None if file is None else {"source": file.source, "template": file.template, "match": list(file.match)},
        "lorasb_version": version("lorasb"),
    }
    (out_dir / "eval.json").write_text(json.dumps({"setup": setup, "results": results}, indent=2) + "\n")
    return results


def _write_records(path: Path, records: list[dict]) -> None:
    with open(path, "w", encoding="utf-8") as out:
        out.writelines(json.dumps(record, ensure_ascii=False) + "\n" for record in records)


def instruction_file(options: Mapping, data: Mapping) -> InstructionFile | None:
    """``eval.file`` read as the ``data`` block says (layout, fields, template, max_length), or None."""
    if not options["file"]:
        return None
    fields = ("layout", "instruction_field", "input_field", "output_field", "messages_field")
    return InstructionFile(
        options["file"], options["split"], RowFormat(**{key: data[key] for key in fields}), data["template"], data["max_length"],
        tuple(options["match"]),
    )


def resolve_device(name: str) -> torch.device:
    """``auto`` is CUDA when there is a GPU, else the CPU; any other name is a torch device."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def evaluate_model(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    options: Mapping,
    data: Mapping,
    out_dir: str | Path,
    scored: Mapping[str, str | None],
    device: str = "auto",
) -> dict[str, dict[str, float]]:
    """:func:`evaluate_sets` on ``device`` with the keys of an ``eval`` config block (``sets``,
    ``limit``, ``batch_size``, ``max_new_tokens``, ``grading``, ``file``, ``split``, ``match``) and
    of a ``data`` block (``dir``; for ``eval.file`` its layout, fields, template and max_length)."""
    model.to(resolve_device(device))
    return evaluate_sets(
        model,
        tokenizer,
        list(options["sets"]),
        data["dir"],
        out_dir,
        limit=options["limit"],
        batch_size=options["batch_size"],
        max_new_tokens=options["max_new_tokens"],
        grading=options["grading"],
        scored=scored,
        file=instruction_file(options, data),
    )
