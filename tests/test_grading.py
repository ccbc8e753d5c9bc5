"""Graders of generated answers (lorasb.eval.grading): GSM8K, MATH and commonsense choice."""

import pytest

from lorasb.data.prompts import first_turn
from lorasb.eval.grading import (
    ANSWER_VOCABULARY,
    choice_correct,
    choice_prediction,
    gsm8k_correct,
    gsm8k_gold,
    gsm8k_prediction,
    last_boxed,
    math_correct,
    math_equivalent,
    math_prediction,
    normalize_math_answer,
)

# --- GSM8K -----------------------------------------------------------------------------

JANET = (
    "Janet sells 16 - 3 - 4 = <<16-3-4=9>>9 duck eggs a day.\n"
    "She makes 9 * 2 = $<<9*2=18>>18 every day at the farmer's market.\n#### 18"
)

GSM8K_GOLD = [
    (JANET, 18.0),
    ("He earns 90 * 12 = <<90*12=1080>>1,080 dollars.\n#### 1,080", 1080.0),
    ("The temperature drops 5 - 8 = <<5-8=-3>>-3 degrees.\n#### -3", -3.0),
    ("a #### 3 that was a draft\n#### 4", 4.0),  # the last marker counts
    ("She has 12 apples left.", None),  # no marker
    ("#### ", None),  # marker without a number
]


@pytest.mark.parametrize(("answer", "expected"), GSM8K_GOLD)
def test_gsm8k_gold(answer, expected):
    assert gsm8k_gold(answer) == expected


GSM8K_PREDICTION = [
    ("9 * 2 = 18 dollars.\nThe answer is: 18", 18.0),
    ("The answer is $1,080.", 1080.0),
    ("The answer is: 18.0", 18.0),
    ("The answer is: 17.5", 17.5),
    ("The answer is: -3", -3.0),
    ("So she uses 3/4 of a cup. The answer is 3/4.", 0.75),
    ("the answer is 42 apples", 42.0),  # any case, units after the number
    ("THE ANSWER IS: 1,234,567.", 1234567.0),
    ("The answer is: .5", 0.5),
    ("It costs -$5 in total. The answer is -$5", -5.0),
    ("The answer is: 5\nThe answer is: 7", 7.0),  # the last "The answer is" wins
    ("The answer is: 18\n\nQuestion: Tom has 25 apples. The answer is: 25", 25.0),  # repeated text
    ("The answer is 12. Check: 3 * 4 = 12, 12 + 1 = 13", 12.0),  # first number after the marker
    ("The answer is 18.\nThe answer is", None),  # truncated after the last marker
    ("Step 1: 12 * 3 = 36\nStep 2: 36 + 4 = 40", None),  # never says "The answer is": no answer
    ("The answer is: 18\n\n### Instruction:\nTom has 25 apples.\n\n### Response:\nThe answer is: 25", 18.0),
    ("The answer is: 18\nInstruction: give the answer again. The answer is: 19", 18.0),  # the first turn only
    ("Each costs $4, so 3 cost $12.\n### Response: The answer is: 12", None),  # the answer came after the turn
    ("The answer is: five", None),
    ("I do not know.", None),
    ("", None),
    ("The answer is 1/0", None),
]


@pytest.mark.parametrize(("text", "expected"), GSM8K_PREDICTION)
def test_gsm8k_prediction(text, expected):
    assert gsm8k_prediction(text) == expected


GSM8K_LENIENT = [  # lenient grading also takes the last number of a generation without the phrase
    ("Step 1: 12 * 3 = 36\nStep 2: 36 + 4 = 40", 40.0),
    ("She reads 3-4 pages", 4.0),  # a hyphen inside a range is not a minus sign
    ("Step 1: 12 * 3 = 36\nStep 2: 36 + 4 =", 4.0),  # truncated without a marker
    ("Total: 7 + 8 = 15\n\n### Instruction:\nAdd 20 and 2.\n\n### Response:\n22", 15.0),  # first turn
    ("The answer is: 5\nThe answer is: 7", 7.0),  # the phrase still wins where it is given
    ("I do not know.", None),
]


@pytest.mark.parametrize(("text", "expected"), GSM8K_LENIENT)
def test_gsm8k_lenient_prediction(text, expected):
    assert gsm8k_prediction(text, lenient=True) == expected


