"""What a run says and reads: the packaged SST-2 sample, the before/after line with its baseline, train.log."""

import csv
import gzip
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from lorasb.data.glue import read_glue_tsv
from lorasb.data.glue_tasks import glue_task
from lorasb.lightning.summary import collapse_warning, summary_line
from lorasb.train import run

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "lorasb" / "data" / "samples" / "glue" / "SST-2"
SST2 = glue_task("sst2")


def majority_fraction(path: Path, label: str, encoding: str = "utf-8") -> float:
    """Share of the most frequent label in a TSV file with a header, counted with plain csv."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding=encoding, newline="") as file:
        labels = [row[label] for row in csv.DictReader(file, delimiter="\t", quoting=csv.QUOTE_NONE)]
    return max(labels.count(value) for value in set(labels)) / len(labels)


# --- the packaged SST-2 sample --------------------------------------------------------------


@pytest.mark.parametrize(("name", "rows"), [("train", 4000), ("dev", None)])
def test_sample_is_the_first_rows_of_the_official_files(name, rows, shared_data):
    sample = SAMPLE / f"{name}.tsv.gz"
    assert sample.stat().st_size < 300 * 1024
    official = read_glue_tsv(SST2, shared_data / "glue" / "SST-2" / f"{name}.tsv")
    packaged = read_glue_tsv(SST2, sample)
    assert packaged.texts[0] == official.texts[0][:rows]
    assert packaged.labels == official.labels[:rows]


def test_sample_names_its_source_and_licence():
    text = (SAMPLE.parents[1] / "README.md").read_text()
    assert "Socher" in text and "GLUE" in text and "Licence" in text


@pytest.mark.slow
def test_quickstart_trains_on_the_packaged_sample(composer, tmp_path, caplog, monkeypatch):
    monkeypatch.delenv("LORASB_DATA_DIR", raising=False)
    cfg = composer(["experiment=quickstart", "++trainer.fast_dev_run=true", "++trainer.enable_progress_bar=false"], tmp_path)
    with caplog.at_level("INFO", logger="lorasb"):
        summary = run(cfg)
    assert f"GLUE sst2 data: local files in {SAMPLE}" in caplog.messages
    assert summary["baseline"] == {
        "name": "majority class",
        "scores": {"val/accuracy": pytest.approx(majority_fraction(SAMPLE / "dev.tsv.gz", "label"))},
    }


QUICKSTART_LINE = re.compile(r"val/accuracy: before (\d\.\d{4}) → final (\d\.\d{4}) \(best (\d\.\d{4}); majority class (\d\.\d{4})\)")
MARGIN = 0.15  # the README's run: final 0.7924, 0.283 above the majority class and 0.323 above before


@pytest.mark.slow
def test_quickstart_command_learns_well_above_the_majority_class(tmp_path):
    """The README's quickstart command in full (one epoch on 4,000 sentences, about 2 minutes on 2
    cores): the accuracy line it prints holds the run's own figures, and the final accuracy beats
    both always predicting the majority class and the untrained model by ``MARGIN`` or more."""
    env = {k: v for k, v in os.environ.items() if k != "LORASB_DATA_DIR"}
    command = [sys.executable, "-m", "lorasb.train", "experiment=quickstart"]
    own = [f"hydra.run.dir={tmp_path}", f"gradient_cache.dir={tmp_path / 'gradient_cache'}"]  # estimated here, not read from a cache
    result = subprocess.run([*command, *own], cwd=REPO, env=env, capture_output=True, text=True, timeout=1500)
    assert result.returncode == 0, result.stderr[-3000:]
    log = (tmp_path / "train.log").read_text()
    assert f"GLUE sst2 data: local files in {SAMPLE}" in log
    (line,) = [match for match in map(QUICKSTART_LINE.search, log.splitlines()) if match]
    before, final, best, majority = map(float, line.groups())
    written = json.loads((tmp_path / "metrics.json").read_text())
    assert (before, final, best, majority) == (
        round(written["before"]["val/accuracy"], 4),
        round(written["final"]["val/accuracy"], 4),
        round(written["best"]["val/accuracy"], 4),
        round(written["baseline"]["scores"]["val/accuracy"], 4),
    )
    assert majority == round(majority_fraction(SAMPLE / "dev.tsv.gz", "label"), 4)
    print(f"\n{line.group(0)}")
    assert final >= majority + MARGIN, f"final accuracy {final} is not {MARGIN} above the majority class's {majority}"
    assert final >= before + MARGIN, f"final accuracy {final} is not {MARGIN} above the untrained model's {before}"


# --- the before/after line and its baseline -------------------------------------------------

SUMMARY = {
    "before": {"val/accuracy": 0.4},
    "final": {"val/accuracy": 0.5},
    "best": {"val/accuracy": 0.6},
    "baseline": {"name": "majority class", "scores": {"val/accuracy": 0.5}},
}


def test_the_summary_line_shows_the_baseline_beside_before_and_after():
    assert summary_line(SUMMARY, "val/accuracy") == "val/accuracy: before 0.4000 → final 0.5000 (best 0.6000; majority class 0.5000)"
    assert summary_line({**SUMMARY, "baseline": {}}, "val/accuracy") == "val/accuracy: before 0.4000 → final 0.5000 (best 0.6000)"


def test_a_run_ending_at_the_baseline_is_warned_about():
    warning = collapse_warning(SUMMARY, "val/accuracy")
    assert warning.startswith("val/accuracy ended at 0.5000, at or below the majority class score 0.5000")
    assert collapse_warning({**SUMMARY, "final": {"val/accuracy": 0.51}}, "val/accuracy") is None
    assert collapse_warning({**SUMMARY, "baseline": {}}, "val/accuracy") is None


def test_constant_prediction_scores():
    labels = torch.tensor([1, 0, 1, 1])
    assert glue_task("mrpc").constant_prediction_scores(labels) == {"accuracy": 0.75, "f1": pytest.approx(6 / 7)}
    assert glue_task("stsb").constant_prediction_scores(torch.tensor([0.5, 4.0])) == {"pearson": 0.0, "spearman": 0.0}


# --- train.log ------------------------------------------------------------------------------


@pytest.mark.slow
def test_what_a_run_says_goes_to_its_log_file(tmp_path, glue_fixtures):
    run_dir = tmp_path / "run"
    env = {key: value for key, value in os.environ.items() if key != "LORASB_DATA_DIR"}
    result = subprocess.run(
        [sys.executable, "-m", "lorasb.train", "task=glue/rte", f"data.dir={glue_fixtures}", "data.max_length=32",
         "init.num_samples=2", "init.batch_size=2", "++trainer.max_steps=1", "++trainer.enable_progress_bar=false",
         "++trainer.enable_model_summary=false", "export_adapter=false", f"hydra.run.dir={run_dir}"],
        cwd=REPO, env=env | {"WANDB_MODE": "offline"}, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    log = (run_dir / "train.log").read_text()
    majority = majority_fraction(glue_fixtures / "glue" / "RTE" / "dev.tsv", "label")
    for text in (f"GLUE rte data: local files in {glue_fixtures / 'glue' / 'RTE'}", "lora_sb initialised in",
                 "val/accuracy: before ", f"; majority class {majority:.4f})", f"run directory: {run_dir}",
                 "GPU available: False"):
        assert text in log, f"{text!r} not in train.log:\n{log}"
        assert result.stdout.count(text) == 1, f"{text!r} not printed once:\n{result.stdout}"
