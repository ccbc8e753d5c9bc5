"""The Alpaca instruction template, used to train and to evaluate the instruction-tuned models.

    Below is an instruction that describes a task. Write a response that ...

    ### Instruction:
    {instruction}

    ### Response:
    {response}<EOS>

With an ``input`` (extra context) the preamble mentions it and an ``### Input:`` section
follows the instruction. The evaluation of GSM8K and MATH opens the response with a lead,
``### Response: Let's think step by step.``, on the same line.
"""

from __future__ import annotations

PREAMBLE = "Below is an instruction that describes a task. Write a response that appropriately completes the request."
PREAMBLE_WITH_INPUT = (
    "Below is an instruction that describes a task, paired with an input that provides further context. "
    "Write a response that appropriately completes the request."
)
STEP_BY_STEP = "Let's think step by step."

# The template's section markers. A model that writes one has finished its answer and begun a
# new turn of its own, so generation stops there and grading reads only the text before it
# (the reference evaluation stops its generations on the same four strings).
STOP_STRINGS = ("Instruction:", "Instruction", "Response:", "Response")


def first_turn(text: str, markers: tuple[str, ...] = STOP_STRINGS) -> str:
    """``text`` up to the first of ``markers`` (all of it when none occurs)."""
    cuts = [index for index in (text.find(marker) for marker in markers) if index >= 0]
    return text[: min(cuts)] if cuts else text


def alpaca_prompt(instruction: str, input: str = "", lead: str = "") -> str:
    """The prompt up to where the response starts (after ``### Response:`` and its newline or lead)."""
    instruction = instruction.strip()
    if input and input.strip():
        head = f"{PREAMBLE_WITH_INPUT}\n\n### Instruction:\n{instruction}\n\n### Input:\n{input.strip()}\n\n"
    else:
        head = f"{PREAMBLE}\n\n### Instruction:\n{instruction}\n\n"
    return head + (f"### Response: {lead}" if lead else "### Response:\n")
