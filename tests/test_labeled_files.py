"""The user's own classification and regression files (task=custom/classification, custom/regression):
every format read alike, the label set and its order, the held-out share, and each bad input
refused whole, before any model loads, with the file, the row and the fix."""

import logging
import math

import pandas as pd
import pytest
import torch

from lorasb.data import LabeledFileDataModule
from lorasb.data.custom_tasks import custom_task
from lorasb.data.files import DataFileError
from lorasb.data.label_files import label_order
from lorasb.data.scoring import METRICS

ROWS = [  # real sentences (GLUE SST-2's first training rows), labels rewritten as names
    ("hide new secretions from the parental units", "negative"),
    ("contains no wit , only labored gags", "negative"),
    ("that loves its characters and communicates something rather beautiful about human nature", "positive"),
    ("remains utterly satisfied to remain the same throughout", "negative"),
    ("on the worst revenge-of-the-nerds clichés the filmmakers could dredge up", "negative"),
    ("that 's far too tragic to merit such superficial treatment", "negative"),
    ("demonstrates that the director of such hollywood blockbusters as patriot games can still turn out a small , personal film with an emotional wallop .", "positive"),
    ("of saucy", "positive"),
]


def write(path, rows, columns=("text", "label")):
    """``rows`` in the format of ``path``'s suffix, through pandas (as a user's tools would write them)."""
    frame = pd.DataFrame(rows, columns=list(columns))
    if path.suffix == ".csv":
        frame.to_csv(path, index=False)
    elif path.suffix == ".tsv":
        frame.to_csv(path, index=False, sep="\t")
    elif path.suffix == ".jsonl":
        frame.to_json(path, orient="records", lines=True)
    elif path.suffix == ".json":
        frame.to_json(path, orient="records")
    else:
        frame.to_parquet(path)
    return path


def data(minilm_dir, task="classification", monitor="val/accuracy", **kwargs):
    return LabeledFileDataModule(task=task, monitor=monitor, tokenizer=str(minilm_dir), **kwargs)


def raw(module, split):
    """A split's texts and labels as the module reads them (label ids, or scores)."""
    texts, labels = module._read(split)
    return list(zip(*texts)), labels


# --- every format, the label set ------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".json", ".jsonl", ".parquet"])
def test_every_format_reads_the_same_rows(minilm_dir, tmp_path, suffix):
    train = write(tmp_path / f"train{suffix}", ROWS)
    validation = write(tmp_path / f"dev{suffix}", ROWS[:3])
    module = data(minilm_dir, train_file=str(train), validation_file=str(validation))
    module.setup("fit")
    assert module.labels == ["negative", "positive"]
    assert module.module_arguments() == {"labels": ["negative", "positive"]}
    assert raw(module, "train") == ([(text,) for text, _ in ROWS], [int(label == "positive") for _, label in ROWS])
    assert raw(module, "validation") == ([(text,) for text, _ in ROWS[:3]], [0, 0, 1])
    assert len(module.train_dataset) == len(ROWS) and module.train_dataset["labels"] == [int(label == "positive") for _, label in ROWS]


def test_integer_labels_order_by_value_and_names_alphabetically():
    assert label_order(["10", "2", "0", "2"]) == ["0", "2", "10"]
    assert label_order(["positive", "negative", "neutral"]) == ["negative", "neutral", "positive"]
    assert label_order(["1", "b", "0"]) == ["0", "1", "b"]


def test_integer_labels_of_three_classes_and_a_text_pair(minilm_dir, tmp_path):
    rows = [(a, b, label) for (a, _), (b, _), label in zip(ROWS, ROWS[1:], [2, 0, 10, 2, 0, 10, 2])]
    train = write(tmp_path / "pairs.csv", rows, ("premise", "hypothesis", "class"))
    module = data(minilm_dir, train_file=str(train), validation_file=str(train), text_fields=["premise", "hypothesis"], label_field="class")
    module.setup("fit")
    assert module.labels == ["0", "2", "10"]
    assert module.num_labels == 3
    texts, labels = raw(module, "train")
    assert texts[0] == (ROWS[0][0], ROWS[1][0]) and labels == [1, 0, 2, 1, 0, 2, 1]
    assert module.train_dataset[0]["input_ids"] == module.tokenizer(ROWS[0][0], ROWS[1][0])["input_ids"]  # a pair: [CLS] a [SEP] b [SEP]
    assert module.train_dataset[0]["token_type_ids"].count(1) == len(module.tokenizer(ROWS[1][0])["input_ids"]) - 1


