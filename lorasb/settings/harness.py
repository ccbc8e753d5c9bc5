"""``harness``: lm-evaluation-harness tasks ``python -m lorasb.evaluate`` also scores (:mod:`lorasb.eval.harness`)."""

from dataclasses import dataclass

from lorasb.settings.checks import Check, integer, names
from lorasb.settings.fields import setting


@dataclass
class HarnessSettings:
    """The harness's tasks by name, run through its Python API and Hugging Face backend."""

    tasks: list[str] = setting(
        factory=list, help="lm-evaluation-harness task names, e.g. [gsm8k,arc_easy] (empty: the harness does not run)", check=names(empty=True)
    )
    include_path: str | None = setting(
        None, help="a folder of task YAML files of your own, added to the harness's tasks", check=Check("a folder path", lambda v: isinstance(v, str), nullable=True)
    )
    limit: int | None = setting(None, help="the first N examples of each task (null: all)", check=integer(1, nullable=True))
    num_fewshot: int | None = setting(None, help="few-shot examples per prompt (null: each task's own)", check=integer(0, nullable=True))
    batch_size: int = setting(8, help="requests the harness runs at once", check=integer(1))
