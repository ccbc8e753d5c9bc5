"""The evaluation sets: local files (shared data, hand-written fixtures) or the Hub, prompts, graders."""

import datasets
import pytest

from lorasb.eval import EVAL_SETS, eval_set
from lorasb.eval.grading import ANSWER_VOCABULARY

FIXTURE_SETS = ["piqa", "siqa", "hellaswag", "winogrande"]  # tests/fixtures/commonsense/<folder>/test.json
SHARED_SETS = {"gsm8k": 1319, "math": 5000, "boolq": 3270, "arc_e": 2376, "arc_c": 1172, "obqa": 500}


def test_every_set_is_known():
    assert set(EVAL_SETS) == set(SHARED_SETS) | set(FIXTURE_SETS)
    assert {name: spec.max_new_tokens for name, spec in EVAL_SETS.items()} == {
        name: {"gsm8k": 256, "math": 512}.get(name, 32) for name in EVAL_SETS
    }
    with pytest.raises(ValueError, match="unknown evaluation set 'mmlu'; choose from: gsm8k, math, boolq"):
        eval_set("mmlu")


@pytest.mark.parametrize("name", SHARED_SETS)
def test_shared_sets_load_whole_with_a_gold_answer_in_every_row(name, shared_data):
    spec = eval_set(name)
    rows = spec.source.rows(shared_data)
    assert len(rows) == SHARED_SETS[name]
    golds = [spec.gold(row) for row in rows]
    unreadable = [i for i, gold in enumerate(golds) if gold is None]
    assert not unreadable, unreadable[:10]
    if name in ANSWER_VOCABULARY:
        assert set(golds) <= set(ANSWER_VOCABULARY[name])
    assert spec.source.rows(shared_data, limit=7) == rows[:7]


# (set, row of the shared test file, a generation written by hand, its grade). Golds: GSM8K row 0
# is 18 (Janet's ducks), row 1 is 3; MATH row 0 is 2, row 1 is \frac{1}{2}; BoolQ row 0 false;
# ARC-e row 0 answer1; ARC-c row 0 answer3; OBQA row 1 answer1.
GENERATIONS = [
    ("gsm8k", 0, "16 - 3 - 4 = 9 eggs are sold at $2 each: 9 * 2 = 18.\nThe answer is: 18", True),
    ("gsm8k", 0, "She sells 16 - 3 = 13 eggs, 13 * 2 = 26.\nThe answer is: $26.", False),
    ("gsm8k", 0, "The answer is: 9 eggs, which make $18.", False),  # the first number after the phrase counts
    ("gsm8k", 1, "2 + 2 / 2 = 3 bolts. The answer is 3.", True),
    ("math", 0, "The denominator factors as (x+3)(x-2), so there are two.\nThe answer is: 2", True),
    ("math", 0, "The answer is: 3", False),
    ("math", 1, "The ratio of areas is one half. The answer is: $\\dfrac12$.", True),
    ("math", 1, "So the answer is \\boxed{0.5}", True),  # the stated answer is a box: its content
    ("math", 1, "Half of the area: $\\boxed{0.5}$", False),  # never says "The answer is": no answer
    # run-on generations: graded on the first turn, before the "Instruction"/"Response" it invents
    ("gsm8k", 0, "16 - 3 - 4 = 9 eggs, 9 * 2 = 18.\nThe answer is: 18\n\n### Instruction:\nTom has 5 apples. How many?\n\n### Response: The answer is: 5", True),
    ("gsm8k", 1, "2 + 1 = 4 bolts.\nThe answer is: 4\n\n### Instruction:\nA robe takes 2 bolts... The answer is: 3", False),
    ("math", 1, "The answer is: \\frac{1}{3}\n### Response: The answer is: \\frac{1}{2}", False),
    ("boolq", 0, "the correct answer is false\n\n### Instruction:\nIs the sky green? the correct answer is true", True),
    ("arc_c", 0, "the correct answer is answer2\n### Response:\nthe correct answer is answer3", False),
    ("math", 1, "The answer is: 0.4999", False),
    ("boolq", 0, "the correct answer is false", True),
    ("boolq", 0, "the correct answer is true, not false", False),  # the first label counts
    ("arc_e", 0, "the correct answer is answer1", True),
    ("arc_c", 0, "Answer3", True),
    ("arc_c", 0, "answer30", False),
    ("obqa", 1, "the correct answer is answer2", False),
]


@pytest.mark.parametrize(("name", "row", "generation", "grade"), GENERATIONS)
def test_hand_written_generations_grade_as_known(name, row, generation, grade, shared_data):
    spec = eval_set(name)
    assert spec.correct(generation, spec.source.rows(shared_data, limit=row + 1)[row], False) is grade


@pytest.mark.parametrize("name", FIXTURE_SETS)
def test_fixture_sets_follow_the_llm_adapters_format(name, glue_fixtures):
    spec = eval_set(name)
    rows = spec.source.rows(glue_fixtures)
    assert len(rows) == 3
    for row in rows:
        assert row["answer"] in ANSWER_VOCABULARY[name]
        assert spec.extract(row["output"], False) == row["answer"]
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