def test_a_held_out_share_is_drawn_by_the_seed_and_reported(minilm_dir, tmp_path, caplog):
    rows = [(f"{text} ({i})", label) for i in range(3) for text, label in ROWS]  # 24 rows
    train = write(tmp_path / "train.csv", rows)
    caplog.set_level(logging.INFO, logger="lorasb")
    module = data(minilm_dir, train_file=str(train), validation_ratio=0.25, seed=3)
    module.setup("fit")
    kept, held_out = raw(module, "train")[0], raw(module, "validation")[0]
    assert (len(kept), len(held_out)) == (18, 6)
    assert sorted(kept + held_out) == sorted((text,) for text, _ in rows)
    assert f"validation: 6 of the 24 rows of {train} held out (data.validation_ratio=0.25, seed 3), 18 rows train" in caplog.messages
    again = data(minilm_dir, train_file=str(train), validation_ratio=0.25, seed=3)
    assert raw(again, "validation")[0] == held_out
    other = data(minilm_dir, train_file=str(train), validation_ratio=0.25, seed=4)
    assert raw(other, "validation")[0] != held_out


def test_a_regression_reads_scores(minilm_dir, tmp_path):
    train = write(tmp_path / "scores.jsonl", [(text, float(len(text.split()))) for text, _ in ROWS], ("sentence", "score"))
    module = data(minilm_dir, task="regression", monitor="val/spearman", train_file=str(train), validation_file=str(train), text_fields=["sentence"], label_field="score")
    module.setup("fit")
    assert module.labels is None and module.module_arguments() == {"labels": None}
    assert raw(module, "train")[1] == [float(len(text.split())) for text, _ in ROWS]
    assert module.task_spec.main_metric == "spearman" and module.num_labels == 1


def test_a_dataset_folder_is_read_at_its_splits(minilm_dir, tmp_path):
    """A folder laid out as a Hub dataset repository (files named by split) is read as datasets reads a Hub id."""
    folder = tmp_path / "reviews"
    folder.mkdir()
    write(folder / "train.csv", ROWS)
    write(folder / "test.csv", ROWS[:3])
    module = data(minilm_dir, train_file=str(folder), validation_file=str(folder), validation_split="test")
    module.setup("fit")
    assert raw(module, "train") == ([(text,) for text, _ in ROWS], [int(label == "positive") for _, label in ROWS])
    assert raw(module, "validation") == ([(text,) for text, _ in ROWS[:3]], [0, 0, 1])
    message = refusal(minilm_dir, train_file=str(folder), validation_file=str(folder))  # validation_split: validation
    assert message.startswith(f"{folder}: a dataset folder did not provide its split 'validation' (")
    assert message.endswith("); expected a dataset folder with a 'validation' split (e.g. validation.csv), or a file of it")


def test_relative_file_names_start_at_data_dir(minilm_dir, tmp_path):
    write(tmp_path / "train.csv", ROWS)
    module = data(minilm_dir, train_file="train.csv", validation_file="train.csv", dir=str(tmp_path))
    module.setup("fit")
    assert len(module.train_dataset) == len(ROWS)


# --- metrics and their baseline -------------------------------------------------------------


@pytest.mark.parametrize("num_labels", [2, 3])
def test_matthews_is_zero_where_it_is_undefined_and_the_formula_elsewhere(num_labels):
    labels = torch.tensor([1, 1, 1, 1, 0, 0, 0])
    metric = METRICS["matthews"](num_labels)
    assert float(metric(torch.ones_like(labels), labels)) == 0.0  # one predicted class
    assert float(METRICS["matthews"](num_labels)(labels, torch.zeros_like(labels))) == 0.0  # one true class
    predictions = torch.tensor([1, 1, 1, 0, 0, 0, 1])  # tp 3, fn 1, tn 2, fp 1
    expected = (3 * 2 - 1 * 1) / math.sqrt((3 + 1) * (3 + 1) * (2 + 1) * (2 + 1))
    assert float(METRICS["matthews"](num_labels)(predictions, labels)) == pytest.approx(expected, rel=1e-6)


