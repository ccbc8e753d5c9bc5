"""What the report reads of each run: its ``metrics.json`` (with the scores of the sets evaluated
after training), its seed and its validation curve."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import yaml

# What an evaluation set's results hold besides its scores (lorasb.eval.evaluation.evaluate_sets).
TALLIES = ("correct", "count", "tokens", "seconds", "seconds_per_example")

# Where a run keeps its config: the CSV logger's resolved copy, then Hydra's own.
CONFIG_FILES = ("logs/hparams.yaml", ".hydra/config.yaml")


def seed_of(run_dir: Path) -> int | None:
    """The ``seed`` at the top level of the run's config, None where the run kept no config."""
    for name in CONFIG_FILES:
        path = run_dir / name
        if not path.is_file():
            continue
        try:
            config = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError:  # e.g. a Python tag written by an old logger: the next file may do
            continue
        if isinstance(config.get("seed"), int):
            return config["seed"]
    return None


def evaluation_scores(results: dict) -> dict[str, float]:
    """The scores of each set evaluated after training (``metrics.json``'s ``eval``) as
    ``<set>/<score>``, e.g. ``gsm8k/accuracy``; counts and timings left out."""
    return {
        f"{name}/{key}": value
        for name, scores in results.items()
        for key, value in scores.items()
        if key not in TALLIES and isinstance(value, (int, float))
    }


def row(path: Path) -> dict:
    """The report row of one run's ``metrics.json``: ``best_metrics`` holds every metric at its best,
    ``evaluation`` the scores after training and ``evaluated`` each set's number of examples."""
    summary = json.loads(path.read_text())
    run = summary.get("run", {})
    metric = run.get("monitor")
    evaluations = summary.get("eval") or {}
    parameters = summary.get("parameters", {})
    trainable, total = parameters.get("trainable"), parameters.get("total")
    return {
        "task": run.get("task"),
        "method": run.get("method"),
        "rank": run.get("rank"),
        "lr": run.get("lr"),
        "peak_lr": summary.get("peak_lr"),
        "seed": seed_of(path.parent),
        "metric": metric,
        "best": summary.get("best", {}).get(metric),
        "final": summary.get("final", {}).get(metric),
        "best_metrics": summary.get("best", {}),
        "evaluation": evaluation_scores(evaluations),
        "evaluated": {name: scores.get("count") for name, scores in evaluations.items()},
        "baseline": summary.get("baseline", {}).get("scores", {}).get(metric),
        "baseline_name": summary.get("baseline", {}).get("name"),
        "trainable": trainable,
        "total": total,
        "trainable_ratio": trainable / total if trainable and total else None,
        "init_seconds": summary.get("init_seconds"),
        "train_seconds": summary.get("train_seconds"),
        "peak_memory_mb": summary.get("peak_memory_mb"),
        "run_dir": str(path.parent),
    }


def collect(roots: str | Path | list[str | Path]) -> list[dict]:
    """One row per run (each ``metrics.json`` under the folder or folders), sorted by task, method, rank and seed."""
    rows = []
    for root in [roots] if isinstance(roots, (str, Path)) else roots:
        root = Path(root)
        if not root.is_dir():
            raise FileNotFoundError(f"{root} is not a folder; give the multirun or runs folder to report on")
        found = [row(path) for path in sorted(root.rglob("metrics.json"))]
        if not found:
            raise FileNotFoundError(
                f"no runs under {root}: no metrics.json found; give a multirun folder "
                "(outputs/multirun/<date>/<time>) or a folder of finished runs"
            )
        rows += found
    return sorted(rows, key=lambda r: (str(r["task"]), str(r["method"]), r["rank"] or 0, str(r["lr"]), str(r["seed"]), r["run_dir"]))


def validation_curve(run_dir: str | Path, metric: str) -> list[tuple[int, float]]:
    """``(optimizer step, value)`` of ``metric`` at each validation in the run's CSV log
    (``logs/metrics.csv``; step 0 is the validation before training); empty without a log."""
    path = Path(run_dir) / "logs" / "metrics.csv"
    if not path.is_file():
        return []
    with open(path, newline="") as file:
        return [(int(line["step"]), float(line[metric])) for line in csv.DictReader(file) if line.get(metric)]
