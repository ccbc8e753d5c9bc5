"""``eval``: which sets a causal language model is scored on and how generations are graded
(:mod:`lorasb.eval.evaluation`; conf/evaluate.yaml, and after training conf/family/task/instruction.yaml)."""

from dataclasses import dataclass

from lorasb.settings.checks import boolean, integer, names, one_of
from lorasb.settings.fields import setting

# reference: an answer only where the generation states it ("The answer is ..."), as the
# paper's evaluation grades; lenient: also a GSM8K generation's last number and a MATH
# generation's last \boxed{} (results named <set>_lenient).
GRADING_MODES = ("reference", "lenient")
# how a generation is compared with an instruction file's reference answer (eval.match)
MATCHES = ("exact", "contains")


@dataclass
class EvalSettings:
    """Greedy generation on each set, graded against its answers."""

    sets: list[str] = setting(
        factory=lambda: ["gsm8k"],
        help="gsm8k, math, boolq, piqa, siqa, hellaswag, winogrande, arc_e, arc_c, obqa (after training: the task's; [] for none)",
        check=names(empty=True),
    )
    file: str | None = setting(
        None,
        help="an instruction file (or Hub id) of held-out rows, laid out and rendered as data.* says: its validation loss and "
        "perplexity on the responses, and eval.match on generated answers",
    )
    split: str = setting("validation", help="the split of a Hub dataset eval.file")
    match: list[str] = setting(
        factory=list,
        help="eval.file: generate an answer to each row's last user turn and compare it with the reference (the last assistant "
        "turn): exact (equal after trimming spaces and case) and/or contains (the reference inside the answer); []: loss only",
        check=names(MATCHES, empty=True),
    )
    limit: int | None = setting(None, help="the first N examples of each set (null: all)", check=integer(1, nullable=True))
    batch_size: int = setting(8, help="prompts generated at once", check=integer(1))
    max_new_tokens: int | None = setting(
        None, help="the generation budget (null: each set's own: GSM8K 256, MATH 512, commonsense 32)", check=integer(1, nullable=True)
    )
    grading: str = setting(
        "reference",
        help="reference: only a stated \"The answer is\" counts (the paper's protocol); lenient: also the last number "
        "(GSM8K) or \\boxed{} (MATH), as <set>_lenient",
        check=one_of(GRADING_MODES),
    )


@dataclass
class EvalAfterFitSettings(EvalSettings):
    """The evaluation an instruction task's training run ends with."""

    after_fit: bool = setting(True, help="score the trained model on sets, into <run_dir>/eval.json", check=boolean())