def test_classification_metrics_and_the_majority_baseline():
    task = custom_task("classification", ["a", "b", "c"], "val/macro_f1")
    labels = torch.tensor([0, 0, 0, 1, 2, 2])
    assert set(task.metrics().keys()) == {"accuracy", "macro_f1", "matthews"}
    scores = task.constant_prediction_scores(labels)
    # all "a": accuracy 3/6; F1 of a = 2·0.5·1/(0.5+1) = 2/3, of b and c 0, macro 2/9; Matthews 0
    assert scores == pytest.approx({"accuracy": 0.5, "macro_f1": 2 / 9, "matthews": 0.0})
    predictions = torch.tensor([0, 0, 1, 1, 2, 2])
    values = {key: float(value) for key, value in task.metrics()(predictions, labels).items()}
    assert values["accuracy"] == pytest.approx(5 / 6)
    assert values["macro_f1"] == pytest.approx((0.8 + 2 / 3 + 1) / 3)


def test_regression_metrics_and_the_constant_baseline():
    task = custom_task("regression", None, "val/pearson")
    assert set(task.metrics().keys()) == {"pearson", "spearman"}
    assert task.constant_prediction_scores(torch.tensor([1.0, 2.0, 3.0])) == {"pearson": 0.0, "spearman": 0.0}


def test_the_monitor_is_one_of_the_tasks_metrics(minilm_dir):
    with pytest.raises(ValueError, match=r"^task\.monitor=val/f1: the classification task logs val/accuracy, val/macro_f1, val/matthews; monitor one of them$"):
        data(minilm_dir, monitor="val/f1", train_file="train.csv")
    with pytest.raises(ValueError, match=r"^task\.monitor=val/accuracy: the regression task logs val/pearson, val/spearman; monitor one of them$"):
        data(minilm_dir, task="regression", monitor="val/accuracy", train_file="train.csv")


# --- bad input: refused whole, naming the file, the row and the fix -----------------------------


def refusal(minilm_dir, **kwargs) -> str:
    module = data(minilm_dir, **kwargs)
    with pytest.raises(DataFileError) as caught:
        module.setup("fit")
    assert module.train_dataset is None and module.splits is None  # nothing of it is kept
    return str(caught.value)


def test_a_missing_file(minilm_dir, tmp_path):
    missing = tmp_path / "trian.csv"
    assert refusal(minilm_dir, train_file=str(missing)) == (
        f"{missing}: no such file; expected a CSV, TSV, JSON, JSONL or Parquet file, a dataset folder, or a Hugging Face Hub dataset id; "
        "check the path (relative paths start where the command runs, or at data.dir when set)"
    )


def test_an_unknown_field_lists_the_fields_found(minilm_dir, tmp_path):
    train = write(tmp_path / "train.csv", ROWS, ("review", "sentiment"))
    assert refusal(minilm_dir, train_file=str(train), label_field="sentiment") == (
        f"{train}: no field 'text'; the fields found are: review, sentiment; expected data.text_fields to name fields of the file"
    )
    assert refusal(minilm_dir, train_file=str(train), text_fields=["review"]) == (
        f"{train}: no field 'label'; the fields found are: review, sentiment; expected data.label_field to name fields of the file"
    )


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_a_row_without_a_label(minilm_dir, tmp_path, suffix):
    rows = [*ROWS[:2], (ROWS[2][0], None), *ROWS[3:]]
    train = write(tmp_path / f"train{suffix}", rows)
    assert refusal(minilm_dir, train_file=str(train)) == (
        f"{train}, row 3: the label field 'label' is empty; expected a label in every row: fill it in or remove the row"
    )


def test_an_empty_integer_label_in_a_csv(minilm_dir, tmp_path):
    """A gap in a CSV column of integers reads as a float column with a missing value."""
    train = tmp_path / "train.csv"
    train.write_text("text,label\nfirst,1\nsecond,\nthird,0\n")
    assert refusal(minilm_dir, train_file=str(train)) == (
        f"{train}, row 2: the label field 'label' is empty; expected a label in every row: fill it in or remove the row"
    )


def test_a_row_without_text(minilm_dir, tmp_path):
    train = write(tmp_path / "train.tsv", [*ROWS[:4], ("   ", "positive"), *ROWS[5:]])
    assert refusal(minilm_dir, train_file=str(train)) == (
        f"{train}, row 5: the text field 'text' is empty; expected a text in every row: fill it in or remove the row"
    )


