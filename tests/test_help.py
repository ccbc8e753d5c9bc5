"""The command lines' ``--help`` and start-up: what they say, and that no heavy library loads for them."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

from lorasb.config import group_options
from lorasb.config.choices import model_kind
from lorasb.eval.sets import EVAL_SETS

pytestmark = pytest.mark.slow  # each test starts a Python process

REPO = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "lightning", "transformers", "datasets")
TRAINING_GROUPS = ("model", "task", "method", "trainer", "logger", "experiment", "callbacks", "debug", "hparams_search")

# Runs an entry point as `python -m` would, then prints which heavy libraries it imported.
PROBE = """
import runpy, sys
sys.argv = [{module!r}, *{args!r}]
try:
    runpy.run_module({module!r}, run_name="__main__", alter_sys=True)
finally:
    print("imported:", [name for name in {heavy!r} if name in sys.modules])
"""


def start(module: str, *args: str) -> tuple[subprocess.CompletedProcess, str]:
    """Run ``python -m module args``; the output, and the heavy libraries it imported."""
    code = PROBE.format(module=module, args=list(args), heavy=HEAVY)
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    imported = re.search(r"^imported: (.*)$", result.stdout, re.MULTILINE)
    assert imported, result.stdout + result.stderr
    return result, imported.group(1)


def listed(text: str, label: str) -> list[str]:
    """The comma-separated options on the help line ``<label>: a, b, c``."""
    line = re.search(rf"^{re.escape(label)}: (.*)$", text, re.MULTILINE)
    assert line, f"no '{label}:' line in:\n{text}"
    return line.group(1).removeprefix("a list of ").split(", ")


@pytest.fixture(scope="module")
def train_help():
    return start("lorasb.train", "--help")


def test_train_help_opens_with_what_it_does_and_examples(train_help):
    result, imported = train_help
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("python -m lorasb.train: fine-tune a pretrained model with LoRA-SB")
    assert "python -m lorasb.train experiment=quickstart " in result.stdout
    assert imported == "[]"


def test_train_help_lists_the_choices_and_hides_the_family_group(train_help):
    text = train_help[0].stdout
    for group in TRAINING_GROUPS:
        assert listed(text, group) == group_options(group)
    choices = text.split("== Choices")[1].split("== Keys")[0]
    assert not re.search(r"^(family|paths|hydra):", choices, re.MULTILINE)  # pulled in by other configs, never chosen


def test_evaluate_help_lists_the_sets_and_no_training_group():
    result, imported = start("lorasb.evaluate", "--help")
    assert result.returncode == 0, result.stderr
    text = result.stdout
    assert text.startswith("python -m lorasb.evaluate: score a causal language model")
    assert listed(text, "eval.sets") == list(EVAL_SETS)
    assert listed(text, "model") == [name for name in group_options("model") if model_kind(name) == "causal_lm"]
    assert not re.search(r"^(task|method|trainer|logger|experiment|family)[:/]", text, re.MULTILINE)
    assert imported == "[]"


def test_a_bad_choice_fails_before_any_heavy_import():
    result, imported = start("lorasb.train", "model=foo")
    assert "unknown model 'foo'; choose one of:" in result.stdout + result.stderr
    assert imported == "[]"
