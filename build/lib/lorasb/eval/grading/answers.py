"""What the graders share: where a generation states its answer, and how close numbers must be.

MetaMath-style generations end with "The answer is: X"; the graders read what follows the
LAST such phrase (colon optional, any case).
"""

from __future__ import annotations

import re

ANSWER_IS = re.compile(r"the answer is:?", re.IGNORECASE)

# GSM8K answers are whole numbers written out by a model, so a stray 18.00001 counts as 18;
# MATH answers may be exact fractions, so 0.3333 must not pass for 1/3 (0.333333 does).
GSM8K_TOLERANCE = 1e-4
MATH_TOLERANCE = 1e-6


def stated_answer(text: str) -> str | None:
    """The text after the last "The answer is" of ``text``, or None when it never says so."""
    markers = list(ANSWER_IS.finditer(text))
    return text[markers[-1].end() :] if markers else None
