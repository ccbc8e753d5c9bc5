"""See and clear the gradient cache: ``python -m lorasb.cache [list | clear] [options]``.

Each entry is one key's folder (:mod:`lorasb.method.cache`): the summed gradient ΣG of one model,
data and set of init samples, in the forms estimated (``sign/``, ``sum/``), with LoRA-SB's
factors per rank. ``list`` shows each entry's model, data, samples, size and date (from its
``meta.json``) with the cache's folder and total size; ``clear`` removes every entry, or those
older than ``--older-than`` (e.g. ``30d``), or with ``--dry-run`` says what it would remove.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from lorasb.method.cache import KEY_LAYOUT, stored_layout
from lorasb.models import cache_dir


@dataclass
class Entry:
    """One key's folder and what its ``meta.json`` says of it."""

    folder: Path
    created: float  # seconds since the epoch
    size: int  # bytes
    meta: dict

    @property
    def readable(self) -> bool:
        return self.meta.get("layout") == KEY_LAYOUT

    def line(self) -> str:
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(self.created))
        forms = ",".join(sorted(p.parent.name for p in self.folder.glob("*/meta.json")))
        if self.meta.get("layout") is None:
            return f"{when}  {human(self.size):>9}  {self.folder.name}: incomplete (being written, or its run stopped)"
        if not self.readable:
            return f"{when}  {human(self.size):>9}  {self.folder.name}: written by an older lorasb (never read; clear it)"
        return f"{when}  {human(self.size):>9}  {self.meta.get('samples', '?'):>7}  {forms:<8}  {self.meta.get('model')}  |  {self.meta.get('data')}"


def human(size: float) -> str:
    for unit in ("B", "KB", "MB"):
        if size < 1000:
            return f"{size:.0f} B" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} GB"


def entries(root: Path) -> list[Entry]:
    """Every entry under ``root``, oldest first."""
    found = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else ():
        metas = [m for m in sorted(folder.glob("*/meta.json")) if stored_layout(m.parent) is not None]
        meta = json.loads(metas[0].read_text()) if metas else {}
        meta.setdefault("layout", 1 if metas else None)
        created = _created(meta) or folder.stat().st_mtime
        size = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
        found.append(Entry(folder, created, size, meta))
    return sorted(found, key=lambda e: e.created)


def _created(meta: dict) -> float | None:
    try:
        return time.mktime(time.strptime(meta["created"], "%Y-%m-%dT%H:%M:%S%z"))
    except (KeyError, ValueError):
        return None


def days(text: str) -> float:
    """``30d`` (or ``30``) as a number of days."""
    try:
        return float(text.removesuffix("d"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give days, e.g. 30d") from None


def show(root: Path) -> None:
    found = entries(root)
    print(f"gradient cache: {root} ({len(found)} entries, {human(sum(e.size for e in found))})")
    if found:
        print(f"{'created':<16}  {'size':>9}  {'samples':>7}  {'forms':<8}  model  |  data")
    for entry in found:
        print(entry.line())


def clear(root: Path, older_than: float | None, dry_run: bool) -> None:
    cutoff = time.time() - older_than * 86400 if older_than is not None else None
    chosen = [e for e in entries(root) if cutoff is None or e.created < cutoff]
    for entry in chosen:
        print(("would remove " if dry_run else "removing ") + entry.line())
        if not dry_run:
            shutil.rmtree(entry.folder)
    freed = human(sum(e.size for e in chosen))
    print(f"{'would free' if dry_run else 'freed'} {freed} in {len(chosen)} entries of {root}")


def parser() -> argparse.ArgumentParser:
    parse = argparse.ArgumentParser(
        prog="python -m lorasb.cache",
        description="List or clear the gradient cache (the summed gradients of earlier runs, reused by sweeps).",
    )
    parse.add_argument("action", nargs="?", choices=("list", "clear"), default="list", help="list (default) or clear the entries")
    parse.add_argument("--dir", type=Path, default=cache_dir() / "gradients", help="the cache (default: $LORASB_CACHE/gradients, else ~/.cache/lorasb/gradients)")
    parse.add_argument("--older-than", type=days, metavar="DAYS", help="clear only entries written more than this long ago, e.g. 30d")
    parse.add_argument("--dry-run", action="store_true", help="say what clear would remove, and remove nothing")
    return parse


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    if args.action == "clear":
        clear(args.dir, args.older_than, args.dry_run)
    else:
        show(args.dir)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
