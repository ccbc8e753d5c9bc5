"""The nine GLUE tasks: columns, label spaces, validation splits and metrics."""

from dataclasses import dataclass

from lorasb.data.scoring import ScoredTask


@dataclass(frozen=True)
class GlueTask(ScoredTask):
    """One GLUE task.

    ``text_fields`` and ``val_splits`` use the Hugging Face Hub (``nyu-mll/glue``) names;
    ``folder`` is the official GLUE folder, whose TSV files keep the texts and the label in the
    columns ``tsv_texts`` and ``tsv_label`` (named by the file's header, or by ``tsv_columns``
    for a headerless file) and spell labels as ``tsv_label_ids`` maps them (``None``: already
    the Hub's integer ids); a regression score lies in ``score_range``. Metrics of
    validation split ``i`` are logged as ``val/<metric><val_suffixes[i]>``; ``main_metric``
    names one of those keys (without ``val/``).
    """

    name: str
    folder: str
    text_fields: tuple[str, ...]
    num_labels: int
    metric_names: tuple[str, ...]
    main_metric: str
    tsv_texts: tuple[str, ...]
    tsv_label: str
    tsv_label_ids: dict[str, int] | None = None
    tsv_columns: tuple[str, ...] | None = None
    score_range: tuple[float, float] | None = None
    val_splits: tuple[str, ...] = ("validation",)
    val_suffixes: tuple[str, ...] = ("",)

    @property
    def label_ids(self) -> dict[str, int]:
        """Each label as the TSV files spell it → its Hub id (classification tasks)."""
        return self.tsv_label_ids or {str(i): i for i in range(self.num_labels)}


_PAIR = ("sentence1", "sentence2")
_NLI_2 = {"entailment": 0, "not_entailment": 1}
_NLI_3 = {"entailment": 0, "neutral": 1, "contradiction": 2}

GLUE_TASKS: dict[str, GlueTask] = {
    task.name: task
    for task in (
        GlueTask("cola", "CoLA", ("sentence",), 2, ("matthews",), "matthews", tsv_texts=("sentence",), tsv_label="label",
                 tsv_columns=("source", "label", "mark", "sentence")),
        GlueTask("sst2", "SST-2", ("sentence",), 2, ("accuracy",), "accuracy", tsv_texts=("sentence",), tsv_label="label"),
        GlueTask("mrpc", "MRPC", _PAIR, 2, ("f1", "accuracy"), "f1", tsv_texts=("#1 String", "#2 String"), tsv_label="Quality"),
        GlueTask("qqp", "QQP", ("question1", "question2"), 2, ("f1", "accuracy"), "f1",
                 tsv_texts=("question1", "question2"), tsv_label="is_duplicate"),
        GlueTask("stsb", "STS-B", _PAIR, 1, ("pearson", "spearman"), "pearson", tsv_texts=_PAIR, tsv_label="score",
                 score_range=(0.0, 5.0)),
        GlueTask(
            "mnli",
            "MNLI",
            ("premise", "hypothesis"),
            3,
            ("accuracy",),
            "accuracy_m",
            tsv_texts=_PAIR,
            tsv_label="gold_label",
            tsv_label_ids=_NLI_3,
            val_splits=("validation_matched", "validation_mismatched"),
            val_suffixes=("_m", "_mm"),
        ),
        GlueTask("qnli", "QNLI", ("question", "sentence"), 2, ("accuracy",), "accuracy",
                 tsv_texts=("question", "sentence"), tsv_label="label", tsv_label_ids=_NLI_2),
        GlueTask("rte", "RTE", _PAIR, 2, ("accuracy",), "accuracy", tsv_texts=_PAIR, tsv_label="label", tsv_label_ids=_NLI_2),
        GlueTask("wnli", "WNLI", _PAIR, 2, ("accuracy",), "accuracy", tsv_texts=_PAIR, tsv_label="label"),
    )
}


def glue_task(name: str) -> GlueTask:
    """The task called ``name``; raises ValueError naming the valid tasks otherwise."""
    try:
        return GLUE_TASKS[name]
    except KeyError:
        raise ValueError(
            f"Unknown GLUE task {name!r}; expected one of: {', '.join(GLUE_TASKS)}"
        ) from None
