"""Compare the runs of sweeps: ``python -m lorasb.report <folder> [<folder> ...]``.

Reads every job's ``metrics.json`` under the folders (and each run's seed from its config) and
groups the runs that differ only in their seed. Writes ``report.md`` (per task × method × rank
× lr: n, mean, sample sd and Student-t confidence interval of the main metric at its best and at
the end, of every metric at its best and of every score of the sets evaluated after training
(GSM8K's accuracy, say), mean trainable parameters, seconds and peak memory; two methods compared
seed by seed on the main metric and on each score after training), ``report.csv`` (a row per
setting), ``report_runs.csv`` (a row per run), ``report_pairs.csv``, ``report.png`` (means and
intervals against trainable parameters, a panel per task and score) and ``report_curves.png``
(validation curves from each run's ``logs/metrics.csv``). An earlier report's ``report_runs.csv``
may stand in for run folders that are gone; a run redone in a folder given beside it replaces
its row. :func:`collect` gives the runs' rows to other code (a notebook, say).
"""

from __future__ import annotations

from pathlib import Path

from lorasb.report.figures import plot_curves, plot_means
from lorasb.report.groups import grouped, pairings
from lorasb.report.markdown import markdown
from lorasb.report.runs import collect, validation_curve
from lorasb.report.tables import write_tables

__all__ = ["collect", "write_report"]


def write_report(
    roots: str | Path | list[str | Path],
    out_dir: str | Path | None = None,
    compare: str = "lora_sb",
    against: str = "lora",
    confidence: float = 0.95,
) -> list[Path]:
    """The report of the runs under ``roots`` in ``out_dir`` (default: the one folder reported on)."""
    roots = [roots] if isinstance(roots, (str, Path)) else list(roots)
    if out_dir is None and len(roots) != 1:
        raise ValueError("several folders: say where the report goes (out_dir, --out)")
    rows = collect(roots)
    out = Path(out_dir or roots[0])
    out.mkdir(parents=True, exist_ok=True)
    groups = grouped(rows)
    paired = pairings(groups, compare, against, confidence)
    curves = {r["run_dir"]: validation_curve(r["run_dir"], r["metric"]) for r in rows}
    unlogged = sum(1 for curve in curves.values() if not curve)
    (out / "report.md").write_text(markdown(groups, paired, compare, against, confidence, unlogged))
    paths = write_tables(out, rows, groups, paired, confidence)
    plot_means(groups, out / "report.png", confidence)
    plot_curves(groups, curves, out / "report_curves.png")
    return [out / "report.md", *paths, out / "report.png", out / "report_curves.png"]
