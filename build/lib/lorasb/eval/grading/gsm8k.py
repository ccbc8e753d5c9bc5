"""GSM8K grading: the gold number after ``####`` against the number a model states.

The prediction is the first number after the LAST "The answer is" (colon optional, any
case), as in the MetaMath evaluation. Unlike MetaMath, a generation that never says
"The answer is" is not scored as unanswered: its last number is taken instead.

A prediction is correct iff ``|prediction - gold| < GSM8K_TOLERANCE`` (1e-4). MetaMath instead rounds the
prediction to an integer first (Python's ``round``, half to even), which also accepts e.g.
17.5 or 18.4 for a gold of 18; ``round_prediction=True`` reproduces that.
"""

from __future__ import annotations

import re
from fractions import Fraction

from lorasb.eval.grading.answers import GSM8K_TOLERANCE, stated_answer

# An optional minus (not a hyphen inside a word or range such as "3-4"), an optional "$",
# digits with optional thousands commas and decimals (or a bare ".5"), an optional "/den".
_NUMBER = re.compile(
    r"(?P<minus>(?<![\w)])-)?\$?"
    r"(?P<value>\d+(?:,\d{3})*(?:\.\d+)?|\.\d+)"
    r"(?:/(?P<denominator>\d+))?"
)


def _to_float(match: re.Match[str]) -> float | None:
    """The value of a ``_NUMBER`` match; None for a zero denominator."""
    value = Fraction(match["value"].replace(",", ""))
    if match["denominator"] is not None:
        denominator = int(match["denominator"])
        if denominator == 0:
            return None
        value /= denominator
    return float(-value if match["minus"] else value)


def gsm8k_gold(answer: str) -> float | None:
    """The number after the last ``####`` of a GSM8K answer, e.g. ``"#### 1,234"`` → 1234.0."""
    _, marker, tail = answer.rpartition("####")
    match = _NUMBER.search(tail) if marker else None
    return _to_float(match) if match else None


def gsm8k_prediction(text: str) -> float | None:
    """The number a generation gives as its answer (see the module docstring), or None.

    After the last "The answer is" the first number counts, so "$", a trailing period and
    units around it are ignored; if that number is missing the answer is None, even when
    an earlier "The answer is" had one.
    """
    answer = stated_answer(text)
    if answer is not None:
        match = _NUMBER.search(answer)
    else:
        numbers = list(_NUMBER.finditer(text))
        match = numbers[-1] if numbers else None
    return _to_float(match) if match else None


def gsm8k_correct(
    prediction_text: str, gold_answer: str, *, round_prediction: bool = False
) -> bool:
    """Whether a generation's answer equals the gold number of a GSM8K answer.

    Raises ValueError when the gold answer has no number after ``####``.
    """
    gold = gsm8k_gold(gold_answer)
    if gold is None:
        raise ValueError(f"no '#### <number>' in the gold answer {gold_answer!r}")
    prediction = gsm8k_prediction(prediction_text)
    if prediction is None:
        return False
    if round_prediction:
        prediction = round(prediction)
    return abs(prediction - gold) < GSM8K_TOLERANCE
