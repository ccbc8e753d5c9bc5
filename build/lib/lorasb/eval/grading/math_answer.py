"""Hendrycks MATH grading: the last ``\\boxed{}`` of a solution against a stated answer.

The prediction is the rest of the line after the LAST "The answer is" (colon optional, any
case), or the last ``\\boxed{}`` of the generation when it never says "The answer is". Both
answers are normalised (``normalize_math_answer``) and then compared as strings, or as
numbers when both are a plain number or a fraction of integers.
"""

from __future__ import annotations

import re
from fractions import Fraction

from lorasb.eval.grading.answers import MATH_TOLERANCE, stated_answer

_BOX = re.compile(r"\\(?:boxed|fbox)(?![a-zA-Z])")


def _group(s: str, start: int) -> tuple[str, int] | None:
    """The content of the brace group opening at ``s[start]`` and the index after it."""
    depth = 0
    for i in range(start, len(s)):
        if s[i] == "{":
            depth += 1
        elif s[i] == "}":
            depth -= 1
            if depth == 0:
                return s[start + 1 : i], i + 1
    return None


def last_boxed(solution: str) -> str | None:
    """The content of the last ``\\boxed{...}`` or ``\\fbox{...}`` (nested braces allowed).

    ``\\boxed 5`` (argument without braces) gives the token after the space. None when there
    is no box, or when its braces never close (a truncated generation).
    """
    boxes = list(_BOX.finditer(solution))
    if not boxes:
        return None
    end = boxes[-1].end()
    if solution.startswith("{", end):
        group = _group(solution, end)
        return group[0] if group else None
    token = re.match(r"\s+([^\s$]+)", solution[end:])
    return token[1] if token else None


def math_prediction(text: str) -> str | None:
    """The answer a generation states (see the module docstring), or None.

    Only the line of the last "The answer is" counts, so text a model repeats after it is
    ignored; a trailing period and ``$...$`` around the answer are removed.
    """
    stated = stated_answer(text)
    if stated is None:
        return last_boxed(text)
    answer = stated.split("\n", 1)[0].strip().removesuffix(".")
    answer = answer.strip().strip("$").strip().removesuffix(".")
    if _BOX.search(answer):
        return last_boxed(answer)
    return answer or None


# --- normalisation -------------------------------------------------------------------

_TEXT = r"\\(?:text|textrm|textbf|mbox|mathrm)"
# A trailing \text{ cm}, \mbox{ inches}, \text{ sq. units}^2 after an answer: a unit.
_UNIT = re.compile(_TEXT + r"\{\s*[a-zA-Z][a-zA-Z\s.]*\}(?:\^\{?\d\}?)?\s*$")
_TEXT_GROUP = re.compile(_TEXT + r"\{([^{}]*)\}")
# LaTeX spacing commands; "\\" (a line break, e.g. in a matrix) is matched to be kept.
_SPACING = re.compile(r"\\\\|\\[!,;: ]")
_LEFT_RIGHT = re.compile(r"\\(?:left|right)(?![a-zA-Z])\.?")
_DEGREES = re.compile(r"\^\{\\circ\}|\^\\circ(?![a-zA-Z])|\\degree(?![a-zA-Z])|°")
_COMMAND = re.compile(r"\\[a-zA-Z]+")
_ARGUMENTS = {"\\frac": 2, "\\sqrt": 1}
_THOUSANDS = re.compile(r"-?\d{1,3}(?:,\d{3})+(?:\.\d+)?")
_DECIMAL = re.compile(r"(?<![\d.])(\d+)\.(\d+)(?![\d.])")
_INTEGER_FRACTION = re.compile(r"(-?)\\frac\{(-?\d+)\}\{(-?\d+)\}")


def _argument(s: str, i: int) -> tuple[str, int] | None:
    """The argument of a command starting at ``s[i]``: a brace group, a command or a char."""
    if i >= len(s):
        return None
    if s[i] == "{":
        return _group(s, i)
    command = _COMMAND.match(s, i)
    if command:
        return command[0], command.end()
    return s[i], i + 1


