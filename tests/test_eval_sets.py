"""The evaluation sets: local files (shared data, hand-written fixtures) or the Hub, prompts, graders."""

import datasets
import pytest

from lorasb.data import EVAL_SETS, eval_set
from lorasb.grading import ANSWER_VOCABULARY

FIXTURE_SETS = ["piqa", "siqa", "hellaswag", "winogrande"]  # tests/fixtures/commonsense/<folder>/test.json
SHARED_SETS = {"gsm8k": 1319, "math": 5000, "boolq": 3270, "arc_e": 2376, "arc_c": 1172, "obqa": 500}


def test_every_set_is_known():
    assert set(EVAL_SETS) == set(SHARED_SETS) | set(FIXTURE_SETS)
    assert {name: spec.max_new_tokens for name, spec in EVAL_SETS.items()} == {
        name: {"gsm8k": 256, "math": 512}.get(name, 32) for name in EVAL_SETS
    }
    with pytest.raises(ValueError, match="unknown evaluation set 'mmlu'; choose from: gsm8k, math, boolq"):
        eval_set("mmlu")


def reference_answer(name: str, row: dict) -> str:
    """What a perfect model would write: the reference solution, stated the way the graders read it."""
    if name == "gsm8k":
        return row["answer"]  # no "The answer is": the grader falls back to the last number
    if name == "math":  # MATH solutions may say "the answer is" mid-text; the stated answer comes last
        return row["solution"] + "\nThe answer is: " + " ".join(eval_set("math").gold(row).split())
    return row["output"]


@pytest.mark.parametrize("name", SHARED_SETS)
def test_shared_sets_load_whole_and_their_references_grade_correct(name, shared_data):
    spec = eval_set(name)
    rows = spec.source.rows(shared_data)
    assert len(rows) == SHARED_SETS[name]
    graded = [spec.correct(reference_answer(name, row), row) for row in rows]
    assert all(graded), [i for i, ok in enumerate(graded) if not ok][:10]
    assert spec.source.rows(shared_data, limit=7) == rows[:7]


@pytest.mark.parametrize("name", SHARED_SETS)
def test_a_wrong_answer_grades_wrong(name, shared_data):
    spec = eval_set(name)
    row = spec.source.rows(shared_data, limit=1)[0]
    if name in ("gsm8k", "math"):
        assert not spec.correct("The answer is: 123456789", row)
    else:
        others = [label for label in ANSWER_VOCABULARY[name] if label != row["answer"]]
        assert not spec.correct(f"the correct answer is {others[0]}", row)


@pytest.mark.parametrize("name", FIXTURE_SETS)
def test_fixture_sets_follow_the_llm_adapters_format(name, glue_fixtures):
    spec = eval_set(name)
    rows = spec.source.rows(glue_fixtures)
    assert len(rows) == 3
    for row in rows:
        assert row["answer"] in ANSWER_VOCABULARY[name]
        assert spec.correct(row["output"], row) and spec.extract(row["output"]) == row["answer"]
        prompt = spec.prompt(row)
        assert row["instruction"] in prompt and prompt.endswith("### Response:\n")


def test_math_prompts_think_step_by_step(shared_data):
    for name in ("gsm8k", "math"):
        spec = eval_set(name)
        row = spec.source.rows(shared_data, limit=1)[0]
        assert spec.prompt(row).endswith("### Response: Let's think step by step.")
    assert eval_set("math").gold({"solution": "so $x=\\boxed{\\frac{1}{2}}$."}) == "\\frac{1}{2}"
    assert eval_set("gsm8k").gold({"answer": "3 + 4 = 7\n#### 7"}) == 7.0


def test_missing_local_file_names_the_layout(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"commonsense/social_i_qa/test\.json"):
        eval_set("siqa").source.rows(tmp_path)


def test_hub_sources(monkeypatch):
    calls = []

    def load_dataset(path, name=None, split=None, data_files=None, **kwargs):
        calls.append((path, name, split, data_files))
        return datasets.Dataset.from_list([{"question": "1 + 1?", "answer": "#### 2"}])

    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    assert eval_set("gsm8k").source.rows(None) == [{"question": "1 + 1?", "answer": "#### 2"}]
    eval_set("piqa").source.rows(None)
    math_rows = eval_set("math").source.rows(None)
    assert calls[0] == ("openai/gsm8k", "main", "test", None)
    assert calls[1] == ("json", None, "train", "https://raw.githubusercontent.com/AGI-Edgerunners/LLM-Adapters/main/dataset/piqa/test.json")
    assert [call[1] for call in calls[2:]] == list(eval_set("math").source.configs) and len(math_rows) == 7


def test_unreachable_hub_points_to_data_dir(monkeypatch):
    def offline(*args, **kwargs):
        raise ConnectionError("no network")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(RuntimeError, match=r"could not download hellaswag .*<root>/commonsense/hellaswag/test\.json"):
        eval_set("hellaswag").source.rows(None)
