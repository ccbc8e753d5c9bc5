"""Every Markdown page of the repository: its Python and bash blocks run as written, its other
blocks say they are shown only, and its relative links point to files that exist."""

import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from helpers.markdown_docs import (
    README, REPO, RUNNABLE, SHOWN, anchors, blocks, blocks_of, links, markdown_files, name_of,
    run_python_block,
)

PAGES = markdown_files()


def numbered(info: str, skip: dict[Path, int] | None = None) -> list:
    """(page, number) of every block with this info string; ``skip``: blocks run elsewhere."""
    return [
        pytest.param(path, number, id=f"{name_of(path)}-{number + 1}")
        for path in PAGES
        for number in range(len(blocks_of(path, info)))
        if number >= (skip or {}).get(path, 0)
    ]


def test_the_pages_are_found():
    names = [name_of(path) for path in PAGES]
    for page in ("README.md", "outputs/README.md", "outputs/measured/compare_minilm/README.md",
                 "lorasb/method/README.md", "lorasb/lightning/README.md"):
        assert page in names
    assert not [name for name in names if name.startswith("tests/")]


@pytest.mark.parametrize("path", PAGES, ids=name_of)
def test_every_fenced_block_is_runnable_or_marked_as_shown(path):
    """A block is ```python or ```bash (the tests run it) or ```text / ```console (shown only)."""
    unknown = [info or "(none)" for info, _ in blocks(path) if info not in RUNNABLE + SHOWN]
    assert not unknown, f"{name_of(path)}: blocks marked {unknown}; use one of {RUNNABLE + SHOWN}"


@pytest.mark.slow
@pytest.mark.parametrize(("path", "number"), numbered("python"))
def test_python_block_runs_as_written(path, number, tmp_path_factory):
    run_python_block(path, number, tmp_path_factory)


@pytest.fixture(scope="module")
def python_on_path(tmp_path_factory) -> dict[str, str]:
    """An environment whose ``python`` is this interpreter and whose lorasb is this checkout."""
    folder = tmp_path_factory.mktemp("python_on_path")
    wrapper = folder / "python"
    wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    env = dict(os.environ)
    env["PATH"] = f"{folder}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return env


# The README's first bash block is the set-up, which CI runs in a fresh virtual environment
# (tests/test_readme.py checks that); every other bash block runs here. The pages write to
# /tmp/; each run here writes to a folder of its own instead, so that no earlier run's files
# (a checkpoint it would resume) are found there.
@pytest.mark.slow
@pytest.mark.parametrize(("path", "number"), numbered("bash", skip={README: 1}))
def test_bash_block_runs_from_the_repository_root(path, number, python_on_path, tmp_path):
    script = blocks_of(path, "bash")[number].replace("/tmp/", f"{tmp_path}/")
    result = subprocess.run(
        ["bash", "-e", "-o", "pipefail", "-c", script],
        cwd=REPO, env=python_on_path, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, f"{name_of(path)} bash block {number + 1}:\n{script}\n{result.stdout}\n{result.stderr}"


@pytest.mark.parametrize("path", PAGES, ids=name_of)
def test_relative_links_point_to_existing_files(path):
    broken = []
    for target in links(path):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.IGNORECASE):  # https:, mailto:
            continue
        file, _, anchor = target.partition("#")
        linked = (path.parent / file).resolve() if file else path
        if not linked.exists():
            broken.append(f"{target}: no such file")
        elif anchor and linked.suffix == ".md" and anchor not in anchors(linked):
            broken.append(f"{target}: no heading #{anchor} in {name_of(linked)}")
    assert not broken, f"{name_of(path)}: " + "; ".join(broken)


# Pages state what the code does now; how it came to be is the git log's business.
HISTORY = ("as it was before", "works as before", "used to be", "was replaced", "earlier version",
           "older version", "no longer")


@pytest.mark.parametrize("path", PAGES, ids=name_of)
def test_no_page_narrates_an_earlier_version(path):
    text = " ".join(path.read_text().lower().split())
    assert not [phrase for phrase in HISTORY if phrase in text]
