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


def alpaca_prompt(instruction: str, input: str = "", lead: str = "") -> str:
    """The prompt up to where the response starts (after ``### Response:`` and its newline or lead)."""
    instruction = instruction.strip()
    if input and input.strip():
        head = f"{PREAMBLE_WITH_INPUT}\n\n### Instruction:\n{instruction}\n\n### Input:\n{input.strip()}\n\n"
    else:
        head = f"{PREAMBLE}\n\n### Instruction:\n{instruction}\n\n"
    return head + (f"### Response: {lead}" if lead else "### Response:\n")
