"""``python -m lorasb.bench``: measure, print the tables, write the JSON (``--out``)."""

from __future__ import annotations

import json
import sys

from lorasb.bench.arms import INIT_MODES, NEW_TOKENS, groups_of
from lorasb.bench.cli import parse, settings_of, table
from lorasb.bench.measure import machine, memory_measure
from lorasb.bench.runner import run_group, summarise

GIB = 2**30
BASES = {
    "training": ("floor", "lora"),
    "evaluation": ("merged",),
    "generation": ("merged",),
    "initialisation": ("passes", "reference"),
    "quantized": ("lora_sb[float]", "lora[float]"),
}
TITLES = {
    "training": "training step: forward + backward + AdamW step on one batch (floor: forward + backward)",
    "evaluation": "evaluation: a forward pass on one batch without gradients, adapters as trained or merged",
    "generation": f"generation: {NEW_TOKENS} new tokens greedily after each prompt of one batch, adapters as trained or merged",
    "initialisation": "initialisation: gradient pass over the initialisation samples, then the SVD",
    "quantized": "training step on a quantized base: forward + backward + AdamW step on one batch, float, nf4 and int8 bases",
}


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
    against the same passes plus its own SVD (k layer groups pass k times: k × the plain
    passes) and its peak against the reference-style estimate's."""
    step, init = groups["training"], groups["initialisation"]
    median = lambda arms, arm, metric: arms[arm]["median"][metric]  # noqa: E731
    ratios = {
        "step seconds: lora_sb / lora": (median(step, "lora_sb", "seconds") / median(step, "lora", "seconds"), 1.0),
        "step seconds: lora_sb / floor": (median(step, "lora_sb", "seconds") / median(step, "floor", "seconds"), 1.15),
        "step peak: lora_sb / lora": (median(step, "lora_sb", "peak_bytes") / median(step, "lora", "peak_bytes"), 1.0),
    }
    for mode, options in INIT_MODES.items():
        arm, k = f"lora_sb[{mode}]", options.layer_groups
        passes = k * median(init, "passes", "seconds") + init[arm]["median"]["phases"]["svd"]
        ratios[f"{arm} peak / lora_sb step peak"] = (median(init, arm, "peak_bytes") / median(step, "lora_sb", "peak_bytes"), 1.2)
        ratios[f"{arm} seconds / ({f'{k} × ' if k > 1 else ''}passes + its svd)"] = (median(init, arm, "seconds") / passes, 1.5)
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
    if "targets" in result:
        lines += ["", "targets", targets_table(result["targets"])]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    args = parse(argv)
    settings = settings_of(args)
    result = {
        "settings": {**vars(settings), "model": vars(settings.model), "repeats": args.repeats, "warmup": args.warmup},
        "machine": machine(args.device),
        "memory": memory_measure(args.device),
        "groups": {
            group: summarise(run_group(group, settings, args.repeats, args.warmup), BASES[group])
            for group in groups_of(settings.model.kind, args.groups)
        },
    }
    if {"training", "initialisation"} <= set(result["groups"]):
        result["targets"] = targets(result["groups"])
    print(report(result))
    if args.out is not None:
        args.out.write_text(json.dumps(result, indent=1) + "\n")
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
