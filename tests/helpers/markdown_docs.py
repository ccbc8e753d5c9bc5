"""The repository's Markdown pages: which there are, their fenced blocks, their links, and their
Python blocks run once each (shared by tests/test_docs.py and tests/test_readme.py)."""

import os
import re
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"

# A fenced block: its info string and its text, fences at the start of a line.
FENCE = re.compile(r"^```([^\n`]*)\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)
# Info strings a block may carry: python and bash run in the tests, text and console are shown only.
RUNNABLE = ("python", "bash")
SHOWN = ("text", "console")


def markdown_files() -> list[Path]:
    """Every Markdown page of the repository that git tracks or would track (tests/ left out)."""
    try:
        listed = subprocess.run(
            ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z", "--", "*.md"],
            cwd=REPO, capture_output=True, text=True, check=True, timeout=60,
        ).stdout.split("\0")
        paths = [REPO / name for name in listed if name]
    except (OSError, subprocess.SubprocessError):  # no git, or not a checkout: what .gitignore keeps
        paths = [
            path for path in REPO.rglob("*.md")
            if not any(part.startswith(".") or part.endswith(".egg-info") or part == "build"
                       for part in path.relative_to(REPO).parts)
            and (path.relative_to(REPO).parts[0] != "outputs"
                 or path.relative_to(REPO).parts[1] in ("README.md", "measured"))
        ]
    return sorted(
        path for path in paths
        if path.is_file() and path.relative_to(REPO).parts[0] != "tests"
    )


def name_of(path: Path) -> str:
    return path.relative_to(REPO).as_posix()


def blocks(path: Path) -> list[tuple[str, str]]:
    """The fenced blocks of a page, in order: (info string, text)."""
    return [(info.strip(), text) for info, text in FENCE.findall(path.read_text())]


def blocks_of(path: Path, info: str) -> list[str]:
    return [text for kind, text in blocks(path) if kind == info]


_executed: dict[tuple[Path, int], dict] = {}


def run_python_block(path: Path, number: int, tmp_path_factory) -> dict:
    """Run the page's ``number``-th Python block once, as written, in an empty folder of its own;
    the names it defined, and ``folder``."""
    key = (path, number)
    if key not in _executed:
        code = blocks_of(path, "python")[number]
        folder = tmp_path_factory.mktemp(re.sub(r"\W", "_", f"{name_of(path)}_{number + 1}"))
        cwd = os.getcwd()
        os.chdir(folder)
        try:
            scope = {"__name__": "__markdown__"}
            exec(compile(code, f"{name_of(path)} python block {number + 1}", "exec"), scope)
        finally:
            os.chdir(cwd)
        _executed[key] = scope | {"folder": folder}
    return _executed[key]


def slug(heading: str) -> str:
    """The anchor GitHub gives a heading: its text without Markdown, lower case, punctuation
    dropped, spaces as hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link reads as its text
    text = text.replace("`", "").strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """The anchors of a page's headings (repeated headings get -1, -2, … as on GitHub)."""
    text = FENCE.sub("", path.read_text())
    found: set[str] = set()
    seen: dict[str, int] = {}
    for heading in re.findall(r"^#{1,6}[ \t]+(.+?)[ \t]*#*[ \t]*$", text, re.MULTILINE):
        base = slug(heading)
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return found


LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")


def links(path: Path) -> list[str]:
    """The targets of a page's Markdown links and images, code blocks and code spans left out."""
    text = FENCE.sub("", path.read_text())
    text = re.sub(r"^(?: {4}|\t).*$", "", text, flags=re.MULTILINE)  # indented code blocks
    text = re.sub(r"`[^`]*`", "", text)
    return LINK.findall(text)
