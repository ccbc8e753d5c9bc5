"""What the report reads of each run: its ``metrics.json`` (with the scores of the sets evaluated
after training), its seed and its validation curve; or its row in an earlier report's
``report_runs.csv``, where the run's folder is gone."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import yaml

# What an evaluation set's results hold besides its scores (lorasb.eval.evaluation.evaluate_sets).
TALLIES = ("correct", "count", "tokens", "seconds", "seconds_per_example")

# The columns of report_runs.csv; the scores after training follow them, a column each.
RUN_COLUMNS = [
    "task", "method", "rank", "lr", "peak_lr", "seed", "metric", "best", "final", "trainable", "total",
    "trainable_ratio", "init_seconds", "train_seconds", "peak_memory_mb", "baseline_name", "baseline", "run_dir",
]  # fmt: skip
TEXT_COLUMNS = ("task", "method", "metric", "baseline_name", "run_dir")

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


def examples_columns(row: dict) -> dict[str, int]:
    """``<set>/count``: how many examples of each set evaluated after training the run scored."""
    return {f"{name}/count": count for name, count in row["evaluated"].items() if count is not None}


def row(path: Path) -> dict:
    """The report row of one run's ``metrics.json``: ``best_metrics`` holds every metric at its best,
    ``evaluation`` the scores after training, ``evaluated`` each set's number of examples and
    ``report`` the earlier report a row was read from (None: read from the run)."""
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
        "report": None,
    }


def _number(text: str) -> int | float | str:
    """A CSV cell as the int or float it holds (``auto`` stays text)."""
    try:
        return int(text)
    except ValueError:
        try:
            return float(text)
        except ValueError:
            return text


def reported_rows(path: Path) -> list[dict]:
    """The runs of an earlier report's ``report_runs.csv`` as rows: the main metric at its best and
    the end, the scores after training with their examples (``<set>/count``), no other metric and
    no curve; each run folder is read relative to the CSV's folder, as the report wrote it."""
    with open(path, newline="") as file:
        lines = list(csv.DictReader(file))
    rows = []
    for line in lines:
        cells = {key: (None if text == "" else text if key in TEXT_COLUMNS else _number(text)) for key, text in line.items()}
        row = {key: cells.get(key) for key in RUN_COLUMNS}
        row["best_metrics"] = {row["metric"]: row["best"]} if row["best"] is not None else {}
        scores = {key: value for key, value in cells.items() if key not in RUN_COLUMNS and value is not None}
        row["evaluated"] = {key.removesuffix("/count"): value for key, value in scores.items() if key.endswith("/count")}
        row["evaluation"] = {key: value for key, value in scores.items() if not key.endswith("/count")}
        row["run_dir"] = str(path.parent / row["run_dir"]) if row["run_dir"] else str(path)
        row["report"] = str(path)
        rows.append(row)
    return rows


def _setting(row: dict) -> tuple:
    return row["task"], row["method"], row["rank"], str(row["lr"]), row["seed"]


def collect(roots: str | Path | list[str | Path]) -> list[dict]:
    """One row per run, sorted by task, method, rank and seed: each ``metrics.json`` under a
    folder, each row of a ``report_runs.csv`` given instead of a folder. A run read from a folder
    replaces an earlier report's row of the same task, method, rank, lr and seed (a run redone)."""
    found, reported = [], []
    for root in [roots] if isinstance(roots, (str, Path)) else roots:
        root = Path(root)
        if root.is_file() and root.suffix == ".csv":
            reported += reported_rows(root)
            continue
        if not root.is_dir():
            raise FileNotFoundError(
                f"{root} is not a folder; give the multirun or runs folder to report on, or an earlier report's report_runs.csv"
            )
        runs = [row(path) for path in sorted(root.rglob("metrics.json"))]
        if not runs:
            raise FileNotFoundError(
                f"no runs under {root}: no metrics.json found; give a multirun folder "
                "(outputs/multirun/<date>/<time>) or a folder of finished runs"
            )
        found += runs
    redone = {_setting(r) for r in found}
    rows = found + [r for r in reported if _setting(r) not in redone]
    return sorted(rows, key=lambda r: (str(r["task"]), str(r["method"]), r["rank"] or 0, str(r["lr"]), str(r["seed"]), r["run_dir"]))


def validation_curve(run_dir: str | Path, metric: str) -> list[tuple[int, float]]:
    """``(optimizer step, value)`` of ``metric`` at each validation in the run's CSV log
    (``logs/metrics.csv``; step 0 is the validation before training); empty without a log."""
    path = Path(run_dir) / "logs" / "metrics.csv"
    if not path.is_file():
        return []
    with open(path, newline="") as file:
        return [(int(line["step"]), float(line[metric])) for line in csv.DictReader(file) if line.get(metric)]
