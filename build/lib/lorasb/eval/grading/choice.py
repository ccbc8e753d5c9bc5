"""Commonsense multiple choice (the LLM-Adapters protocol): the first answer label named.

A model answers with a label of its set ("answer2", "true", "option1", ...); the prediction
is the FIRST label in the generation, so "true or false? false" predicts "true". Labels
match whole words in any case: "answer10" is not "answer1", "untrue" is not "true".
LLM-Adapters itself matches case-sensitively and also inside longer words.
"""

from __future__ import annotations

import re

ANSWER_VOCABULARY: dict[str, tuple[str, ...]] = {
    "boolq": ("true", "false"),
    "piqa": ("solution1", "solution2"),
    "siqa": ("answer1", "answer2", "answer3"),
    # LLM-Adapters accepts answer1-answer5 for ARC and OpenBookQA alike.
    "arc_e": ("answer1", "answer2", "answer3", "answer4", "answer5"),
    "arc_c": ("answer1", "answer2", "answer3", "answer4", "answer5"),
    "obqa": ("answer1", "answer2", "answer3", "answer4", "answer5"),
    "hellaswag": ("ending1", "ending2", "ending3", "ending4"),
    "winogrande": ("option1", "option2"),
}


def _vocabulary(set_name: str) -> tuple[str, ...]:
    if set_name not in ANSWER_VOCABULARY:
        raise ValueError(f"unknown set {set_name!r}; choose one of {', '.join(ANSWER_VOCABULARY)}")
    return ANSWER_VOCABULARY[set_name]


def choice_prediction(text: str, set_name: str) -> str | None:
    """The first label of the set named in the text, lowercased, or None."""
    labels = "|".join(map(re.escape, _vocabulary(set_name)))
    match = re.search(rf"\b(?:{labels})\b", text, re.IGNORECASE)
    return match[0].lower() if match else None


def choice_correct(text: str, answer: str, set_name: str) -> bool:
    """Whether the first label in the text is the gold label ``answer`` (any case).

    Raises ValueError for an unknown set or a gold label outside its vocabulary.
    """
    gold = answer.strip().lower()
    if gold not in _vocabulary(set_name):
        raise ValueError(f"gold label {answer!r} is not one of {_vocabulary(set_name)}")
    return choice_prediction(text, set_name) == gold
