"""python -m lorasb.evaluate: what it refuses, lenient grading, and the MATH set end to end."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

import lorasb.eval.evaluation
from lorasb.eval import evaluate_sets
from lorasb.eval.sets import eval_set

REPO = Path(__file__).resolve().parents[1]


def evaluate(*args: str, timeout: int = 900) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lorasb.evaluate", *args], cwd=REPO, capture_output=True, text=True, timeout=timeout)


def last_line(result: subprocess.CompletedProcess) -> str:
    return result.stderr.strip().splitlines()[-1]


# --- refusals -------------------------------------------------------------------------------------


@pytest.mark.slow  # a subprocess
def test_a_checkpoint_and_an_adapter_together_are_refused(tmp_path):
    (tmp_path / "adapter").mkdir()  # both exist, so only their combination is wrong
    (tmp_path / "adapter" / "adapter_config.json").write_text("{}")
    (tmp_path / "best.ckpt").write_bytes(b"")
    result = evaluate(f"checkpoint={tmp_path / 'best.ckpt'}", f"adapter={tmp_path / 'adapter'}", f"hydra.run.dir={tmp_path / 'eval'}")
    assert result.returncode == 1
    assert last_line(result) == "error: give checkpoint=<file> or adapter=<folder>, not both"
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "eval" / "eval.json").exists()


@pytest.mark.slow  # a subprocess
def test_an_adapter_folder_without_its_config_is_refused_by_name(tmp_path):
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_model.safetensors").write_bytes(b"")
    result = evaluate(f"adapter={adapter}", f"hydra.run.dir={tmp_path / 'eval'}")
    assert result.returncode == 1
    assert last_line(result) == f"error: adapter={adapter} is not a PEFT adapter folder (no adapter_config.json)"
    assert "Traceback" not in result.stderr


@pytest.mark.slow  # a subprocess
def test_nothing_to_score_is_refused(tmp_path):
    result = evaluate("eval.sets=[]", f"hydra.run.dir={tmp_path / 'eval'}")
    assert result.returncode == 1
    assert last_line(result) == "error: nothing to score: give eval.sets=[...], eval.file=<file> or harness.tasks=[...]"


@pytest.mark.slow  # a subprocess
def test_an_unknown_harness_task_is_refused_by_name(tmp_path):
    result = evaluate("eval.sets=[]", "harness.tasks=[no_such_task]", f"hydra.run.dir={tmp_path / 'eval'}")
    assert result.returncode == 1
    assert last_line(result) == (
        "error: lm-evaluation-harness has no task no_such_task; its names: python -m lm_eval ls tasks (or give harness.include_path)"
    )
    assert "Traceback" not in result.stderr


# --- lenient grading ------------------------------------------------------------------------------


def test_lenient_grading_takes_the_fallback_answers_and_names_its_sets(shared_data, tmp_path, monkeypatch):
    """Generations that give the gold answer without "The answer is" (GSM8K: as the last number,
    MATH: in \\boxed{}) score under lenient grading only, reported as <set>_lenient."""
    rows = {name: eval_set(name).source.rows(shared_data, 3) for name in ("gsm8k", "math")}
    unstated = {
        "gsm8k": [f"Adding these up gives {eval_set('gsm8k').gold(row):g}" for row in rows["gsm8k"]],
        "math": [f"So the result is $\\boxed{{{eval_set('math').gold(row)}}}$" for row in rows["math"]],
    }
    prompts_of = {tuple(eval_set(name).prompt(row) for row in rows[name]): name for name in rows}
    monkeypatch.setattr(lorasb.eval.evaluation, "generate", lambda model, tokenizer, prompts, *args, **kwargs: unstated[prompts_of[tuple(prompts)]])
    for grading, suffix, correct in (("reference", "", 0), ("lenient", "_lenient", 3)):
        out = tmp_path / grading
        results = evaluate_sets(None, None, ["gsm8k", "math"], shared_data, out, limit=3, grading=grading, progress=False)
        assert {key: (r["correct"], r["count"]) for key, r in results.items()} == {f"gsm8k{suffix}": (correct, 3), f"math{suffix}": (correct, 3)}
        written = json.loads((out / "eval.json").read_text())
        assert written["results"] == results and written["setup"]["grading"] == grading
        for name in rows:
            records = [json.loads(line) for line in (out / "predictions" / f"{name}{suffix}.jsonl").read_text().splitlines()]
            assert [r["correct"] for r in records] == [bool(correct)] * 3
            assert [r["prediction"] for r in records] == ([None] * 3 if grading == "reference" else [r["gold"] for r in records])


@pytest.mark.slow
def test_evaluate_command_with_lenient_grading_writes_lenient_figures(shared_data, tmp_path):
    result = evaluate("eval.sets=[gsm8k,math]", "eval.limit=2", "eval.max_new_tokens=16", "eval.grading=lenient",
                      f"data.dir={shared_data}", f"hydra.run.dir={tmp_path}")  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    written = json.loads((tmp_path / "eval.json").read_text())
    assert written["setup"]["grading"] == "lenient"
    assert set(written["results"]) == {"gsm8k_lenient", "math_lenient"}
    for key, name in (("gsm8k_lenient", "gsm8k"), ("math_lenient", "math")):
        spec, rows = eval_set(name), eval_set(name).source.rows(shared_data, 2)
        records = [json.loads(line) for line in (tmp_path / "predictions" / f"{key}.jsonl").read_text().splitlines()]
        assert [r["gold"] for r in records] == [spec.gold(row) for row in rows]
        assert [r["prediction"] for r in records] == [spec.extract(r["generation"], True) for r in records]
        assert [r["correct"] for r in records] == [spec.correct(r["generation"], row, True) for r, row in zip(records, rows)]
        assert written["results"][key]["count"] == 2
        assert written["results"][key]["correct"] == sum(r["correct"] for r in records)
    assert not (tmp_path / "predictions" / "gsm8k.jsonl").exists()


# --- MATH end to end ------------------------------------------------------------------------------


@pytest.mark.slow
def test_the_math_set_end_to_end(shared_data, tmp_path):
    result = evaluate("model=smollm2_135m", "eval.sets=[math]", "eval.limit=3", "eval.max_new_tokens=24",
                      f"data.dir={shared_data}", f"hydra.run.dir={tmp_path}")  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    written = json.loads((tmp_path / "eval.json").read_text())
    assert set(written) == {"setup", "results"}
    setup = written["setup"]
    assert setup["sets"] == ["math"] and setup["limit"] == 3 and setup["max_new_tokens"] == {"math": 24}
    assert setup["grading"] == "reference" and setup["model"]["adapter"] is None and setup["model"]["checkpoint"] is None
    assert set(written["results"]) == {"math"}
    figures = written["results"]["math"]
    assert set(figures) == {"accuracy", "correct", "count", "seconds", "seconds_per_example"}
    spec, rows = eval_set("math"), eval_set("math").source.rows(shared_data, 3)
    records = [json.loads(line) for line in (tmp_path / "predictions" / "math.jsonl").read_text().splitlines()]
    assert [r["index"] for r in records] == [0, 1, 2]
    assert [r["prompt"] for r in records] == [spec.prompt(row) for row in rows]
    assert [r["gold"] for r in records] == [spec.gold(row) for row in rows] == ["2", "\\frac{1}{2}", "5"]  # the first \\boxed{} answers
    assert all(r["generation"] for r in records)
    # graded: each record's grade is the MATH grader's verdict on its generation
    assert [r["prediction"] for r in records] == [spec.extract(r["generation"], False) for r in records]
    assert [r["correct"] for r in records] == [spec.correct(r["generation"], row, False) for r, row in zip(records, rows)]
    assert figures["count"] == 3 and figures["correct"] == sum(r["correct"] for r in records)
    assert figures["accuracy"] == figures["correct"] / 3
    assert "math: accuracy " in result.stdout + result.stderr
