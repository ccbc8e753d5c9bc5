"""The config tree around the choices: callbacks, paths, hydra, debug, hparams_search, the
TensorBoard and MLflow loggers, model and task families, and compare presets built on the paper's."""

import json
import re
import time

import hydra
import pytest
import yaml
from hydra.utils import instantiate
from omegaconf import OmegaConf

from lorasb.config import group_options, register_resolvers
from lorasb.config.choices import model_kind
from test_config import CONF, cli

QUICK = ["experiment=quickstart", "data.train_limit=64", "data.val_limit=64", "data.batch_size=16", "init.num_samples=16",
         "init.batch_size=16", "trainer.max_steps=4", "export_adapter=false", "trainer.enable_progress_bar=false"]  # 4 steps in one epoch
DEFAULT_CALLBACKS = ["checkpoint", "last_checkpoint", "exact_resume", "lr_monitor", "guard", "summary", "final_validation"]


def compose_with_hydra(*overrides: str):
    """conf/train.yaml with its ``hydra:`` node, as ``--cfg all`` shows it."""
    register_resolvers()
    with hydra.initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return hydra.compose("train", overrides=["run_dir=/run", *overrides], return_hydra_config=True)


# --- callbacks --------------------------------------------------------------------------------


def test_the_default_callbacks_keep_their_values(compose, tmp_path):
    callbacks = OmegaConf.to_container(compose("task=glue/mrpc", "optim.lr=1e-3").callbacks, resolve=True)
    assert list(callbacks) == DEFAULT_CALLBACKS
    assert callbacks == {
        "checkpoint": {"_target_": "lightning.pytorch.callbacks.ModelCheckpoint", "dirpath": f"{tmp_path}/checkpoints",
                       "monitor": "val/f1", "mode": "max", "save_top_k": 1, "filename": "best", "enable_version_counter": False},
        "last_checkpoint": {"_target_": "lorasb.lightning.last_checkpoint.LastCheckpoint", "dirpath": f"{tmp_path}/checkpoints",
                            "every_n_steps": None, "every_minutes": None},
        "exact_resume": {"_target_": "lorasb.lightning.resume.ExactResume", "seed": 42},
        "lr_monitor": {"_target_": "lightning.pytorch.callbacks.LearningRateMonitor", "logging_interval": "step"},
        "guard": {"_target_": "lorasb.lightning.guard.TrainingGuard", "check_every": 1, "divergence_factor": 10},
        "summary": {"_target_": "lorasb.lightning.summary.RunSummary",
                    "run": {"task": "mrpc", "method": "lora_sb", "rank": 24, "lr": 1e-3, "monitor": "val/f1"}},
        "final_validation": {"_target_": "lorasb.lightning.final_validation.FinalValidation"},
    }  # fmt: skip


def test_the_instruction_tasks_still_write_last_ckpt_every_30_minutes(compose):
    assert compose("task=metamath", "model=smollm2_135m").callbacks.last_checkpoint.every_minutes == 30
    assert compose("task=metamath", "model=smollm2_135m", "callbacks=with_early_stopping").callbacks.last_checkpoint.every_minutes == 30


@pytest.mark.parametrize(("task", "monitor", "mode"), [("glue/rte", "val/accuracy", "max"), ("metamath", "val/loss", "min")])
def test_early_stopping_is_attached_only_when_asked(compose, task, monitor, mode):
    from lightning.pytorch.callbacks import EarlyStopping

    model = "model=smollm2_135m" if task == "metamath" else "model=minilm"
    assert "early_stopping" not in compose(f"task={task}", model).callbacks
    cfg = compose(f"task={task}", model, "callbacks=with_early_stopping", "callbacks.early_stopping.patience=5")
    assert list(cfg.callbacks) == [*DEFAULT_CALLBACKS, "early_stopping"]
    stopper = instantiate(cfg.callbacks.early_stopping)
    assert isinstance(stopper, EarlyStopping)
    assert (stopper.monitor, stopper.mode, stopper.patience) == (monitor, mode, 5)


# --- paths and hydra --------------------------------------------------------------------------


