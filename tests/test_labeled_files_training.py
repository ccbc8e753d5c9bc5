"""MiniLM on the user's own files, end to end: a CSV of real SST-2 sentences with the labels
rewritten as names trains above its majority class, a regression CSV reaches a stated Pearson
correlation, and the merged export answers a ``transformers`` pipeline with the user's names."""

import csv
import json

import pytest
from helpers.processes import python
from helpers.wandb_files import logged

from lorasb.train import run

SHORT = [  # as notebooks/results.ipynb: 30 steps of 32 sentences of at most 32 tokens, LoRA-SB at a constant 5e-3
    "model=minilm", "logger=csv", "data.text_fields=[sentence]", "data.max_length=32", "init.num_samples=32",
    "optim.lr=5e-3", "optim.scheduler=constant", "trainer.max_epochs=1",
    "++trainer.enable_progress_bar=false", "++trainer.enable_model_summary=false",
]


def sst2_rows(shared_data, split: str, count: int) -> list[tuple[str, int]]:
    lines = (shared_data / "glue" / "SST-2" / f"{split}.tsv").read_text().splitlines()[1 : count + 1]
    return [(text.strip(), int(label)) for text, label in (line.split("\t") for line in lines)]


def write_csv(path, header, rows):
    with open(path, "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(header)
        writer.writerows(rows)
    return path


@pytest.fixture(scope="module")
def sentiment_run(composer, tmp_path_factory, shared_data):
    """960 SST-2 training sentences and 128 validation sentences labelled ``negative`` / ``positive``."""
    folder = tmp_path_factory.mktemp("sentiment")
    names = ("negative", "positive")
    train = write_csv(folder / "train.csv", ("sentence", "sentiment"), [(text, names[label]) for text, label in sst2_rows(shared_data, "train", 960)])
    dev = write_csv(folder / "dev.csv", ("sentence", "sentiment"), [(text, names[label]) for text, label in sst2_rows(shared_data, "dev", 128)])
    run_dir = folder / "run"
    overrides = ["task=custom/classification", f"data.train_file={train}", f"data.validation_file={dev}", "data.label_field=sentiment"]
    summary = run(composer([*SHORT, *overrides], run_dir))
    return run_dir, summary, dev


@pytest.mark.slow
def test_minilm_learns_string_labels_above_the_majority_class(sentiment_run):
    run_dir, summary, _ = sentiment_run
    assert json.loads((run_dir / "labels.json").read_text()) == ["negative", "positive"]
    baseline = summary["baseline"]
    assert baseline["name"] == "majority class"
    assert baseline["scores"]["val/accuracy"] == pytest.approx(67 / 128)  # the first 128 SST-2 dev sentences: 67 positive
    assert baseline["scores"]["val/matthews"] == 0.0  # undefined for a constant prediction: 0, as GLUE scores it
    assert set(summary["final"]) >= {"val/accuracy", "val/macro_f1", "val/matthews", "val/loss"}
    print("classification:", {key: round(value, 4) for key, value in summary["final"].items()}, "baseline:", baseline["scores"])
    assert summary["final"]["val/accuracy"] >= baseline["scores"]["val/accuracy"] + 0.10
    assert summary["final"]["val/macro_f1"] >= baseline["scores"]["val/macro_f1"] + 0.10


@pytest.mark.slow
def test_the_merged_export_answers_with_the_users_label_names(sentiment_run, tmp_path):
    from transformers import pipeline

    from lorasb.export import export

    run_dir, summary, dev = sentiment_run
    adapter_config = json.loads((run_dir / "adapter" / "config.json").read_text())
    assert adapter_config["id2label"] == {"0": "negative", "1": "positive"}
    assert adapter_config["label2id"] == {"negative": 0, "positive": 1}
    written = export(run_dir, tmp_path, merged=True)
    merged = json.loads((written["merged"] / "config.json").read_text())
    assert (merged["id2label"], merged["label2id"]) == (adapter_config["id2label"], adapter_config["label2id"])
    with open(dev, newline="") as file:
        rows = list(csv.DictReader(file))
    classify = pipeline("text-classification", model=str(written["merged"]), device="cpu")
    answers = classify([row["sentence"] for row in rows], truncation=True, max_length=32)
    assert {answer["label"] for answer in answers} == {"negative", "positive"}
    accuracy = sum(answer["label"] == row["sentiment"] for answer, row in zip(answers, rows)) / len(rows)
    assert accuracy == pytest.approx(summary["best"]["val/accuracy"], abs=1e-6)  # the best checkpoint, exported, as validated


@pytest.mark.slow
def test_a_regression_csv_reaches_a_pearson_correlation(composer, tmp_path, shared_data):
    """The sentiment as a score (negative 0.0, positive 1.0) of a text, from the same real sentences."""
    train = write_csv(tmp_path / "train.csv", ("sentence", "score"), [(text, float(label)) for text, label in sst2_rows(shared_data, "train", 960)])
    dev = write_csv(tmp_path / "dev.csv", ("sentence", "score"), [(text, float(label)) for text, label in sst2_rows(shared_data, "dev", 128)])
    overrides = ["task=custom/regression", f"data.train_file={train}", f"data.validation_file={dev}", "data.label_field=score"]
    summary = run(composer([*SHORT, *overrides], tmp_path / "run"))
    assert summary["baseline"] == {"name": "constant prediction", "scores": {"val/pearson": 0.0, "val/spearman": 0.0}}
    assert not (tmp_path / "run" / "labels.json").exists()
    print("regression:", {key: round(value, 4) for key, value in summary["final"].items()})
    assert summary["final"]["val/pearson"] >= 0.5  # measured: 0.6142


METHODS = ["lora_sb", "lora_xs", "lora", "pissa", "dora", "lora_ga", "full"]


@pytest.mark.slow
def test_every_method_and_lr_auto_train_on_a_custom_task_and_the_report_reads_them(composer, tmp_path, shared_data):
    """One step of each method on 32 sentences, monitoring macro-F1 (LoRA-SB's lr chosen by the
    range test, on two candidates); ``lorasb.report.collect`` reads the runs as it reads GLUE's."""
    from lorasb.report import collect

    names = ("negative", "positive")
    train = write_csv(tmp_path / "train.csv", ("sentence", "sentiment"), [(t, names[y]) for t, y in sst2_rows(shared_data, "train", 32)])
    dev = write_csv(tmp_path / "dev.csv", ("sentence", "sentiment"), [(t, names[y]) for t, y in sst2_rows(shared_data, "dev", 16)])
    common = [
        "model=minilm", "logger=csv", "task=custom/classification", "task.monitor=val/macro_f1", f"data.train_file={train}",
        f"data.validation_file={dev}", "data.text_fields=[sentence]", "data.label_field=sentiment", "data.batch_size=8",
        "data.max_length=32", "init.num_samples=8", "init.batch_size=8", "trainer.max_steps=1", "validate_before=false",
        "export_adapter=false", "++trainer.enable_progress_bar=false", "++trainer.enable_model_summary=false",
    ]
    auto = ["optim.lr=auto", "optim.auto_lr.candidates=[1e-3,1e-2]", "optim.auto_lr.steps=2", "optim.auto_lr.batch_size=8", "optim.auto_lr.score_rows=8"]
    for method in METHODS:
        lr = auto if method == "lora_sb" else ["optim.lr=1e-3"]
        summary = run(composer([*common, f"method={method}", *lr], tmp_path / "runs" / method))
        assert summary["steps"] == 1 and "val/macro_f1" in summary["final"], method
    rows = collect(tmp_path / "runs")
    assert sorted(row["method"] for row in rows) == sorted(METHODS)
    assert {(row["task"], row["metric"]) for row in rows} == {("classification", "val/macro_f1")}
    assert all(row["baseline"] is not None for row in rows)
    assert json.loads((tmp_path / "runs" / "lora_sb" / "init_stats.json").read_text())["auto_lr"]["lr"] in (1e-3, 1e-2)


@pytest.mark.slow
def test_a_sweep_on_a_custom_task_reads_one_cached_gradient_and_logs_to_wandb(tmp_path, shared_data):
    """``python -m lorasb.train -m`` over two lrs of LoRA-SB on a CSV: the lr is not in the gradient
    cache's key, so the second job reads the first one's sign(ΣG); each job logs an offline W&B run
    with the custom task's metrics, in the sweep's group."""
    names = ("negative", "positive")
    train = write_csv(tmp_path / "train.csv", ("sentence", "sentiment"), [(t, names[y]) for t, y in sst2_rows(shared_data, "train", 32)])
    dev = write_csv(tmp_path / "dev.csv", ("sentence", "sentiment"), [(t, names[y]) for t, y in sst2_rows(shared_data, "dev", 16)])
    result = python(
        "-m", "lorasb.train", "-m", "model=minilm", "task=custom/classification", f"data.train_file={train}",
        f"data.validation_file={dev}", "data.text_fields=[sentence]", "data.label_field=sentiment", "optim.lr=0.001,0.01",
        "data.batch_size=8", "data.max_length=32", "init.num_samples=8", "init.batch_size=8", "trainer.max_steps=1",
        "validate_before=false", "export_adapter=false", "logger=[csv,wandb]", "++trainer.enable_progress_bar=false",
        f"gradient_cache.dir={tmp_path / 'cache'}", f"hydra.sweep.dir={tmp_path / 'sweep'}",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = sorted((tmp_path / "sweep").glob("*_optim.lr=*"), key=lambda job: int(job.name.split("_")[0]))
    assert [job.name for job in jobs] == ["0_optim.lr=0.001", "1_optim.lr=0.01"]
    assert [json.loads((job / "init_stats.json").read_text())["gradients"] for job in jobs] == ["estimated", "cached"]
    for job in jobs:
        assert json.loads((job / "metrics.json").read_text())["run"]["task"] == "classification"
        (run_file,) = job.glob("wandb/offline-run-*/run-*.wandb")
        wandb_run = logged(run_file)
        assert {"val/accuracy", "val/macro_f1", "val/matthews"} <= wandb_run["history"]
        assert wandb_run["group"] and wandb_run["name"] == job.name.split("_", 1)[1]
