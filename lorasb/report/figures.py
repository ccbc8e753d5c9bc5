"""``report.png`` (each setting's mean and interval of each score against its trainable parameters) and
``report_curves.png`` (the validation curves, each run's and their mean, beside the baseline)."""

from __future__ import annotations

import math
from pathlib import Path

from lorasb.report.groups import Group
from lorasb.report.stats import estimate


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _colors(plt, names: list[str]) -> dict[str, str]:
    palette = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    return {name: palette[i % len(palette)] for i, name in enumerate(sorted(set(names)))}


def _baseline(axis, groups: list[Group]) -> None:
    """The constant prediction's score (GLUE: the majority class) as a dashed grey line."""
    found = next((g.baseline for g in groups if g.baseline), None)
    if found:
        axis.axhline(found[1], color="grey", linestyle="--", linewidth=1, label=found[0])


def _short_count(value: float, _position=None) -> str:
    """``20k``, ``2M``: tick labels that fit beside each other."""
    for size, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if value >= size:
            return f"{value / size:g}{suffix}"
    return f"{value:g}"


def _count_ticks(xaxis) -> None:
    """A log axis labelled at 1, 2 and 5 of each decade."""
    from matplotlib.ticker import FuncFormatter, LogLocator

    xaxis.set_major_formatter(FuncFormatter(_short_count))
    xaxis.set_minor_locator(LogLocator(subs=(2.0, 5.0)))
    xaxis.set_minor_formatter(FuncFormatter(_short_count))


def plot_means(groups: list[Group], path: Path, confidence: float = 0.95) -> None:
    """The main metric at its best, and each score after training, mean and interval (none for one
    run), against the mean trainable parameters (log x): a panel per task and score, a series per
    method (and lr, where a method ran at several in that task)."""
    plt = _pyplot()
    panels = [
        (task, evaluation)
        for task in sorted({str(g.task) for g in groups})
        for evaluation in [None, *sorted({n for g in groups if str(g.task) == task for n in g.evaluation_names})]
    ]
    colors = _colors(plt, [str(g.method) for g in groups])
    figure, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4), squeeze=False)
    for axis, (task, evaluation) in zip(axes[0], panels):
        def values(g: Group) -> list[float]:
            return g.values("best") if evaluation is None else g.evaluation_values(evaluation)

        chosen = [g for g in groups if str(g.task) == task and g.mean("trainable") and values(g)]
        series: dict[tuple[str, str], list[Group]] = {}
        for g in chosen:
            several = len({g2.lr_label for g2 in chosen if g2.method == g.method}) > 1
            series.setdefault((str(g.method), g.lr_label if several else ""), []).append(g)
        for (method, lr), members in sorted(series.items()):
            points = sorted((g.mean("trainable"), estimate(values(g), confidence)) for g in members)
            x = [trainable for trainable, _ in points]
            y = [e.mean for _, e in points]
            below = [e.mean - e.low if e.has_interval else math.nan for _, e in points]
            above = [e.high - e.mean if e.has_interval else math.nan for _, e in points]
            label = method + (f" (lr {lr})" if lr else "")
            axis.errorbar(x, y, yerr=[below, above], marker="o", capsize=4, color=colors[method], label=label)
            for (trainable, e), height in zip(points, y):  # n beside each point: n=1 has no bar
                axis.annotate(f"n={e.n}", (trainable, height), textcoords="offset points", xytext=(6, -3), fontsize="small")
        if evaluation is None:
            _baseline(axis, chosen)
        axis.set_xscale("log")
        _count_ticks(axis.xaxis)
        axis.set_xlabel("trainable parameters (log scale)")
        score = f"{chosen[0].metric if chosen else 'main metric'} (best" if evaluation is None else f"{evaluation} (after training"
        axis.set_ylabel(f"{score}; mean, {confidence * 100:g}% CI)")
        axis.set_title(task)
        axis.grid(True, alpha=0.3)
        axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def mean_curve(curves: list[list[tuple[int, float]]]) -> list[tuple[int, float]]:
    """At each step any curve has, the mean of the curves that have it."""
    at: dict[int, list[float]] = {}
    for curve in curves:
        for step, value in curve:
            at.setdefault(step, []).append(value)
    return [(step, math.fsum(values) / len(values)) for step, values in sorted(at.items())]


def plot_curves(groups: list[Group], curves: dict[str, list[tuple[int, float]]], path: Path) -> None:
    """The main metric at each validation (step 0: before training) of every run (thin) and their mean
    over the seeds (thick): a row per task, a column per method, a colour per rank and lr; the
    baseline dashed. ``curves`` maps each run's folder to its curve; settings without one are left
    out (runs read from an earlier report)."""
    plt = _pyplot()
    groups = [g for g in groups if any(curves.get(r["run_dir"]) for r in g.runs)] or groups
    tasks = sorted({str(g.task) for g in groups})
    methods = sorted({str(g.method) for g in groups})
    colors = _colors(plt, [f"r={g.rank}, lr {g.lr_label}" for g in groups])
    figure, axes = plt.subplots(len(tasks), len(methods), figsize=(4 * len(methods), 3.2 * len(tasks)), squeeze=False)
    for row, task in enumerate(tasks):
        for column, method in enumerate(methods):
            axis = axes[row][column]
            chosen = [g for g in groups if str(g.task) == task and str(g.method) == method]
            if not chosen:
                axis.set_axis_off()
                continue
            for g in chosen:
                label = f"r={g.rank}, lr {g.lr_label}"
                runs = [curves[r["run_dir"]] for r in g.runs if curves.get(r["run_dir"])]
                for curve in runs:
                    axis.plot(*zip(*curve), color=colors[label], linewidth=0.8, alpha=0.35)
                if runs:
                    axis.plot(*zip(*mean_curve(runs)), color=colors[label], linewidth=2, marker="o", label=f"{label} (n={len(runs)})")
            _baseline(axis, chosen)
            axis.set_title(f"{task} · {method}")
            axis.set_xlabel("optimizer step")
            axis.xaxis.set_major_locator(plt.MaxNLocator(integer=True))
            axis.set_ylabel(str(chosen[0].metric))
            axis.grid(True, alpha=0.3)
            axis.legend(fontsize="small")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
