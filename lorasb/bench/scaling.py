"""``python -m lorasb.bench.scaling``: how LoRA-SB's costs grow with the sequence length, the rank
and the number of initialisation samples, each varied over ``--points`` values (a factor apart)
around the benchmark's settings while the others stay: the initialisation's seconds (gradient
pass and SVD apart) and peak memory, and a training step's seconds and peak memory."""

from __future__ import annotations

import json
import sys
from dataclasses import replace

from lorasb.bench.cli import parse, settings_of, table
from lorasb.bench.measure import memory_measure
from lorasb.bench.runner import run_group, summarise

GIB = 2**30
VARIED = {"seq_len": "--seq-len", "rank": "--rank", "init_samples": "--init-samples"}
FACTORS = (0.5, 1, 2, 4)
STEP, INIT = "lora_sb", "lora_sb[default]"


def point(settings, repeats: int, warmup: int) -> dict:
    """The medians of one setting: LoRA-SB's training step and its default initialisation."""
    step = summarise(run_group("training", settings, repeats, warmup, [STEP]), ())[STEP]["median"]
    init = summarise(run_group("initialisation", settings, repeats, warmup, [INIT]), ())[INIT]["median"]
    return {
        "step_seconds": step["seconds"],
        "step_peak_bytes": step["peak_bytes"],
        "init_seconds": init["seconds"],
        "gradient_seconds": init["phases"]["gradients"],
        "svd_seconds": init["phases"]["svd"],
        "init_peak_bytes": init["peak_bytes"],
    }


def main(argv: list[str] | None = None) -> dict:
    args = parse(argv, "python -m lorasb.bench.scaling", __doc__)
    base = settings_of(args)
    rows = []
    for key in VARIED:
        for factor in FACTORS:
            value = max(1, round(getattr(base, key) * factor))
            rows.append({"varied": key, "value": value, **point(replace(base, **{key: value}), args.repeats, args.warmup)})
            print(f"{key}={value}: {json.dumps(rows[-1])}", file=sys.stderr)
    header = ["varied", "value", "init s", "gradient pass s", "SVD s", "SVD share", "init peak GiB", "step s", "step peak GiB"]
    cells = [
        [r["varied"], str(r["value"]), f"{r['init_seconds']:.3f}", f"{r['gradient_seconds']:.3f}", f"{r['svd_seconds']:.3f}",
         f"{r['svd_seconds'] / r['init_seconds']:.0%}", f"{r['init_peak_bytes'] / GIB:.3f}", f"{r['step_seconds']:.3f}",
         f"{r['step_peak_bytes'] / GIB:.3f}"]
        for r in rows
    ]  # fmt: skip
    s = base
    print(f"model {s.model.name_or_path}; around batch {s.batch} × {s.seq_len} tokens, rank {s.rank}, {s.init_samples} init samples, "
          f"device {s.device}; medians of {args.repeats} after {args.warmup} warm-up; memory: {memory_measure(s.device)}")  # fmt: skip
    print(table([header, *cells]))
    result = {"settings": {**vars(base), "model": vars(base.model)}, "rows": rows}
    if args.out is not None:
        args.out.write_text(json.dumps(result, indent=1) + "\n")
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
