"""The bench commands' shared options and plain-text tables."""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

import lorasb.bench
from lorasb.bench.arms import DEFAULT_GROUPS, GROUPS, Settings
from lorasb.bench.models import resolve


def parse(argv: list[str] | None, prog: str = "python -m lorasb.bench", description: str | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=prog, description=description or lorasb.bench.__doc__)
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
    parser.add_argument(
        "--groups", nargs="+", choices=list(GROUPS), help=f"what to measure (default: {' '.join(DEFAULT_GROUPS)}; quantized: causal LMs, needs bitsandbytes)"
    )
    return parser.parse_args(argv)


def settings_of(args: argparse.Namespace) -> Settings:
    """What every arm shares, from the parsed options."""
    spec = resolve(args.model, args.targets)
    return Settings(spec, args.batch, args.seq_len, args.rank, args.init_samples, args.device, args.seed)


def table(rows: list[list[str]]) -> str:
    """``rows`` (the first one the header) aligned: the first column left, the others right."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths))).rstrip()
        for row in rows
    )
