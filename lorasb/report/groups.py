"""Runs that differ only in their seed, grouped; and two methods' groups paired seed by seed."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from lorasb.report.stats import Estimate, estimate


@dataclass
class Group:
    """The runs of one task × method × rank × lr setting (``lr`` as configured: ``auto`` stays one setting)."""

    task: str
    method: str
    rank: int | None
    lr: object
    runs: list[dict] = field(default_factory=list)

    @property
    def metric(self) -> str | None:
        return self.runs[0]["metric"]

    @property
    def seeds(self) -> list[int]:
        return sorted({r["seed"] for r in self.runs if r["seed"] is not None})

    @property
    def lr_label(self) -> str:
        """The lr as configured; with ``auto``, the lrs it chose, e.g. ``auto (0.003, 0.01)``."""
        if self.lr != "auto":
            return "" if self.lr is None else str(self.lr)
        chosen = sorted({r["peak_lr"] for r in self.runs if r["peak_lr"] is not None})
        return f"auto ({', '.join(f'{lr:g}' for lr in chosen)})" if chosen else "auto"

    @property
    def baseline(self) -> tuple[str, float] | None:
        """The constant prediction's name and score of the main metric (GLUE: the majority class)."""
        found = next((r for r in self.runs if r["baseline"] is not None), None)
        return (found["baseline_name"], found["baseline"]) if found else None

    def values(self, key: str) -> list[float]:
        """``key`` of every run that has it (``best``, ``final``, ``trainable``, ``train_seconds``, ...)."""
        return [r[key] for r in self.runs if r[key] is not None]

    def metric_values(self, name: str) -> list[float]:
        """Metric ``name`` at its best, of every run that has it."""
        return [r["best_metrics"][name] for r in self.runs if name in r["best_metrics"]]

    @property
    def evaluation_names(self) -> list[str]:
        """The scores after training any run has, e.g. ``gsm8k/accuracy``."""
        return sorted({name for r in self.runs for name in r["evaluation"]})

    def evaluation_values(self, name: str) -> list[float]:
        """Score ``name`` after training, of every run that has it."""
        return [r["evaluation"][name] for r in self.runs if name in r["evaluation"]]

    @property
    def evaluated(self) -> str:
        """Each evaluation set and its number of examples, e.g. ``gsm8k 200`` (``200/16`` where runs differ)."""
        counts: dict[str, set[int]] = {}
        for r in self.runs:
            for name, count in r["evaluated"].items():
                counts.setdefault(name, set()).update([count] if count is not None else [])
        return ", ".join(f"{name} {'/'.join(map(str, sorted(found)))}".strip() for name, found in sorted(counts.items()))

    def mean(self, key: str) -> float | None:
        values = self.values(key)
        return math.fsum(values) / len(values) if values else None

    def by_seed(self, evaluation: str | None = None) -> dict[int, float]:
        """The main metric at its best (or the score ``evaluation`` after training) per seed; a seed
        run more than once gives the mean of its runs."""
        runs: dict[int, list[float]] = {}
        for r in self.runs:
            value = r["best"] if evaluation is None else r["evaluation"].get(evaluation)
            if r["seed"] is not None and value is not None:
                runs.setdefault(r["seed"], []).append(value)
        return {seed: math.fsum(values) / len(values) for seed, values in runs.items()}

    def repeated_seeds(self) -> list[int]:
        seeds = [r["seed"] for r in self.runs if r["seed"] is not None]
        return sorted({s for s in seeds if seeds.count(s) > 1})


def grouped(rows: list[dict]) -> list[Group]:
    """The rows (:func:`lorasb.report.runs.collect`) as groups, in the rows' order."""
    groups: dict[tuple, Group] = {}
    for r in rows:
        key = (r["task"], r["method"], r["rank"], r["lr"])
        groups.setdefault(key, Group(*key)).runs.append(r)
    return list(groups.values())


@dataclass
class Pairing:
    """``compare``'s runs minus ``against``'s, seed by seed, of one task's main metric at its best or
    of a score after training (``metric``)."""

    compare: Group
    against: Group
    metric: str | None
    seeds: list[int]
    left_out: list[str]  # e.g. "seed 3 (lora only)", "1 lora run without a seed"
    estimate: Estimate | None


def paired(compare: Group, against: Group, confidence: float = 0.95, evaluation: str | None = None) -> Pairing:
    """The two groups' runs of the seeds both have, compared on the main metric (or the score
    ``evaluation`` after training); the other seeds are named in ``left_out``."""
    mine, theirs = compare.by_seed(evaluation), against.by_seed(evaluation)
    seeds = sorted(mine.keys() & theirs.keys())
    differences = [mine[s] - theirs[s] for s in seeds]
    left_out = [f"seed {s} ({compare.method} only)" for s in sorted(mine.keys() - theirs.keys())]
    left_out += [f"seed {s} ({against.method} only)" for s in sorted(theirs.keys() - mine.keys())]
    for group in (compare, against):
        unseeded = sum(1 for r in group.runs if r["seed"] is None)
        if unseeded:
            left_out.append(f"{unseeded} {group.method} run{'s' if unseeded > 1 else ''} without a seed")
    return Pairing(compare, against, evaluation or compare.metric, seeds, left_out, estimate(differences, confidence))


def pairings(groups: list[Group], compare: str, against: str, confidence: float = 0.95) -> list[Pairing]:
    """Per task, every ``compare`` group (each rank and lr) paired with every ``against`` group: on
    the main metric, then on each score after training both have."""
    return [
        paired(mine, theirs, confidence, evaluation)
        for mine in groups
        if mine.method == compare
        for theirs in groups
        if theirs.method == against and theirs.task == mine.task
        for evaluation in [None, *(name for name in mine.evaluation_names if name in theirs.evaluation_names)]
    ]