def test_a_training_file_of_one_class(minilm_dir, tmp_path):
    train = write(tmp_path / "train.csv", [(text, "positive") for text, _ in ROWS])
    assert refusal(minilm_dir, train_file=str(train)) == (
        f"{train}: every row has the label 'positive'; expected at least two classes in the training file "
        "(for a numeric target: task=custom/regression)"
    )


def test_a_validation_label_never_seen_in_training(minilm_dir, tmp_path):
    train = write(tmp_path / "train.csv", ROWS)
    validation = write(tmp_path / "dev.csv", [ROWS[0], (ROWS[1][0], "neutral"), ROWS[2]])
    assert refusal(minilm_dir, train_file=str(train), validation_file=str(validation)) == (
        f"{validation}, row 2: the label 'neutral' does not occur in the training rows ({train}); "
        "expected one of negative, positive: add rows of 'neutral' to the training file or remove this row"
    )


def test_a_regression_label_that_is_no_number(minilm_dir, tmp_path):
    train = write(tmp_path / "train.jsonl", [(text, 1.5) for text, _ in ROWS[:3]] + [(ROWS[3][0], "high")])
    assert refusal(minilm_dir, task="regression", monitor="val/pearson", train_file=str(train)) == (
        f"{train}, row 4: the label 'high' is not a number; expected a number in every row for task=custom/regression "
        "(for class names: task=custom/classification)"
    )


def test_a_file_the_parser_cannot_split_is_refused_whole(minilm_dir, tmp_path):
    train = tmp_path / "train.csv"
    train.write_text("text,label\nfirst,positive\nsecond,negative\nthird, with a comma,positive\nfourth,negative\n")
    assert refusal(minilm_dir, train_file=str(train)) == (
        f"{train}: cannot be read as CSV (Error tokenizing data. C error: Expected 2 fields in line 4, saw 3); "
        "expected a well-formed CSV file: nothing of it is used"
    )


def test_a_hub_id_that_cannot_be_reached_says_so(minilm_dir, monkeypatch):
    for setting in ("datasets.config.HF_HUB_OFFLINE", "datasets.config.HF_DATASETS_OFFLINE", "huggingface_hub.constants.HF_HUB_OFFLINE"):
        monkeypatch.setattr(setting, True)  # read when the libraries are imported: as if HF_HUB_OFFLINE=1 had been set before
    message = refusal(minilm_dir, train_file="someone/reviews")
    assert message.startswith("someone/reviews: not a local file, and the Hugging Face Hub did not provide its split 'train' (")
    assert message.endswith("); expected a CSV, TSV, JSON, JSONL or Parquet file, a dataset folder, or a Hugging Face Hub dataset id; without network, point at a local file or folder")


def test_a_bad_file_stops_the_run_before_the_model_loads(compose, minilm_dir, tmp_path, monkeypatch):
    import lorasb.lightning.classification
    from lorasb.train import run

    def no_model(*args, **kwargs):
        raise AssertionError("the model was loaded")

    monkeypatch.setattr(lorasb.lightning.classification, "load_classifier", no_model)
    train = write(tmp_path / "train.csv", [(text, "positive") for text, _ in ROWS])
    cfg = compose("task=custom/classification", f"data.train_file={train}", "logger=[]")
    with pytest.raises(DataFileError, match="every row has the label 'positive'"):
        run(cfg)
    assert not (tmp_path / "labels.json").exists()


def test_the_config_check_asks_for_a_training_file(compose):
    from lorasb.config import config_problems

    assert config_problems(compose("task=custom/regression")) == [
        "data.train_file=null: expected a CSV, TSV, JSON, JSONL or Parquet file, a dataset folder, or a Hugging Face Hub dataset id"
    ]
    assert config_problems(compose("task=custom/classification", "data.train_file=x.csv", "data.validation_ratio=1.0", "data.text_fields=[a,b,c]")) == [
        "data.validation_ratio=1.0: expected a number in (0, 1)",
        "data.text_fields=['a', 'b', 'c']: expected a list of 1 to 2 field names",
    ]
    assert config_problems(compose("task=custom/classification", "data.train_file=x.csv", "task.monitor=val/f1")) == [
        "task.monitor=val/f1: the classification task logs val/accuracy, val/macro_f1, val/matthews; monitor one of them"
    ]
    assert config_problems(compose("task=custom/regression", "data.train_file=x.csv", "task.monitor=val/spearman")) == []