GSM8K_CORRECT = [
    ("She makes 9 * 2 = 18 dollars.\nThe answer is: 18", JANET, True),
    ("The answer is: 18.0", "#### 18", True),
    ("The answer is $1,080.", "#### 1,080", True),
    ("The answer is: 1080", "#### 1,080", True),
    ("The answer is: -3", "#### -3", True),
    ("The answer is: 3", "#### -3", False),
    ("The answer is: 17.5", "#### 18", False),  # no rounding by default
    ("The answer is: 18.00001", "#### 18", True),  # within 1e-4
    ("The answer is: 19", "#### 18", False),
    ("The answer is: 18\nThe answer is: 19", "#### 18", False),  # the last one counts
    ("Total: 10 + 8 = 18", "#### 18", False),  # no "The answer is": no answer
    ("The answer is: 18\n\n### Instruction:\nWhat is 9 + 10?\n\n### Response: The answer is: 19", "#### 18", True),
    ("The answer is", "#### 18", False),
    ("", "#### 18", False),
]


@pytest.mark.parametrize(("text", "gold", "expected"), GSM8K_CORRECT)
def test_gsm8k_correct(text, gold, expected):
    assert gsm8k_correct(text, gold) is expected


def test_gsm8k_correct_lenient_takes_the_last_number():
    assert gsm8k_correct("Total: 10 + 8 = 18", "#### 18", lenient=True) is True
    assert gsm8k_correct("Total: 10 + 8 = 18 eggs and 2 hens", "#### 18", lenient=True) is False


GSM8K_ROUNDED = [  # MetaMath rounds the prediction with Python's round (half to even)
    ("The answer is: 17.5", "#### 18", True),
    ("The answer is: 18.4", "#### 18", True),
    ("The answer is: 18.6", "#### 18", False),
    ("The answer is: 16.5", "#### 17", False),  # round(16.5) == 16
    ("The answer is", "#### 18", False),
]


@pytest.mark.parametrize(("text", "gold", "expected"), GSM8K_ROUNDED)
def test_gsm8k_correct_with_metamath_rounding(text, gold, expected):
    assert gsm8k_correct(text, gold, round_prediction=True) is expected


def test_gsm8k_correct_rejects_gold_without_number():
    with pytest.raises(ValueError, match="####"):
        gsm8k_correct("The answer is: 18", "She has 18 apples.")


# --- MATH ------------------------------------------------------------------------------

LAST_BOXED = [
    (
        r"We have $\sin 60^\circ = \frac{\sqrt{3}}{2}$, so the answer is $\boxed{\frac{\sqrt{3}}{2}}$.",
        r"\frac{\sqrt{3}}{2}",
    ),
    (r"The distance is $\sqrt{3^2 + 4^2} = \boxed{5}$.", "5"),
    (r"Thus $(r, \theta) = \boxed{\left( 3, \frac{\pi}{2} \right)}.$", r"\left( 3, \frac{\pi}{2} \right)"),
    (r"The solutions are $\boxed{\{1, 2\}}$.", r"\{1, 2\}"),
    (r"Only one choice works: $\boxed{\text{(C)}}$", r"\text{(C)}"),
    (r"First $\boxed{3}$, then corrected: $\boxed{4}$.", "4"),  # the last box
    (r"So $x = \fbox{12}$.", "12"),
    (r"So $x = \boxed 5$.", "5"),
    (r"So the answer is $\boxed{\frac{1}{", None),  # truncated
    (r"So the answer is $x = 5$.", None),
    ("", None),
]


@pytest.mark.parametrize(("solution", "expected"), LAST_BOXED)
def test_last_boxed(solution, expected):
    assert last_boxed(solution) == expected


MATH_PREDICTION = [
    ("So $x = \\frac{1}{2}$.\nThe answer is: \\frac{1}{2}", r"\frac{1}{2}"),
    (r"The answer is $\frac{\sqrt{3}}{2}$.", r"\frac{\sqrt{3}}{2}"),
    (r"the answer is 5.", "5"),
    ("The answer is: 3\nThe answer is: 4", "4"),  # the last one counts
    ("The answer is: 7\n\nProblem: What is 2+2?\nThe answer is: 4", "4"),  # repeated text
    ("The answer is: 7\nThe answer is", None),  # truncated after the last marker
    (r"The answer is: $\boxed{12}$.", "12"),
    (r"Hence $x = \boxed{7}$.", None),  # never says "The answer is": no answer
    ("The answer is: 7\n\n### Instruction:\nWhat is 2+2?\n\n### Response:\nThe answer is: 4", "7"),  # first turn
    (r"Hence $x = 7$.", None),
    ("", None),
]


@pytest.mark.parametrize(("text", "expected"), MATH_PREDICTION)
def test_math_prediction(text, expected):
    assert math_prediction(text) == expected


MATH_LENIENT = [  # lenient grading also takes the last \boxed{} of a generation without the phrase
    (r"Hence $x = \boxed{7}$.", "7"),
    ("Hence $x = \\boxed{7}$.\n### Instruction:\nSolve $y = \\boxed{8}$", "7"),  # first turn
    ("The answer is: 3\nHence $\\boxed{4}$", "3"),  # the phrase still wins where it is given
    (r"Hence $x = 7$.", None),
]


