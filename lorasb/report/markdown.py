"""``report.md``: each setting's statistics over its seeds, every metric, and the paired comparison."""

from __future__ import annotations

from collections.abc import Callable

from lorasb.report.groups import Group, Pairing
from lorasb.report.stats import Estimate, estimate

NO_INTERVAL = "n=1: no interval"


def number(value: float | None, digits: int = 4) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def spread(e: Estimate | None, signed: bool = False) -> str:
    """``mean ± sd``; the mean alone for one value."""
    if e is None:
        return ""
    mean = f"{e.mean:+.4f}" if signed else f"{e.mean:.4f}"
    return f"{mean} ± {e.sd:.4f}" if e.sd is not None else mean


def interval(e: Estimate | None) -> str:
    if e is None:
        return ""
    return f"[{e.low:.4f}, {e.high:.4f}]" if e.has_interval else NO_INTERVAL


def cell(e: Estimate | None) -> str:
    """``mean ± sd [low, high]`` in one cell."""
    if e is None:
        return ""
    return f"{spread(e)} {interval(e)}" if e.has_interval else f"{spread(e)} ({NO_INTERVAL})"


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows]) + "\n"


def setting(g: Group) -> list[str]:
    return [str(g.task), str(g.method), "" if g.rank is None else str(g.rank), g.lr_label, str(len(g.runs))]


def main_table(groups: list[Group], confidence: float) -> str:
    level = f"{confidence * 100:g}%"
    header = ["task", "method", "rank", "lr", "n", "seeds", "metric", "best", f"best {level} CI", "final",
              f"final {level} CI", "trainable", "init s", "train s", "peak MB"]  # fmt: skip
    rows = []
    for g in groups:
        best, final = estimate(g.values("best"), confidence), estimate(g.values("final"), confidence)
        trainable = g.mean("trainable")
        rows.append([
            *setting(g), " ".join(map(str, g.seeds)), str(g.metric), spread(best), interval(best), spread(final),
            interval(final), "" if trainable is None else f"{trainable:,.0f}", number(g.mean("init_seconds"), 1),
            number(g.mean("train_seconds"), 1), number(g.mean("peak_memory_mb"), 0),
        ])  # fmt: skip
    return table(header, rows)


def estimates_table(
    groups: list[Group], confidence: float, names: list[str], values: Callable[[Group, str], list[float]], examples: bool = False
) -> str:
    """A row per setting (with its evaluation sets' sizes where ``examples``), a ``mean ± sd [CI]``
    cell per score ``name``, from ``values(group, name)``."""
    rows = [
        [*setting(g), *([g.evaluated] if examples else []), *(cell(estimate(values(g, name), confidence)) for name in names)]
        for g in groups
    ]
    return table(["task", "method", "rank", "lr", "n", *(["examples"] if examples else []), *names], rows)


def arm(g: Group) -> str:
    return ("" if g.rank is None else f"r={g.rank}, ") + f"lr {g.lr_label}"


def pairs_table(pairings: list[Pairing], compare: str, against: str, confidence: float) -> str:
    header = ["task", "metric", compare, against, "pairs", "left out", "mean difference", f"{confidence * 100:g}% CI", "p",
              "excludes 0"]  # fmt: skip
    rows = []
    for p in pairings:
        e = p.estimate
        rows.append([
            str(p.compare.task), str(p.metric), arm(p.compare), arm(p.against), f"{len(p.seeds)} (seeds {' '.join(map(str, p.seeds))})" if p.seeds else "0",
            ", ".join(p.left_out), spread(e, signed=True), interval(e) if e else "no seeds in common",
            f"{e.p_value():.3g}" if e and e.has_interval else "", "✓" if e and e.excludes(0.0) else "",
        ])  # fmt: skip
    return table(header, rows)


def notes(groups: list[Group], compare: str, against: str, unlogged: int) -> list[str]:
    """What the tables leave unsaid: a side missing from the comparison, repeated seeds, runs without
    a seed, and ``unlogged`` runs without a validation curve."""
    found = []
    for task in sorted({str(g.task) for g in groups}):
        missing = [m for m in (compare, against) if not any(str(g.task) == task and g.method == m for g in groups)]
        if missing:
            found.append(f"{task}: no {' and no '.join(missing)} runs, so no paired comparison.")
    for g in groups:
        if g.repeated_seeds():
            found.append(
                f"{g.task} {g.method} r={g.rank}: seed {', '.join(map(str, g.repeated_seeds()))} ran more than once "
                "(the runs may differ in more than the seed); each seed's runs are averaged when paired."
            )
    unseeded = sum(1 for g in groups for r in g.runs if r["seed"] is None)
    if unseeded:
        found.append(
            f"{unseeded} run(s) kept no config with a seed (logs/hparams.yaml, .hydra/config.yaml): "
            "they count in their setting's statistics but are not paired."
        )
    reported = sorted({r["report"] for g in groups for r in g.runs if r["report"]})
    if reported:
        count = sum(1 for g in groups for r in g.runs if r["report"])
        found.append(
            f"{count} run(s) read from an earlier report ({', '.join(reported)}): their main metric and scores after "
            "training only; each run redone in a runs folder given beside it replaced its row."
        )
    if unlogged:
        found.append(
            f"{unlogged} run(s) have no validation curve in logs/metrics.csv (logger=csv; or read from an earlier "
            "report, their folder gone): not in report_curves.png."
        )
    return found


def markdown(
    groups: list[Group], pairings: list[Pairing], compare: str, against: str, confidence: float = 0.95, unlogged: int = 0
) -> str:
    level = f"{confidence * 100:g}%"
    runs = sum(len(g.runs) for g in groups)
    parts = [
        "# Report\n",
        f"{runs} runs in {len(groups)} settings (task × method × rank × lr); runs that differ only in their "
        f"seed are one setting, of n runs. Scores: mean ± sample standard deviation (n − 1) over the seeds, "
        f"and the {level} confidence interval of the mean (Student t, n − 1 degrees of freedom); "
        f"with one run, {NO_INTERVAL}. Trainable parameters, seconds and peak memory: means.\n",
        "## Main metric, at its best and at the end\n",
        main_table(groups, confidence),
        f"## Every metric at its best (mean ± sd [{level} CI])\n",
        estimates_table(groups, confidence, sorted({name for g in groups for r in g.runs for name in r["best_metrics"]}), Group.metric_values),
    ]
    evaluated = [g for g in groups if g.evaluation_names]
    if evaluated:
        names = sorted({name for g in evaluated for name in g.evaluation_names})
        parts += [
            f"## The evaluation sets after training (mean ± sd [{level} CI])\n",
            "examples: how many examples of each set the runs scored.\n",
            estimates_table(evaluated, confidence, names, Group.evaluation_values, examples=True),
        ]
    parts += [
        f"## {compare} − {against}, paired by seed\n",
        f"The main metric at its best{', and each score after training' if evaluated else ''}: each seed's {compare} run minus the {against} run of the same seed "
        f"(only seeds both have are paired; the others are left out and named). The mean difference ± sd, its "
        f"{level} paired-t confidence interval and the two-sided p-value; ✓ where the interval excludes 0. "
        f"Every rank of {compare} is paired with every rank of {against}.\n",
        pairs_table(pairings, compare, against, confidence) if pairings else f"No task has runs of both {compare} and {against}.\n",
    ]
    found = notes(groups, compare, against, unlogged)
    if found:
        parts += ["## Notes\n", "".join(f"- {note}\n" for note in found)]
    return "\n".join(parts)
