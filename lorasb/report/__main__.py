"""``python -m lorasb.report``: read the runs, write the report, print ``report.md``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import lorasb.report


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m lorasb.report",
        description=lorasb.report.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("folders", nargs="+", type=Path, help="multirun or runs folders (every metrics.json under them), or an earlier report's report_runs.csv")
    parser.add_argument("--out", type=Path, help="where the report goes (default: the folder, when one is given)")
    parser.add_argument("--compare", default="lora_sb", help="the method compared, seed by seed (default: lora_sb)")
    parser.add_argument("--against", default="lora", help="the reference method it is compared against (default: lora)")
    parser.add_argument("--confidence", type=float, default=0.95, help="level of the confidence intervals (default: 0.95)")
    args = parser.parse_args(argv)
    if len(args.folders) > 1 and args.out is None:
        parser.error("several folders: say where the report goes with --out")
    if not 0 < args.confidence < 1:
        parser.error(f"--confidence {args.confidence}: give a level between 0 and 1, e.g. 0.95")
    return args


def main(argv: list[str]) -> int:
    args = parse(argv)
    try:
        paths = lorasb.report.write_report(args.folders, args.out, args.compare, args.against, args.confidence)
    except FileNotFoundError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(paths[0].read_text(), end="")
    print("written: " + ", ".join(str(p) for p in paths))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