@pytest.mark.parametrize(("text", "expected"), MATH_LENIENT)
def test_math_lenient_prediction(text, expected):
    assert math_prediction(text, lenient=True) == expected


NORMALIZED = [
    (r"\dfrac{3}{4}", r"\frac{3}{4}"),
    (r"\tfrac12", r"\frac{1}{2}"),
    (r"\frac1b", r"\frac{1}{b}"),
    (r"\frac\pi2", r"\frac{\pi}{2}"),
    (r"2\sqrt2", r"2\sqrt{2}"),
    (r"\sqrt[3]{2}", r"\sqrt[3]{2}"),
    (r"\left( 3, \frac{\pi}{2} \right)", r"(3,\frac{\pi}{2})"),
    (r"10\text{ cm}", "10"),
    (r"5 \mbox{ inches}", "5"),
    (r"12\text{ cm}^2", "12"),
    (r"\text{(B)}", "(B)"),
    (r"90^\circ", "90"),
    (r"90^{\circ}", "90"),
    (r"45\degree", "45"),
    ("30°", "30"),
    (r"50\%", "50"),
    (r"\$18.50", "18.5"),
    ("x = 5", "5"),
    ("k=-2", "-2"),
    ("y = 2x + 1", "2x+1"),
    ("x+y=5", "x+y=5"),  # the left side is not a single variable
    ("5.0", "5"),
    ("2.50", "2.5"),
    ("0.5", "0.5"),
    (".5", "0.5"),
    ("1,000", "1000"),
    ("1{,}000", "1000"),
    ("(1,2)", "(1,2)"),
    ("(1, 234)", "(1,234)"),  # a tuple keeps its commas
    ("3/4", r"\frac{3}{4}"),
    (r"\{1, 2\}", r"\{1,2\}"),
    (r"(-\infty, 3)", r"(-\infty,3)"),
    (r"2\pi", r"2\pi"),
    (r"\begin{pmatrix} 1 \\ 2 \end{pmatrix}", r"\begin{pmatrix}1\\2\end{pmatrix}"),
    (r"3\!\cdot\,4\;5\ 6", r"3\cdot456"),
]


@pytest.mark.parametrize(("answer", "expected"), NORMALIZED)
def test_normalize_math_answer(answer, expected):
    assert normalize_math_answer(answer) == expected


EQUIVALENT = [
    (r"\frac{1}{2}", "0.5"),
    (r"\dfrac{3}{4}", r"\frac34"),
    (r"\dfrac12", "1/2"),
    ("0.5", "1/2"),
    (r"\frac{2}{4}", r"\frac{1}{2}"),
    (r"-\frac{1}{2}", "-0.5"),
    (r"\left( 3, \frac{\pi}{2} \right)", r"(3,\frac{\pi}{2})"),
    (r"10\text{ cm}", "10"),
    (r"90^\circ", "90"),
    (r"50\%", "50"),
    ("x = 5", "5"),
    (r"2\sqrt{2}", r"2\sqrt2"),
    ("5.0", "5"),
    ("1,000", "1000"),
    (r"\text{(B)}", "(B)"),
    ("0.333333", r"\frac{1}{3}"),  # within 1e-6
]


@pytest.mark.parametrize(("prediction", "gold"), EQUIVALENT)
def test_math_equivalent(prediction, gold):
    assert math_equivalent(prediction, gold)
    assert math_equivalent(gold, prediction)


NOT_EQUIVALENT = [
    (r"\frac{1}{3}", "0.5"),
    ("(1,2)", "(2,1)"),
    (r"\sqrt{3}", "3"),
    ("0.33", r"\frac{1}{3}"),
    (r"\frac{\pi}{2}", r"\frac{\pi}{3}"),
    ("-5", "5"),
    ("1,000", "1"),
    ("x = 5", "y"),
    ("", "0"),
    (None, "5"),
]


@pytest.mark.parametrize(("prediction", "gold"), NOT_EQUIVALENT)
def test_math_not_equivalent(prediction, gold):
    assert not math_equivalent(prediction, gold)


