"""README.md: its Python examples run as written, and CI runs exactly its two commands."""

import os
import re
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text()
PYTHON_BLOCKS = re.findall(r"^```python\n(.*?)^```", README, re.MULTILINE | re.DOTALL)


def readme_commands() -> list[str]:
    """The commands of the README's first bash block (its comment lines left out)."""
    block = re.search(r"^```bash\n(.*?)^```", README, re.MULTILINE | re.DOTALL).group(1)
    return [line for line in block.splitlines() if line.strip() and not line.startswith("#")]


def test_readme_has_python_examples():
    assert PYTHON_BLOCKS


@pytest.fixture(scope="module")
def executed(tmp_path_factory) -> dict[int, dict]:
    """Each Python block of the README, run once in an empty folder: the names it defined."""
    cache: dict[int, dict] = {}

    def run(number: int) -> dict:
        if number not in cache:
            folder = tmp_path_factory.mktemp(f"readme_block_{number + 1}")
            cwd = os.getcwd()
            os.chdir(folder)
            try:
                scope = {"__name__": "__readme__"}
                exec(compile(PYTHON_BLOCKS[number], f"README.md python block {number + 1}", "exec"), scope)
            finally:
                os.chdir(cwd)
            cache[number] = scope | {"folder": folder}
        return cache[number]

    return run


@pytest.mark.parametrize("number", range(len(PYTHON_BLOCKS)))
def test_python_block_runs_as_written(number, executed):
    executed(number)


def test_the_library_example_exports_the_trained_head(executed):
    """The PEFT adapter holds the cores and the head: loaded on a fresh model (whose new head is
    random) it reproduces the merged model's outputs."""
    from peft import PeftModel
    from transformers import AutoModelForSequenceClassification

    scope = executed(0)
    inputs = {key: value for key, value in scope["batch"].items() if key != "labels"}
    base = AutoModelForSequenceClassification.from_pretrained(scope["path"], num_labels=2)
    loaded = PeftModel.from_pretrained(base, scope["folder"] / "adapter").eval()
    with torch.no_grad():
        expected = scope["merged"].eval()(**inputs).logits
        torch.testing.assert_close(loaded(**inputs).logits, expected, rtol=1e-4, atol=1e-5)
    assert not any("lora" in name for name, _ in scope["merged"].named_parameters())


def test_ci_runs_exactly_the_readme_commands_in_a_fresh_virtual_environment():
    script = (REPO / ".ci" / "run").read_text().splitlines()
    commands = readme_commands()
    assert len(commands) == 2
    venv = script.index("python -m venv .venv && . .venv/bin/activate")
    assert [line for line in script[venv + 1:] if line.strip() and not line.startswith("#")] == commands
    assert "experiment=quickstart" in commands[0] and "data.dir" not in commands[0]