def test_data_dir_comes_from_paths_and_the_environment(compose, monkeypatch, tmp_path):
    monkeypatch.delenv("LORASB_DATA_DIR", raising=False)
    assert compose("task=glue/rte").data.dir is None
    monkeypatch.setenv("LORASB_DATA_DIR", str(tmp_path / "env"))
    assert compose("task=glue/rte").data.dir == str(tmp_path / "env")
    assert compose("task=metamath", "model=smollm2_135m", f"paths.data_dir={tmp_path}").data.dir == str(tmp_path)
    assert compose("task=glue/rte", f"data.dir={tmp_path}/own").data.dir == f"{tmp_path}/own"  # data.dir still wins


def test_runs_sweeps_and_debug_runs_go_under_paths_output_dir(tmp_path):
    cfg = compose_with_hydra(f"paths.output_dir={tmp_path}")
    assert re.fullmatch(rf"{tmp_path}/runs/\d{{4}}-\d\d-\d\d/\d\d-\d\d-\d\d", cfg.hydra.run.dir)
    assert cfg.hydra.sweep.dir.startswith(f"{tmp_path}/multirun/")
    assert compose_with_hydra(f"paths.output_dir={tmp_path}", "debug=limit").hydra.run.dir.startswith(f"{tmp_path}/debug/")
    assert not cfg.hydra.job.chdir and cfg.hydra.help.app_name == "lorasb.train"


# --- families ---------------------------------------------------------------------------------


def test_model_and_task_families_are_apart_and_no_option():
    assert sorted(p.stem for p in (CONF / "family" / "model").glob("*.yaml")) == ["causal_lm", "encoder"]
    assert sorted(p.stem for p in (CONF / "family" / "task").glob("*.yaml")) == ["glue", "instruction", "labeled_files"]
    assert not list((CONF / "family").glob("*.yaml"))
    assert {model_kind(name) for name in group_options("model")} == {"encoder", "causal_lm"}
    assert not [option for group in ("model", "task") for option in group_options(group) if "family" in option]


# --- debug ------------------------------------------------------------------------------------


@pytest.mark.parametrize("option", ["fast_dev_run", "overfit", "limit", "profiler"])
def test_a_debug_option_shortens_the_run_and_beats_the_experiment(compose, option):
    cfg = compose("experiment=quickstart", f"debug={option}")
    short = {"fast_dev_run": lambda trainer: trainer.fast_dev_run is True, "overfit": lambda trainer: trainer.overfit_batches == 4,
             "limit": lambda trainer: (trainer.limit_train_batches, trainer.max_epochs) == (8, 2),
             "profiler": lambda trainer: trainer.profiler._target_.endswith("SimpleProfiler") and trainer.limit_train_batches == 20}  # fmt: skip
    assert short[option](cfg.trainer)
    assert compose("experiment=quickstart").trainer.fast_dev_run is False  # debug: null


@pytest.mark.slow  # a training process: all-MiniLM-L6-v2 for one batch
def test_debug_fast_dev_run_trains_one_batch_for_real(tmp_path):
    started = time.monotonic()
    result = cli("experiment=quickstart", "debug=fast_dev_run", f"hydra.run.dir={tmp_path}", f"gradient_cache.dir={tmp_path / 'cache'}",
                 "trainer.enable_progress_bar=false", timeout=900)  # fmt: skip  (seconds alone; minutes on a busy machine)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((tmp_path / "metrics.json").read_text())
    assert summary["parameters"]["trainable"] == 24 * 16**2 + (384 * 2 + 2) and 0 <= summary["final"]["val/accuracy"] <= 1
    assert (tmp_path / "adapter" / "adapter_model.safetensors").is_file()  # one optimizer step: trained, exported
    assert "fast_dev_run" in result.stdout + result.stderr
    print(f"debug=fast_dev_run: {time.monotonic() - started:.0f} s")


# --- loggers ----------------------------------------------------------------------------------


