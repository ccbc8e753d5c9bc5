"""The evaluation sets of the instruction-tuned models: where they live, their prompts, their graders.

GSM8K and MATH are answered step by step (the prompt's response opens with "Let's think step
by step.") and graded on the final answer; the eight commonsense sets are answered with a
word of their answer vocabulary (``true``, ``solution2``, ``answer3``, ``ending1``, ``option2``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from lorasb.eval.grading import (
    choice_correct,
    choice_prediction,
    gsm8k_correct,
    gsm8k_gold,
    gsm8k_prediction,
    last_boxed,
    math_correct,
    math_prediction,
)
from lorasb.data.prompts import STEP_BY_STEP, alpaca_prompt

from lorasb.data.instruction import LLM_ADAPTERS
from lorasb.data.sources import JsonSource


@dataclass(frozen=True)
class EvalSet:
    """One evaluation set.

    ``prompt(row)`` is what the model continues; ``extract(generation)`` its answer;
    ``gold(row)`` the reference answer; ``correct(generation, row)`` the grade.
    """

    name: str
    source: JsonSource
    max_new_tokens: int
    prompt: Callable[[dict[str, Any]], str]
    extract: Callable[[str], Any]
    gold: Callable[[dict[str, Any]], Any]
    correct: Callable[[str, dict[str, Any]], bool]


def _gsm8k() -> EvalSet:
    return EvalSet(
        name="gsm8k",
        source=JsonSource("GSM8K", "gsm8k/test.jsonl", "openai/gsm8k", configs=("main",), split="test"),
        max_new_tokens=256,
        prompt=lambda row: alpaca_prompt(row["question"], lead=STEP_BY_STEP),
        extract=gsm8k_prediction,
        gold=lambda row: gsm8k_gold(row["answer"]),
        correct=lambda text, row: gsm8k_correct(text, row["answer"], round_prediction=True),
    )


MATH_SUBJECTS = (
    "algebra",
    "counting_and_probability",
    "geometry",
    "intermediate_algebra",
    "number_theory",
    "prealgebra",
    "precalculus",
)


def _math() -> EvalSet:
    return EvalSet(
        name="math",
        source=JsonSource("MATH", "math/test.jsonl", "EleutherAI/hendrycks_math", configs=MATH_SUBJECTS, split="test"),
        max_new_tokens=512,
        prompt=lambda row: alpaca_prompt(row["problem"], lead=STEP_BY_STEP),
        extract=math_prediction,
        gold=lambda row: last_boxed(row["solution"]),
        correct=lambda text, row: math_correct(text, row["solution"]),
    )


# name → the LLM-Adapters folder of its test.json
COMMONSENSE_FOLDERS = {
    "boolq": "boolq",
    "piqa": "piqa",
    "siqa": "social_i_qa",
    "hellaswag": "hellaswag",
    "winogrande": "winogrande",
    "arc_e": "ARC-Easy",
    "arc_c": "ARC-Challenge",
    "obqa": "openbookqa",
}


def _commonsense(name: str) -> EvalSet:
    folder = COMMONSENSE_FOLDERS[name]
    return EvalSet(
        name=name,
        source=JsonSource(name, f"commonsense/{folder}/test.json", f"{LLM_ADAPTERS}/dataset/{folder}/test.json"),
        max_new_tokens=32,
        prompt=lambda row: alpaca_prompt(row["instruction"], row.get("input") or ""),
        extract=partial(choice_prediction, set_name=name),
        gold=lambda row: row["answer"],
        correct=lambda text, row: choice_correct(text, row["answer"], name),
    )


EVAL_SETS: dict[str, EvalSet] = {
    "gsm8k": _gsm8k(),
    "math": _math(),
    **{name: _commonsense(name) for name in COMMONSENSE_FOLDERS},
}


def eval_set(name: str) -> EvalSet:
    if name not in EVAL_SETS:
        raise ValueError(f"unknown evaluation set {name!r}; choose from: {', '.join(EVAL_SETS)}")
    return EVAL_SETS[name]
