"""README.md: a page a newcomer reads in minutes, whose Python example exports what it trained,
and whose first bash block CI runs exactly. (Every page's blocks and links: tests/test_docs.py.)"""

import re

import pytest
import torch

from helpers.markdown_docs import README, REPO, blocks_of, run_python_block

TEXT = README.read_text()
MAX_LINES = 250


def readme_commands() -> list[str]:
    """The commands of the README's first bash block (its comment lines left out)."""
    block = re.search(r"^```bash\n(.*?)^```", TEXT, re.MULTILINE | re.DOTALL).group(1)
    return [line for line in block.splitlines() if line.strip() and not line.startswith("#")]


def test_readme_has_at_most_250_lines():
    lines = len(TEXT.splitlines())
    assert lines <= MAX_LINES, f"README.md has {lines} lines; reference material goes beside what it describes"


def test_readme_has_python_examples():
    assert blocks_of(README, "python")


@pytest.mark.slow
def test_the_library_example_exports_the_trained_head(tmp_path_factory):
    """The PEFT adapter holds the cores and the head: loaded on a fresh model (whose new head is
    random) it reproduces the merged model's outputs."""
    from peft import PeftModel
    from transformers import AutoModelForSequenceClassification

    scope = run_python_block(README, 0, tmp_path_factory)
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
