"""The report's CSV files: ``report.csv`` (a row per setting), ``report_runs.csv`` (a row per run,
with its scores after training) and ``report_pairs.csv`` (a row per paired comparison)."""

from __future__ import annotations

import csv
import os
from pathlib import Path

from lorasb.report.groups import Group, Pairing
from lorasb.report.runs import RUN_COLUMNS, examples_columns
from lorasb.report.stats import Estimate, estimate

PAIR_COLUMNS = [
    "task", "metric", "compare", "compare_rank", "compare_lr", "against", "against_rank", "against_lr", "pairs",
    "seeds", "left_out", "difference", "difference_sd", "difference_low", "difference_high", "p", "excludes_zero",
]  # fmt: skip
MEANS = ["trainable", "total", "init_seconds", "train_seconds", "peak_memory_mb"]


def _stat_columns(name: str, e: Estimate | None) -> dict:
    """``name`` (the mean), ``name_sd``, ``name_low`` and ``name_high`` (the interval; empty for one run)."""
    if e is None:
        return {}
    return {name: e.mean, f"{name}_sd": e.sd, f"{name}_low": e.low, f"{name}_high": e.high}


def _plain(value: float | None) -> float | int | None:
    """A whole number as an int (a parameter count the same in every run)."""
    return int(value) if value is not None and value.is_integer() else value


def setting_row(g: Group, confidence: float) -> dict:
    row = {"task": g.task, "method": g.method, "rank": g.rank, "lr": g.lr_label, "n": len(g.runs),
           "seeds": " ".join(map(str, g.seeds)), "metric": g.metric}  # fmt: skip
    row |= _stat_columns("best", estimate(g.values("best"), confidence))
    row |= _stat_columns("final", estimate(g.values("final"), confidence))
    row |= {key: _plain(g.mean(key)) for key in MEANS}
    for name in sorted({name for r in g.runs for name in r["best_metrics"]}):
        row |= _stat_columns(f"best {name}", estimate(g.metric_values(name), confidence))
    for name in g.evaluation_names:
        row |= _stat_columns(f"eval {name}", estimate(g.evaluation_values(name), confidence))
    return row | ({"evaluated": g.evaluated} if g.evaluated else {})


def pair_row(p: Pairing) -> dict:
    e = p.estimate
    return {
        "task": p.compare.task, "metric": p.metric,
        "compare": p.compare.method, "compare_rank": p.compare.rank, "compare_lr": p.compare.lr_label,
        "against": p.against.method, "against_rank": p.against.rank, "against_lr": p.against.lr_label,
        "pairs": len(p.seeds), "seeds": " ".join(map(str, p.seeds)), "left_out": "; ".join(p.left_out),
        **_stat_columns("difference", e),
        "p": e.p_value() if e else None, "excludes_zero": e.excludes(0.0) if e else False,
    }  # fmt: skip


def write_csv(path: Path, rows: list[dict], columns: list[str] | None = None) -> None:
    """``rows`` under ``columns`` (default: every key of the rows, in the order first met)."""
    columns = columns or list(dict.fromkeys(key for row in rows for key in row))
    with open(path, "w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def write_tables(out: Path, rows: list[dict], groups: list[Group], pairings: list[Pairing], confidence: float) -> list[Path]:
    """The three CSV files in ``out``; run folders are written relative to ``out``."""
    paths = [out / "report.csv", out / "report_runs.csv", out / "report_pairs.csv"]
    write_csv(paths[0], [setting_row(g, confidence) for g in groups])
    runs = [{**r, **r["evaluation"], **examples_columns(r), "run_dir": os.path.relpath(r["run_dir"], out)} for r in rows]
    evaluations = sorted({name for r in rows for name in [*r["evaluation"], *examples_columns(r)]})
    write_csv(paths[1], runs, RUN_COLUMNS + evaluations)
    write_csv(paths[2], [pair_row(p) for p in pairings], PAIR_COLUMNS)
    return paths
