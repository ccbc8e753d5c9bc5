"""Each arm in a process of its own, measured round-robin so that drift affects every arm alike."""

from __future__ import annotations

import multiprocessing
import statistics
import traceback
from multiprocessing.connection import Connection

from transformers.utils.logging import disable_progress_bar, set_verbosity_error

from lorasb.bench.arms import GROUPS, Settings
from lorasb.bench.measure import measured

METRICS = ("seconds", "peak_bytes")


def serve(conn: Connection, group: str, arm: str, settings: Settings, warmup: int) -> None:
    """Worker: build ``arm``, run it ``warmup`` times, then measure it once per ``"measure"`` received."""
    try:
        disable_progress_bar()
        set_verbosity_error()  # no load report per worker
        bench = GROUPS[group][arm](settings)
        for _ in range(warmup):
            bench.prepare()
            bench.run()
        conn.send(("ready", None))
        while conn.recv() == "measure":
            bench.prepare()
            conn.send(("result", measured(bench.run, settings.device)))
    except BaseException:
        conn.send(("error", traceback.format_exc()))
    finally:
        conn.close()


def _receive(conn: Connection, arm: str):
    kind, value = conn.recv()
    if kind == "error":
        raise RuntimeError(f"arm {arm} failed in its worker process:\n{value}")
    return value


def run_group(group: str, settings: Settings, repeats: int, warmup: int, arms: list[str] | None = None) -> dict[str, list[dict]]:
    """``repeats`` measurements of every arm of ``group`` (or of ``arms``): one worker process
    per arm, one measurement of each arm in turn per repeat."""
    context = multiprocessing.get_context("spawn")
    workers = {}
    try:
        for arm in arms or GROUPS[group]:
            mine, theirs = context.Pipe()
            process = context.Process(target=serve, args=(theirs, group, arm, settings, warmup), daemon=True)
            process.start()
            theirs.close()
            workers[arm] = (process, mine)
        for arm, (_, conn) in workers.items():
            _receive(conn, arm)
        raw: dict[str, list[dict]] = {arm: [] for arm in workers}
        for _ in range(repeats):
            for arm, (_, conn) in workers.items():
                conn.send("measure")
                raw[arm].append(_receive(conn, arm))
        return raw
    finally:
        for process, conn in workers.values():
            if process.is_alive():
                try:
                    conn.send("stop")
                except OSError:
                    pass
            process.join(timeout=30)
            if process.is_alive():
                process.terminate()


def summarise(raw: dict[str, list[dict]], bases: tuple[str, ...]) -> dict[str, dict]:
    """Every arm's raw repeats, their medians (phases too) and the medians' ratios to each base arm's."""
    arms = {}
    for arm, repeats in raw.items():
        median = {metric: statistics.median(r[metric] for r in repeats) for metric in METRICS}
        median["phases"] = {phase: statistics.median(r["phases"][phase] for r in repeats) for phase in repeats[0]["phases"]}
        arms[arm] = {"median": median, "repeats": repeats}
    for summary in arms.values():
        summary["ratio"] = {
            base: {metric: summary["median"][metric] / arms[base]["median"][metric] for metric in METRICS} for base in bases
        }
    return arms