def _brace_arguments(s: str) -> str:
    """Brace the arguments of ``\\frac`` and ``\\sqrt``: ``\\frac12`` → ``\\frac{1}{2}``."""
    out: list[str] = []
    i = 0
    while i < len(s):
        command = _COMMAND.match(s, i)
        if not command:
            out.append(s[i])
            i += 1
            continue
        out.append(command[0])
        i = command.end()
        if command[0] == "\\sqrt" and s.startswith("[", i) and "]" in s[i:]:
            close = s.index("]", i) + 1
            out.append(s[i:close])  # the root's degree, as in \sqrt[3]{x}
            i = close
        for _ in range(_ARGUMENTS.get(command[0], 0)):
            argument = _argument(s, i)
            if argument is None:
                break
            out.append("{" + _brace_arguments(argument[0]) + "}")
            i = argument[1]
    return "".join(out)


def _trim_decimal(match: re.Match[str]) -> str:
    """``3.0`` → ``3``, ``2.50`` → ``2.5``."""
    fraction = match[2].rstrip("0")
    return f"{match[1]}.{fraction}" if fraction else match[1]


def normalize_math_answer(s: str) -> str:
    """A canonical spelling of a MATH answer, so that equal answers compare equal as strings.

    Removes spacing, ``\\left``/``\\right``, units in a trailing ``\\text{}``, degrees,
    percent and dollar signs; keeps the content of other ``\\text{}``; unifies ``\\dfrac`` and
    ``\\tfrac`` into ``\\frac`` and braces ``\\frac``/``\\sqrt`` arguments; drops a leading
    ``x=`` of a single variable, thousands commas of a lone number and trailing decimal
    zeros; writes ``.5`` as ``0.5`` and an integer ``a/b`` as ``\\frac{a}{b}``.
    """
    s = s.strip().removesuffix(".")
    unit = _UNIT.search(s)
    if unit and s[: unit.start()].strip():
        s = s[: unit.start()]
    s = _TEXT_GROUP.sub(r"\1", s)
    s = _SPACING.sub(lambda m: m[0] if m[0] == "\\\\" else "", s)
    s = re.sub(r"\s+", "", s)
    s = _LEFT_RIGHT.sub("", s)
    s = re.sub(r"\\[dt]frac(?![a-zA-Z])", r"\\frac", s)
    s = _DEGREES.sub("", s)
    s = s.replace("\\%", "").replace("%", "").replace("\\$", "").replace("$", "")
    s = s.replace("{,}", ",")
    s = _brace_arguments(s)
    if _THOUSANDS.fullmatch(s):
        s = s.replace(",", "")
    s = re.sub(r"^[a-zA-Z]=(?=[^=]+$)", "", s)
    s = re.sub(r"(?<![\d.])\.(\d)", r"0.\1", s)
    s = _DECIMAL.sub(_trim_decimal, s)
    return re.sub(r"^(-?\d+)/(\d+)$", r"\\frac{\1}{\2}", s)


def _as_number(normalized: str) -> Fraction | None:
    """The value of a normalised plain number or fraction of integers, else None."""
    if re.fullmatch(r"-?\d+(?:\.\d+)?", normalized):
        return Fraction(normalized)
    fraction = _INTEGER_FRACTION.fullmatch(normalized)
    if not fraction or int(fraction[3]) == 0:
        return None
    value = Fraction(int(fraction[2]), int(fraction[3]))
    return -value if fraction[1] else value


def math_equivalent(prediction: str | None, gold: str) -> bool:
    """Whether two MATH answers are equal after normalisation, or numerically within MATH_TOLERANCE (1e-6)."""
    if prediction is None:
        return False
    prediction, gold = normalize_math_answer(prediction), normalize_math_answer(gold)
    if prediction == gold:
        return True
    a, b = _as_number(prediction), _as_number(gold)
    return a is not None and b is not None and abs(a - b) < MATH_TOLERANCE


def math_correct(prediction_text: str, solution: str) -> bool:
    """Whether a generation's answer equals the last ``\\boxed{}`` of a MATH solution.

    Raises ValueError when the solution has no ``\\boxed{}``.
    """
    gold = last_boxed(solution)
    if gold is None:
        raise ValueError(f"no \\boxed{{}} answer in the solution {solution[-200:]!r}")
    return math_equivalent(math_prediction(prediction_text), gold)
