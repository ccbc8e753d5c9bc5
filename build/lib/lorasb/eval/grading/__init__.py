"""Grading generated answers: GSM8K numbers, MATH expressions, commonsense choice labels."""

from __future__ import annotations

from lorasb.eval.grading.choice import ANSWER_VOCABULARY, choice_correct, choice_prediction
from lorasb.eval.grading.gsm8k import gsm8k_correct, gsm8k_gold, gsm8k_prediction
from lorasb.eval.grading.math_answer import (
    last_boxed,
    math_correct,
    math_equivalent,
    math_prediction,
    normalize_math_answer,
)

__all__ = [
    "ANSWER_VOCABULARY",
    "choice_correct",
    "choice_prediction",
    "gsm8k_correct",
    "gsm8k_gold",
    "gsm8k_prediction",
    "last_boxed",
    "math_correct",
    "math_equivalent",
    "math_prediction",
    "normalize_math_answer",
]
