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

    def mean(self, key: str) -> float | None:
        values = self.values(key)
        return math.fsum(values) / len(values) if values else None

    def by_seed(self, key: str = "best") -> dict[int, float]:
        """``key`` per seed; a seed run more than once gives the mean of its runs."""
        runs: dict[int, list[float]] = {}
        for r in self.runs:
            if r["seed"] is not None and r[key] is not None:
                runs.setdefault(r["seed"], []).append(r[key])
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
    """``compare``'s runs minus ``against``'s, seed by seed, of one task's main metric at its best."""

    compare: Group
    against: Group
    seeds: list[int]
    left_out: list[str]  # e.g. "seed 3 (lora only)", "1 lora run without a seed"
    estimate: Estimate | None


def paired(compare: Group, against: Group, confidence: float = 0.95) -> Pairing:
    """The two groups' runs of the seeds both have; the others are named in ``left_out``."""
    mine, theirs = compare.by_seed(), against.by_seed()
    seeds = sorted(mine.keys() & theirs.keys())
    differences = [mine[s] - theirs[s] for s in seeds]
    left_out = [f"seed {s} ({compare.method} only)" for s in sorted(mine.keys() - theirs.keys())]
    left_out += [f"seed {s} ({against.method} only)" for s in sorted(theirs.keys() - mine.keys())]
    for group in (compare, against):
        unseeded = sum(1 for r in group.runs if r["seed"] is None)
        if unseeded:
            left_out.append(f"{unseeded} {group.method} run{'s' if unseeded > 1 else ''} without a seed")
    return Pairing(compare, against, seeds, left_out, estimate(differences, confidence))


def pairings(groups: list[Group], compare: str, against: str, confidence: float = 0.95) -> list[Pairing]:
    """Per task, every ``compare`` group (each rank and lr) paired with every ``against`` group."""
    return [
        paired(mine, theirs, confidence)
        for mine in groups
        if mine.method == compare
        for theirs in groups
        if theirs.method == against and theirs.task == mine.task
    ]
