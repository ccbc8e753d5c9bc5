"""Compare the runs of a sweep: ``python -m lorasb.report <multirun or runs folder>``.

Reads every job's ``metrics.json`` under the folder and writes, beside them, ``report.csv`` and
``report.md`` (one row per task × method × rank × lr: the main metric at its best and at the end,
trainable parameters, init and training seconds, peak memory) and ``report.png`` (the main
metric against the trainable parameters, log x, one series per method (and lr, where a method
ran at several), a panel per task).
:func:`collect` gives the rows to other code (a notebook, say).
"""

from __future__ import annotations

import csv
import os
import json
import sys
from pathlib import Path

COLUMNS = [
    "task", "method", "rank", "lr", "metric", "best", "final", "trainable", "total",
    "trainable_ratio", "init_seconds", "train_seconds", "peak_memory_mb", "run_dir",
]  # fmt: skip


def row(path: Path) -> dict:
    """The report row of one run's ``metrics.json``."""
    summary = json.loads(path.read_text())
    run = summary.get("run", {})
    metric = run.get("monitor")
    parameters = summary.get("parameters", {})
    trainable, total = parameters.get("trainable"), parameters.get("total")
    return {
        "task": run.get("task"),
        "method": run.get("method"),
        "rank": run.get("rank"),
        "lr": f"auto ({summary['peak_lr']:g})" if run.get("lr") == "auto" and "peak_lr" in summary else run.get("lr"),
        "metric": metric,
        "best": summary.get("best", {}).get(metric),
        "final": summary.get("final", {}).get(metric),
        "trainable": trainable,
        "total": total,
        "trainable_ratio": trainable / total if trainable and total else None,
        "init_seconds": summary.get("init_seconds"),
        "train_seconds": summary.get("train_seconds"),
        "peak_memory_mb": summary.get("peak_memory_mb"),
        "run_dir": str(path.parent),
    }


def collect(root: str | Path) -> list[dict]:
    """One row per run (each ``metrics.json`` under ``root``), sorted by task, method and rank."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root} is not a folder; give the multirun or runs folder to report on")
    rows = [row(path) for path in sorted(root.rglob("metrics.json"))]
    if not rows:
        raise FileNotFoundError(
            f"no runs under {root}: no metrics.json found; give a multirun folder "
            "(outputs/multirun/<date>/<time>) or a folder of finished runs"
        )
    return sorted(rows, key=lambda r: (str(r["task"]), str(r["method"]), r["rank"] or 0, str(r["lr"]), r["run_dir"]))


def _cell(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "" if value is None else str(value)


def markdown(rows: list[dict]) -> str:
    shown = [c for c in COLUMNS if c != "run_dir"]
    lines = ["| " + " | ".join(shown) + " |", "|" + " --- |" * len(shown)]
    lines += ["| " + " | ".join(_cell(r[c]) for c in shown) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def _series(rows: list[dict]) -> dict[str, list[dict]]:
    """The rows of each method; by method and lr where one method ran at several lrs."""
    series: dict[str, list[dict]] = {}
    for r in rows:
        several = len({str(o["lr"]) for o in rows if o["method"] == r["method"]}) > 1
        series.setdefault(f"{r['method']} (lr {r['lr']})" if several else str(r["method"]), []).append(r)
    return series


def plot(rows: list[dict], path: Path) -> None:
    """The main metric (best) against trainable parameters: a panel per task, a series per method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = sorted({str(r["task"]) for r in rows})
    palette = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    colors = {method: palette[i % len(palette)] for i, method in enumerate(sorted({str(r["method"]) for r in rows}))}
    figure, axes = plt.subplots(1, len(tasks), figsize=(5.5 * len(tasks), 4), squeeze=False)
    for axis, task in zip(axes[0], tasks):
        chosen = [r for r in rows if str(r["task"]) == task and r["trainable"] and r["best"] is not None]
        for label, series in sorted(_series(chosen).items()):  # a method keeps its colour in every panel
            method, lr = str(series[0]["method"]), str(series[0]["lr"])
            lrs = sorted({str(r["lr"]) for r in chosen if str(r["method"]) == method})  # one marker per lr
            points = sorted((r["trainable"], r["best"]) for r in series)
            axis.plot(*zip(*points), marker="os^Dv"[lrs.index(lr) % 5], color=colors[method], label=label)
        axis.set_xscale("log")
        axis.set_xlabel("trainable parameters (log scale)")
        axis.set_ylabel(f"{chosen[0]['metric'] if chosen else 'main metric'} (best)")
        axis.set_title(task)
        axis.grid(True, alpha=0.3)
        axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def write_report(root: str | Path, out_dir: str | Path | None = None) -> list[Path]:
    """``report.csv``, ``report.md`` and ``report.png`` of the runs under ``root`` (into ``out_dir``, default ``root``)."""
    rows = collect(root)
    out = Path(out_dir or root)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "report.csv", "w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows({**r, "run_dir": os.path.relpath(r["run_dir"], root)} for r in rows)  # portable: within the reported folder
    (out / "report.md").write_text(markdown(rows))
    plot(rows, out / "report.png")
    return [out / "report.csv", out / "report.md", out / "report.png"]


def main(argv: list[str]) -> int:
    if len(argv) != 1 or argv[0] in ("-h", "--help"):
        print("usage: python -m lorasb.report <multirun or runs folder>")
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    try:
        paths = write_report(argv[0])
    except FileNotFoundError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(Path(argv[0], "report.md").read_text(), end="")
    print("written: " + ", ".join(str(p) for p in paths))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
