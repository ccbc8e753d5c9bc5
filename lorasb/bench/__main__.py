"""``python -m lorasb.bench``: measure, print the tables, write the JSON (``--out``)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

import lorasb.bench
from lorasb.bench.arms import Settings
from lorasb.bench.measure import machine, memory_measure
from lorasb.bench.models import resolve
from lorasb.bench.runner import run_group, summarise

GIB = 2**30
BASES = {"training": ("floor", "lora"), "initialisation": ("passes", "reference")}
TITLES = {
    "training": "training step: forward + backward + AdamW step on one batch (floor: forward + backward)",
    "initialisation": "initialisation: gradient pass over the initialisation samples, then the SVD",
}


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m lorasb.bench", description=lorasb.bench.__doc__)
    parser.add_argument("--model", default="minilm", help="minilm, smollm2, another option of conf/model, or a local folder")
    parser.add_argument("--batch", type=int, default=16, help="samples per batch")
    parser.add_argument("--seq-len", type=int, default=128, help="tokens per sample")
    parser.add_argument("--rank", type=int, default=16, help="adapter rank (LoRA-SB, LoRA, LoRA-GA)")
    parser.add_argument("--init-samples", type=int, default=32, help="samples of the initialisation's gradient pass")
    parser.add_argument("--repeats", type=int, default=5, help="measurements per arm; the median is reported")
    parser.add_argument("--warmup", type=int, default=1, help="unmeasured runs per arm first")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", help="cpu or cuda")
    parser.add_argument("--targets", nargs="+", help="adapted layers (default: the model config's target_modules)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random inputs")
    parser.add_argument("--out", type=Path, help="write every raw measurement here as JSON")
    return parser.parse_args(argv)


def table(rows: list[list[str]]) -> str:
    """``rows`` (the first one the header) aligned: the first column left, the others right."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths))).rstrip()
        for row in rows
    )


def group_table(arms: dict, bases: tuple[str, ...]) -> str:
    phases = list(dict.fromkeys(p for a in arms.values() for p in a["median"]["phases"]))
    header = ["arm", "seconds", *(f"{p} s" for p in phases), *(f"× {b}" for b in bases), "peak GiB", *(f"× {b}" for b in bases)]
    rows = [header]
    for arm, summary in arms.items():
        median, ratio = summary["median"], summary["ratio"]
        rows.append(
            [
                arm,
                f"{median['seconds']:.3f}",
                *(f"{median['phases'][p]:.3f}" if p in median["phases"] else "" for p in phases),
                *(f"{ratio[b]['seconds']:.2f}" for b in bases),
                f"{median['peak_bytes'] / GIB:.3f}",
                *(f"{ratio[b]['peak_bytes']:.2f}" for b in bases),
            ]
        )
    return table(rows)


def targets(groups: dict) -> dict[str, dict]:
    """The performance targets' ratios, each with its limit: LoRA-SB's step against PEFT LoRA's
    and the floor's; each initialisation mode's peak against LoRA-SB's training step, its time
    against the plain passes plus its own SVD and its peak against the reference-style estimate's."""
    step, init = groups["training"], groups["initialisation"]
    median = lambda arms, arm, metric: arms[arm]["median"][metric]  # noqa: E731
    ratios = {
        "step seconds: lora_sb / lora": (median(step, "lora_sb", "seconds") / median(step, "lora", "seconds"), 1.0),
        "step seconds: lora_sb / floor": (median(step, "lora_sb", "seconds") / median(step, "floor", "seconds"), 1.15),
        "step peak: lora_sb / lora": (median(step, "lora_sb", "peak_bytes") / median(step, "lora", "peak_bytes"), 1.0),
    }
    for arm in (a for a in init if a.startswith("lora_sb[")):
        passes = median(init, "passes", "seconds") + init[arm]["median"]["phases"]["svd"]
        ratios[f"{arm} peak / lora_sb step peak"] = (median(init, arm, "peak_bytes") / median(step, "lora_sb", "peak_bytes"), 1.2)
        ratios[f"{arm} seconds / (passes + its svd)"] = (median(init, arm, "seconds") / passes, 1.5)
        ratios[f"{arm} peak / reference peak"] = (median(init, arm, "peak_bytes") / median(init, "reference", "peak_bytes"), 0.5)
    return {name: {"ratio": ratio, "limit": limit, "met": ratio <= limit} for name, (ratio, limit) in ratios.items()}


def targets_table(found: dict[str, dict]) -> str:
    rows = [["target", "ratio", "limit", "met"]]
    for name, t in found.items():
        rows.append([name, f"{t['ratio']:.2f}", f"≤ {t['limit']}", "yes" if t["met"] else "no"])
    return table(rows)


def report(result: dict) -> str:
    s, m = result["settings"], result["machine"]
    processor = m["gpu"] or f"{m['cpu']} ({m['cpu_count']} cores, {m['torch_threads']} torch threads)"
    lines = [
        f"model {s['model']['name_or_path']} ({s['model']['kind']}, {s['model']['dtype']}), targets {', '.join(s['model']['targets'])}",
        f"batch {s['batch']} × {s['seq_len']} tokens, rank {s['rank']}, {s['init_samples']} initialisation samples, device {s['device']}",
        f"machine: {processor}; torch {m['torch']}, transformers {m['transformers']}, peft {m['peft']}",
        f"medians of {s['repeats']} repeats after {s['warmup']} warm-up, arms interleaved; memory: {result['memory']}, GiB",
    ]
    for group, arms in result["groups"].items():
        lines += ["", TITLES[group], group_table(arms, BASES[group])]
    lines += ["", "targets", targets_table(result["targets"])]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    args = parse(argv)
    spec = resolve(args.model, args.targets)
    settings = Settings(spec, args.batch, args.seq_len, args.rank, args.init_samples, args.device, args.seed)
    result = {
        "settings": {**vars(settings), "model": vars(spec), "repeats": args.repeats, "warmup": args.warmup},
        "machine": machine(args.device),
        "memory": memory_measure(args.device),
        "groups": {group: summarise(run_group(group, settings, args.repeats, args.warmup), bases) for group, bases in BASES.items()},
    }
    result["targets"] = targets(result["groups"])
    print(report(result))
    if args.out is not None:
        args.out.write_text(json.dumps(result, indent=1) + "\n")
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