SIN_60 = r"Since $\sin 60^\circ = \frac{\sqrt{3}}{2}$, the answer is $\boxed{\frac{\sqrt{3}}{2}}$."
MATH_CORRECT = [
    (r"The answer is: \frac{\sqrt{3}}{2}", SIN_60, True),
    (r"The answer is: \dfrac{\sqrt3}{2}", SIN_60, True),
    (r"The answer is: \frac{\sqrt{2}}{2}", SIN_60, False),
    (r"So the value is $\boxed{\frac{\sqrt{3}}{2}}$.", SIN_60, False),  # no "The answer is": no answer
    ("The answer is: 0.5", r"Half of them: $\boxed{\frac{1}{2}}$.", True),
    ("The answer is: 0.5\nThe answer is: 1", r"Half of them: $\boxed{\frac{1}{2}}$.", False),
    ("The answer is", r"$\boxed{5}$", False),
    ("", r"$\boxed{5}$", False),
]


@pytest.mark.parametrize(("text", "solution", "expected"), MATH_CORRECT)
def test_math_correct(text, solution, expected):
    assert math_correct(text, solution) is expected


def test_math_correct_lenient_takes_the_last_box():
    assert math_correct(r"So the value is $\boxed{\frac{\sqrt{3}}{2}}$.", SIN_60, lenient=True) is True


def test_math_correct_rejects_solution_without_box():
    with pytest.raises(ValueError, match="boxed"):
        math_correct("The answer is: 5", "So $x = 5$.")


# --- commonsense multiple choice -------------------------------------------------------


def test_answer_vocabulary():
    answers = tuple(f"answer{k}" for k in range(1, 6))
    assert ANSWER_VOCABULARY == {
        "boolq": ("true", "false"),
        "piqa": ("solution1", "solution2"),
        "siqa": answers[:3],
        "arc_e": answers,
        "arc_c": answers,
        "obqa": answers,
        "hellaswag": ("ending1", "ending2", "ending3", "ending4"),
        "winogrande": ("option1", "option2"),
    }


CHOICE_PREDICTION = [
    ("the correct answer is answer10", "arc_c", None),  # not answer1
    ("the correct answer is answer10, no, answer3", "arc_c", "answer3"),
    ("Answer2", "obqa", "answer2"),
    ("the correct answer is answer5", "arc_e", "answer5"),
    ("the correct answer is answer4", "siqa", None),  # siqa has three answers
    ("true or false? false", "boolq", "true"),  # the first label counts
    ("the claim is untrue, so false", "boolq", "false"),
    ("TRUE", "boolq", "true"),
    ("the correct answer is solution2.", "piqa", "solution2"),
    ("the correct answer is ending3", "hellaswag", "ending3"),
    ("option1's meaning fits", "winogrande", "option1"),
    ("the correct answer is option_1", "winogrande", None),
    ("the correct answer is answer2\n\nthe correct answer is answer1", "siqa", "answer2"),  # repeated
    ("the correct answer is", "piqa", None),  # truncated
    ("### Instruction:\nthe correct answer is ending2", "hellaswag", None),  # only a new turn
    ("Response: the correct answer is option2", "winogrande", None),
    ("", "boolq", None),
]


@pytest.mark.parametrize(("text", "set_name", "expected"), CHOICE_PREDICTION)
def test_choice_prediction(text, set_name, expected):
    assert choice_prediction(text, set_name) == expected


CHOICE_CORRECT = [
    ("the correct answer is answer2", "answer2", "arc_c", True),
    ("the correct answer is Answer2", "ANSWER2", "arc_c", True),
    ("the correct answer is answer12", "answer1", "arc_c", False),
    ("the correct answer is false", "false", "boolq", True),
    ("true or false? false", "false", "boolq", False),
    ("the correct answer is option2", "option1", "winogrande", False),
    ("", "option1", "winogrande", False),
]


@pytest.mark.parametrize(("text", "answer", "set_name", "expected"), CHOICE_CORRECT)
def test_choice_correct(text, answer, set_name, expected):
    assert choice_correct(text, answer, set_name) is expected


def test_unknown_set_lists_known_names():
    with pytest.raises(ValueError, match="unknown set 'mmlu'.*boolq.*winogrande"):
        choice_prediction("answer1", "mmlu")


def test_gold_label_outside_vocabulary():
    with pytest.raises(ValueError, match="answer4"):
        choice_correct("the correct answer is answer1", "answer4", "siqa")


# --- the first turn of a run-on generation ---------------------------------------------

FIRST_TURN = [
    ("The answer is: 18\n\n### Instruction:\nNew question", "The answer is: 18\n\n### "),
    ("answer1\n### Response:\nanswer2", "answer1\n### "),
    ("It works.\nResponse: yes", "It works.\n"),
    ("the Instructions say 4", "the "),  # the reference stops on the bare word too
    ("no marker at all", "no marker at all"),
    ("", ""),
]


@pytest.mark.parametrize(("text", "expected"), FIRST_TURN)
def test_first_turn_ends_at_the_first_marker(text, expected):
    assert first_turn(text) == expected