@pytest.mark.slow  # a training process: all-MiniLM-L6-v2 for a few steps
def test_tensorboard_and_mlflow_write_what_reads_back(tmp_path):
    from mlflow.tracking import MlflowClient
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    result = cli(*QUICK, "logger=[tensorboard,mlflow]", f"hydra.run.dir={tmp_path}", f"gradient_cache.dir={tmp_path / 'cache'}", timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((tmp_path / "metrics.json").read_text())

    events = EventAccumulator(str(tmp_path / "tensorboard"))
    events.Reload()
    assert [event.step for event in events.Scalars("train/loss")] == [0, 1, 2, 3]
    assert {"val/accuracy", "val/loss", "train/lr"} <= set(events.Tags()["scalars"])
    assert events.Scalars("val/accuracy")[-1].value == pytest.approx(summary["final"]["val/accuracy"])

    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    (run,) = client.search_runs([client.get_experiment_by_name("lorasb").experiment_id])
    assert [metric.step for metric in client.get_metric_history(run.info.run_id, "train/loss")] == [0, 1, 2, 3]
    assert run.data.metrics["best/val/accuracy"] == pytest.approx(summary["best"]["val/accuracy"]) and "val/loss" in run.data.metrics
    assert run.data.params["rank"] == "16" and run.info.status == "FINISHED"


# --- hparams_search ---------------------------------------------------------------------------


@pytest.mark.parametrize(("task", "direction"), [("glue/rte", "maximize"), ("metamath", "minimize")])
def test_the_optuna_search_composes_and_follows_the_monitor(task, direction):
    model = "model=smollm2_135m" if task == "metamath" else "model=minilm"
    sweeper = compose_with_hydra(f"task={task}", model, "hparams_search=optuna").hydra.sweeper
    assert sweeper._target_ == "hydra_plugins.hydra_optuna_sweeper.optuna_sweeper.OptunaSweeper"
    assert sweeper.direction == direction
    assert set(sweeper.params) == {"optim.lr", "rank", "method.alpha"}


@pytest.mark.slow
def test_a_two_trial_optuna_search_runs_offline_and_returns_the_metric(tmp_path):
    sweep = tmp_path / "sweep"
    result = cli(*QUICK, "hparams_search=optuna", "hydra.sweeper.n_trials=2", "validate_before=false",
                 f"hydra.sweep.dir={sweep}", f"gradient_cache.dir={tmp_path / 'cache'}", timeout=1800)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    trials = sorted(path for path in sweep.iterdir() if (path / "metrics.json").is_file())
    assert len(trials) == 2
    returned = [json.loads((path / "metrics.json").read_text())["best"]["val/accuracy"] for path in trials]
    found = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    assert found["best_value"] == pytest.approx(max(returned))
    assert set(found["best_params"]) == {"optim.lr", "rank", "method.alpha"}


# --- compare presets --------------------------------------------------------------------------

# What compare/<name>.yaml changes in paper/<name>.yaml; each is set, with its reason, in that file.
COMPARE_DIFFERENCES = {
    "glue": {"optim.lr", "hydra.sweeper.params"},
    "metamath": {"optim.lr", "hydra.sweeper.params"},
}


def leaves(config: dict, prefix: str = "") -> dict:
    """``{"a.b": value}`` for every leaf; ``hydra.sweeper.params`` as one leaf (the sweep)."""
    out = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and name != "hydra.sweeper.params":
            out |= leaves(value, f"{name}.")
        else:
            out[name] = value
    return out


@pytest.mark.parametrize("name", COMPARE_DIFFERENCES)
def test_compare_presets_are_the_paper_presets_but_for_the_listed_differences(name):
    paper, compare = (compose_with_hydra(f"experiment={kind}/{name}") for kind in ("paper", "compare"))
    ignored = ("hydra.overrides.", "hydra.runtime.", "hydra.job.override_dirname")  # the command line itself
    paper, compare = (leaves(OmegaConf.to_container(cfg)) for cfg in (paper, compare))  # unresolved: interpolations compare as written
    differing = {key for key in paper.keys() | compare.keys() if paper.get(key) != compare.get(key) and not key.startswith(ignored)}
    assert differing == COMPARE_DIFFERENCES[name]
    text = (CONF / "experiment" / "compare" / f"{name}.yaml").read_text()
    set_in_file = leaves({k: v for k, v in yaml.safe_load(text).items() if k != "defaults"})
    assert set(set_in_file) == differing  # the file sets nothing the paper preset already has
    lines = text.splitlines()
    for key in differing:  # each difference says why, on its line or the comment line just above
        number = next(i for i, line in enumerate(lines) if re.match(rf"\s*{re.escape(key.split('.')[-1])}:", line))
        assert "#" in lines[number] or lines[number - 1].strip().startswith("#"), key
