"""Scoring with EleutherAI's lm-evaluation-harness (extra ``lorasb[lm-eval]``): its Python API
(``lm_eval.simple_evaluate``), its Hugging Face backend, a PEFT adapter applied by the backend
itself (its ``peft=`` model argument), tasks by name. README.md beside this file says which of
the paper's sets the harness has and how its numbers relate to the paper's protocol."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lorasb.settings.fields import default
from lorasb.settings.harness import HarnessSettings

RESULTS_FILE = "lm_eval.json"


class UnknownTaskError(ValueError):
    """A task name the harness does not have."""


def run_harness(
    pretrained: str,
    tasks: Sequence[str],
    out_dir: str | Path,
    adapter: str | Path | None = None,
    include_path: str | Path | None = default(HarnessSettings, "include_path"),
    limit: int | None = default(HarnessSettings, "limit"),
    num_fewshot: int | None = default(HarnessSettings, "num_fewshot"),
    batch_size: int = default(HarnessSettings, "batch_size"),
    device: str = "cpu",
    dtype: str = "float32",
    log_samples: bool = False,
) -> dict[str, Any]:
    """The harness's results for ``tasks`` on ``pretrained`` (a Hub name or folder: a base model or
    a merged export) with ``adapter`` (a PEFT folder) on it; written to ``<out_dir>/lm_eval.json``
    (its ``results``, ``n-shot``, ``versions``, task ``configs`` and the model arguments).
    ``include_path``: a folder of task YAMLs of one's own. With ``log_samples`` the returned
    dict also holds every example's record under ``samples`` (not written)."""
    try:
        import lm_eval
        from lm_eval.tasks import TaskManager
    except ImportError as error:
        raise ImportError("scoring with lm-evaluation-harness needs its package: pip install 'lorasb[lm-eval]'") from error

    model_args = {"pretrained": str(pretrained), "dtype": dtype}
    if adapter is not None:
        model_args["peft"] = str(adapter)
    manager = TaskManager(include_path=str(include_path) if include_path is not None else None)
    unknown = [task for task in tasks if task not in manager.all_tasks]
    if unknown:
        raise UnknownTaskError(f"lm-evaluation-harness has no task {', '.join(unknown)}; its names: python -m lm_eval ls tasks (or give harness.include_path)")
    output = lm_eval.simple_evaluate(
        model="hf",
        model_args=model_args,
        tasks=list(tasks),
        num_fewshot=num_fewshot,
        batch_size=batch_size,
        device=device,
        limit=limit,
        task_manager=manager,
        log_samples=log_samples,
    )
    record = {key: output[key] for key in ("results", "n-shot", "versions", "configs") if key in output}
    record["model_args"] = model_args
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / RESULTS_FILE).write_text(json.dumps(record, indent=2, default=str) + "\n")
    return output
