"""The first-step estimate of two lorasb checkouts, each in processes of its own, in turn (A B A B …):
seconds of ``accumulate_gradients`` and its peak resident memory above the process's memory before it.

    python compare.py --model minilm --old /tmp/old_estimate --new . [--runs 5 --batches 4 --batch 8 --seq-len 128]

A child (``--child``) imports lorasb from ``--root``, loads the model, wraps the config's target
layers in LoRA-SB, and times one ``accumulate_gradients(form="sign")`` over seeded random batches
(after one unmeasured call on a single batch, which loads the kernels both paths share).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time


def child(args: argparse.Namespace) -> None:
    sys.path.insert(0, args.root)
    import torch

    from lorasb.bench.models import load, random_batches, resolve
    from lorasb.method.estimate import accumulate_gradients
    from lorasb.method.registry import build_method

    torch.manual_seed(0)
    spec = resolve(args.model)
    model = load(spec, "cpu")
    build_method("lora_sb", args.rank, {}).attach(model, spec.targets, spec.head)
    batches = random_batches(spec, model.config.vocab_size, args.batches, args.batch, args.seq_len, "cpu", seed=0)
    accumulate_gradients(model, batches[:1], form="sign")
    with open("/proc/self/clear_refs", "w") as refs:  # Linux: the peak (VmHWM) starts again from the current RSS
        refs.write("5")
    rss_before = status_kib("VmRSS")
    start = time.perf_counter()
    signs = accumulate_gradients(model, batches, form="sign")
    seconds = time.perf_counter() - start
    print(json.dumps({"seconds": seconds, "rise_mib": (status_kib("VmHWM") - rss_before) / 1024,
                      "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "layers": len(signs), "threads": torch.get_num_threads()}))


def status_kib(field: str) -> int:
    """A memory figure of this process from /proc/self/status, in KiB."""
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith(field + ":"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="minilm")
    parser.add_argument("--old", help="root of the checkout measured as A")
    parser.add_argument("--new", help="root of the checkout measured as B")
    parser.add_argument("--root", help=argparse.SUPPRESS)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--rank", type=int, default=16)
    parser.add_argument("--batches", type=int, default=4)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seq-len", type=int, default=128)
    args = parser.parse_args()
    if args.child:
        return child(args)
    shape = ["--model", args.model, "--rank", str(args.rank), "--batches", str(args.batches), "--batch", str(args.batch), "--seq-len", str(args.seq_len)]
    results: dict[str, list[dict]] = {"old": [], "new": []}
    for _ in range(args.runs):
        for name, root in (("old", args.old), ("new", args.new)):
            root = os.path.abspath(root)
            done = subprocess.run([sys.executable, __file__, "--child", "--root", root, *shape], capture_output=True, text=True,
                                  env={**os.environ, "PYTHONPATH": root}, cwd=root, check=True)
            results[name].append(json.loads(done.stdout.strip().splitlines()[-1]))
    print(f"{args.model}: {args.batches} batches of {args.batch} × {args.seq_len} tokens, rank {args.rank}, {args.runs} runs each, medians (min–max)")
    print("path  estimate s            peak rise MiB         process peak MiB (loading included)")
    for name, runs in results.items():
        cells = [f"{statistics.median(v):.3f} ({min(v):.3f}–{max(v):.3f})" for v in ([r[k] for r in runs] for k in ("seconds", "rise_mib", "peak_mib"))]
        print(f"{name:5} " + "  ".join(f"{c:20}" for c in cells))
    ratios = [n["seconds"] / o["seconds"] for o, n in zip(results["old"], results["new"])]
    print(f"new/old time, pair by pair: median {statistics.median(ratios):.3f} (min {min(ratios):.3f}, max {max(ratios):.3f})")


if __name__ == "__main__":
    main()
