"""What the entry points promise: LORASB_DATA_DIR sets data.dir, train.main returns the best value
of the monitored metric (what Hydra's sweepers read), trainer.max_steps=0 trains and exports
nothing and exits 0, and the other commands' --help."""

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lorasb.train import run

REPO = Path(__file__).resolve().parents[1]
TINY = [
    "model=minilm", "task=glue/rte", "method=lora", "trainer=cpu", "logger=csv", "data.batch_size=2", "data.max_length=32",
    "optim.lr=1e-3", "++trainer.num_sanity_val_steps=0", "++trainer.enable_progress_bar=false", "++trainer.enable_model_summary=false",
]  # fmt: skip


# --- LORASB_DATA_DIR ------------------------------------------------------------------------------


@pytest.mark.parametrize("task", ["glue/rte", "metamath", "commonsense"])
def test_the_data_dir_comes_from_lorasb_data_dir(task, compose, monkeypatch, tmp_path):
    model = "model=smollm2_135m" if task != "glue/rte" else "model=minilm"
    monkeypatch.setenv("LORASB_DATA_DIR", str(tmp_path / "data root"))
    assert compose(f"task={task}", model).data.dir == str(tmp_path / "data root")
    assert compose(f"task={task}", model, "data.dir=/elsewhere").data.dir == "/elsewhere"  # the command line wins
    monkeypatch.delenv("LORASB_DATA_DIR")
    assert compose(f"task={task}", model).data.dir is None  # unset: the Hub


@pytest.mark.slow  # trains all-MiniLM-L6-v2 for a step
def test_a_run_reads_its_data_from_lorasb_data_dir(composer, tmp_path, glue_fixtures, monkeypatch, caplog):
    caplog.set_level(logging.INFO)
    monkeypatch.setenv("LORASB_DATA_DIR", str(glue_fixtures))
    cfg = composer([*TINY, "trainer.max_steps=1", "validate_before=false", "export_adapter=false"], tmp_path)
    summary = run(cfg)
    assert f"GLUE rte data: local files in {glue_fixtures / 'glue' / 'RTE'}" in caplog.text
    assert summary["steps"] == 1 and "val/accuracy" in summary["final"]


# --- python -m lorasb.train as a command ----------------------------------------------------------


def train(run_dir: Path, *overrides: str) -> tuple[subprocess.CompletedProcess, dict]:
    """``python -m lorasb.train`` with a Hydra callback recording what ``main`` returned."""
    record = run_dir.parent / f"{run_dir.name}_return.json"
    env = {key: value for key, value in os.environ.items() if key != "LORASB_DATA_DIR"}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), str(REPO / "tests"), *filter(None, [env.get("PYTHONPATH")])])
    result = subprocess.run(
        [sys.executable, "-m", "lorasb.train", *TINY, *overrides, f"hydra.run.dir={run_dir}",
         "+hydra.callbacks.record._target_=helpers.job_return.RecordReturn", f"+hydra.callbacks.record.path={record}"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    return result, json.loads(record.read_text())


@pytest.mark.slow
def test_train_main_returns_the_best_value_of_the_monitored_metric(tmp_path, glue_fixtures):
    _, returned = train(tmp_path / "run", f"data.dir={glue_fixtures}", "trainer.max_epochs=2", "export_adapter=false",
                        f"gradient_cache.dir={tmp_path / 'cache'}")  # fmt: skip
    summary = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert returned["status"] == "COMPLETED"
    assert isinstance(returned["value"], float) and returned["value"] == summary["best"]["val/accuracy"]
    assert summary["steps"] == 4


@pytest.mark.slow
def test_max_steps_zero_trains_and_exports_nothing_and_exits_0(tmp_path, glue_fixtures):
    result, returned = train(tmp_path / "run", f"data.dir={glue_fixtures}", "trainer.max_steps=0",
                             f"gradient_cache.dir={tmp_path / 'cache'}")  # fmt: skip
    assert returned == {"status": "COMPLETED", "value": None}  # nothing trained: no best value
    summary = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert summary["steps"] == 0 and summary["final"] == {} and summary["best"] == {} and "val/accuracy" in summary["before"]
    log = (tmp_path / "run" / "train.log").read_text()
    assert "no adapter exported: nothing was trained (0 optimizer steps; trainer.max_epochs=3, trainer.max_steps=0, " in log
    assert f"val/accuracy: nothing was trained (before {summary['before']['val/accuracy']:.4f})" in log
    assert not (tmp_path / "run" / "adapter").exists() and not (tmp_path / "run" / "init_stats.json").exists()


# --- --help of the other commands -----------------------------------------------------------------


def help_of(module: str) -> str:
    result = subprocess.run([sys.executable, "-m", module, "--help"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


@pytest.mark.slow  # a subprocess
def test_export_help_lists_its_options():
    text = help_of("lorasb.export")
    assert text.startswith("usage: python -m lorasb.export [-h] [--out OUT] [--merged]")
    for option in ("source", "--out OUT", "--merged", "--pad-rank PAD_RANK", "--base-model BASE_MODEL"):
        assert option in text
    assert "Export a trained run" in text


@pytest.mark.slow  # a subprocess
def test_report_help_says_what_it_reads():
    text = help_of("lorasb.report")
    assert text.startswith("usage: python -m lorasb.report [-h] [--out OUT] [--compare COMPARE]")
    for option in ("folders", "--against AGAINST", "--confidence CONFIDENCE"):
        assert option in text


@pytest.mark.slow  # a subprocess
def test_bench_help_lists_its_options():
    text = help_of("lorasb.bench")
    assert text.startswith("usage: python -m lorasb.bench [-h]")
    for option in ("--model MODEL", "--batch BATCH", "--seq-len SEQ_LEN", "--rank RANK", "--init-samples INIT_SAMPLES",
                   "--repeats REPEATS", "--warmup WARMUP", "--device DEVICE", "--targets", "--seed SEED", "--out OUT"):  # fmt: skip
        assert option in text, option
