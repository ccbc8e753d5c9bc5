"""The Hydra configs in conf/: every option composes, yaml and code agree, the CLI fails helpfully."""

import json
import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from hydra.utils import instantiate
from omegaconf import OmegaConf

from lorasb.config import config_problems
from lorasb.data import GLUE_TASKS, glue_task

REPO = Path(__file__).resolve().parents[1]
CONF = REPO / "conf"
GROUPS = ("model", "task", "method", "trainer", "logger", "experiment", "callbacks", "debug", "hparams_search")
INTERNAL_GROUPS = {"family", "paths", "hydra"}  # pulled in by other configs' defaults, not chosen on the command line
BERT_TARGETS = ["query", "value", "attention.output.dense", "output.dense"]


def options(group: str) -> list[str]:
    """Every option of a config group, nested ones as ``glue/mrpc``."""
    root = CONF / group
    return sorted(path.relative_to(root).with_suffix("").as_posix() for path in root.rglob("*.yaml"))


GROUP_OPTIONS = [(group, option) for group in GROUPS for option in options(group)]
GLUE_CONFIGS = [option for option in options("task") if option.startswith("glue/")]


# --- composition ----------------------------------------------------------------------------


def test_every_group_is_covered():
    groups = {path.name for path in CONF.iterdir() if path.is_dir()}
    assert groups == set(GROUPS) | INTERNAL_GROUPS
    assert all(options(group) for group in GROUPS)
    assert {"minilm", "roberta_base", "roberta_large"} <= set(options("model"))
    assert {"paper/glue", "quickstart", "paper/metamath", "paper/commonsense"} <= set(options("experiment"))
    assert {"smollm2_135m", "mistral_7b", "gemma2_9b", "llama3_2_1b", "llama3_2_3b", "llama3_1_8b"} <= set(options("model"))
    assert {"metamath", "commonsense"} <= set(options("task"))


@pytest.mark.parametrize(("group", "option"), GROUP_OPTIONS, ids=[f"{g}={o}" for g, o in GROUP_OPTIONS])
def test_every_option_composes_and_resolves(compose, group, option, tmp_path):
    own_file = ["data.train_file=train.csv"] if (group, option.split("/")[0]) == ("task", "custom") else []  # the user's tasks name their file
    generic = group == "model" and OmegaConf.is_missing(OmegaConf.load(CONF / "model" / f"{option}.yaml"), "name_or_path")
    named = ["model.name_or_path=some/model"] if generic else []  # model=hf_encoder, hf_causal_lm
    cfg = compose(f"{group}={option}", *own_file, *named)
    resolved = OmegaConf.to_container(cfg, resolve=True)  # nothing is loaded: Hub models resolve offline
    assert resolved["run_dir"] == str(tmp_path)
    for key in ("data", "module", "trainer", "task", "model", "optim", "init", "callbacks"):
        assert key in resolved, key
    assert resolved["module"]["rank"] == resolved["rank"]
    assert resolved["module"]["model"] == resolved["model"]
    assert resolved["data"]["task"] == resolved["module"].get("task", resolved["task"]["name"]) == resolved["task"]["name"]
    assert resolved["data"]["tokenizer"] == resolved["model"]["name_or_path"]
    assert resolved["callbacks"]  # callbacks=<one of its files> keeps just that callback
    if "checkpoint" in resolved["callbacks"]:
        assert resolved["callbacks"]["checkpoint"]["monitor"] == resolved["task"]["monitor"]
        assert resolved["callbacks"]["checkpoint"]["mode"] == resolved["task"]["mode"] == ("min" if "loss" in resolved["task"]["monitor"] else "max")
    assert resolved["model"]["kind"] in ("encoder", "causal_lm")
    assert resolved["trainer"]["default_root_dir"] == str(tmp_path)
    assert config_problems(cfg) == []


def test_glue_task_configs_cover_every_task():
    assert {option.removeprefix("glue/") for option in GLUE_CONFIGS} == set(GLUE_TASKS)


@pytest.mark.parametrize("option", GLUE_CONFIGS)
def test_glue_monitor_matches_the_task_spec(compose, option):
    cfg = compose(f"task={option}")
    assert cfg.task.name == option.removeprefix("glue/")
    assert cfg.task.monitor == "val/" + glue_task(cfg.task.name).main_metric


def test_roberta_large_on_mrpc(compose):
    cfg = compose("task=glue/mrpc", "model=roberta_large")
    assert cfg.model.name_or_path == "FacebookAI/roberta-large"
    assert list(cfg.model.target_modules) == BERT_TARGETS
    assert cfg.data.tokenizer == "FacebookAI/roberta-large"
    assert cfg.task.monitor == "val/f1"


@pytest.mark.parametrize("task", [None, "glue/rte"])
def test_paper_glue_preset(compose, task):
    cfg = compose("experiment=paper/glue", *([f"task={task}"] if task else []))
    assert cfg.model.name_or_path == "FacebookAI/roberta-large"
    assert list(cfg.model.target_modules) == BERT_TARGETS
    assert cfg.rank == 24 and cfg.module.rank == 24
    assert cfg.optim.lr == 1e-3
    assert cfg.data.batch_size == 128  # the preset wins over the GLUE family's default
    assert cfg.data.max_length == 128
    assert cfg.trainer.max_epochs == 30
    assert cfg.optim.warmup_ratio == 0.06
    assert cfg.optim.scheduler == "linear"
    assert cfg.init.num_samples == 2
    assert cfg.trainer.precision == "32-true"
    if task:
        assert cfg.task.name == "rte"


LLM_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def test_paper_metamath_preset(compose):
    cfg = compose("experiment=paper/metamath")
    assert cfg.model.name_or_path == "mistralai/Mistral-7B-v0.1" and cfg.model.dtype == "bfloat16"
    assert list(cfg.model.target_modules) == LLM_TARGETS
    assert cfg.task.name == "metamath" and list(cfg.eval.sets) == ["gsm8k", "math"]
    assert cfg.rank == cfg.module.rank == 96 and cfg.method.alpha is None
    assert (cfg.optim.lr, cfg.optim.scheduler, cfg.optim.warmup_ratio) == (1e-4, "cosine", 0.02)
    assert (cfg.data.batch_size, cfg.trainer.accumulate_grad_batches, cfg.trainer.max_epochs) == (1, 32, 1)
    assert (cfg.data.max_length, cfg.data.train_limit) == (512, 50000)
    assert (cfg.init.num_samples, cfg.init.batch_size) == (50, 3)
    assert cfg.trainer.precision == "bf16-mixed" and cfg.module._target_ == "lorasb.lightning.causal_lm.CausalLMModule"


def test_paper_commonsense_preset(compose):
    cfg = compose("experiment=paper/commonsense")
    assert cfg.model.name_or_path == "meta-llama/Llama-3.2-3B"
    assert list(cfg.model.target_modules) == LLM_TARGETS
    assert cfg.task.name == "commonsense" and len(cfg.eval.sets) == 8
    assert cfg.rank == 96 and cfg.method.dropout == 0.05
    assert (cfg.optim.lr, cfg.optim.scheduler, cfg.optim.warmup_ratio) == (2e-3, "linear", 0.02)
    assert (cfg.data.batch_size, cfg.trainer.accumulate_grad_batches, cfg.trainer.max_epochs) == (6, 32, 2)
    assert cfg.data.max_length == 256
    assert (cfg.init.num_samples, cfg.init.batch_size) == (170, 10)


def test_a_task_refuses_the_wrong_kind_of_model(compose):
    from lorasb.config import check_model_fits_task

    with pytest.raises(ValueError, match="needs a model of kind causal_lm, but the chosen model is of kind encoder; choose one of: model=gemma2_9b, .*model=smollm2_135m"):
        check_model_fits_task(compose("task=metamath"))
    with pytest.raises(ValueError, match="choose one of: model=hf_encoder, model=minilm, model=roberta_base, model=roberta_large"):
        check_model_fits_task(compose("task=glue/rte", "model=llama3_2_1b"))
    check_model_fits_task(compose("task=commonsense", "model=smollm2_135m"))


def test_evaluate_config_composes(tmp_path):
    import hydra

    from lorasb.config import register_resolvers, register_settings

    register_resolvers()
    register_settings()
    with hydra.initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = hydra.compose("evaluate", overrides=[f"run_dir={tmp_path}", "eval.sets=[piqa,siqa]", "eval.limit=50", "model=llama3_1_8b"])
    assert list(cfg.eval.sets) == ["piqa", "siqa"] and cfg.eval.limit == 50
    assert cfg.model.name_or_path == "meta-llama/Llama-3.1-8B"
    assert cfg.adapter is None and cfg.checkpoint is None


def test_rank_override(compose):
    cfg = compose("rank=8")
    assert cfg.rank == 8
    assert cfg.module.rank == 8


@pytest.mark.slow
def test_a_sweep_runs_through_the_submitit_launcher(tmp_path, glue_fixtures):
    """``hydra/launcher=submitit_local`` runs each job as its own process, as submitit_slurm does on a cluster."""
    sweep = tmp_path / "sweep"
    result = cli(
        "-m", "hydra/launcher=submitit_local", "hydra.launcher.timeout_min=10", "rank=2,4", "task=glue/rte",
        f"data.dir={glue_fixtures}", "++trainer.fast_dev_run=true", "data.max_length=32", "init.num_samples=2",
        "validate_before=false", "export_adapter=false", f"gradient_cache.dir={tmp_path / 'cache'}", f"hydra.sweep.dir={sweep}",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    for number, rank in enumerate((2, 4)):
        job = sweep / f"{number}_rank={rank}"  # named after what the sweep varies, as under the basic launcher
        assert json.loads((job / "metrics.json").read_text())["parameters"]["trainable"] == 24 * rank**2 + (384 * 2 + 2)
    assert len(list((sweep / ".submitit").glob("*/*_0_result.pkl"))) == 2  # two submitit jobs, each its own process


@pytest.mark.slow
def test_multirun_sweeps_rank(tmp_path, glue_fixtures):
    """``-m rank=8,16,24`` launches three jobs, each with its own rank (and adapter size).

    Hydra 1.3 refuses ``-m`` together with ``--cfg job`` ("Only one of --run, --multirun, --cfg
    ... can be specified"), so the sweep really runs: three one-step jobs on the RTE fixture.
    """
    sweep = tmp_path / "sweep"
    result = cli(
        "-m",
        "rank=8,16,24",
        "task=glue/rte",
        f"data.dir={glue_fixtures}",
        "++trainer.fast_dev_run=true",
        "data.max_length=32",
        "init.num_samples=2",
        "validate_before=false",
        "export_adapter=false",
        f"gradient_cache.dir={tmp_path / 'cache'}",
        f"hydra.sweep.dir={sweep}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    output = result.stdout + result.stderr
    assert "Launching 3 jobs" in output
    for number, rank in enumerate((8, 16, 24)):
        assert re.search(rf"#{number} : rank={rank}\b", output), output[-3000:]
        job = sweep / f"{number}_rank={rank}"  # named after the overrides the sweep varies
        assert OmegaConf.load(job / ".hydra" / "config.yaml").rank == rank
        summary = json.loads((job / "metrics.json").read_text())
        assert summary["parameters"]["trainable"] == 24 * rank**2 + (384 * 2 + 2)


# --- instantiation with each logger -----------------------------------------------------------


@pytest.mark.parametrize("logger", options("logger"))
def test_instantiate_with_each_logger(compose, logger, tmp_path, monkeypatch, glue_fixtures):
    import lightning as L
    from lightning.pytorch.loggers import CSVLogger, MLFlowLogger, TensorBoardLogger, WandbLogger

    from lorasb.lightning.classification import ClassificationModule
    from lorasb.data import GlueDataModule

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "wandb_dir"))
    monkeypatch.setenv("WANDB_SILENT", "true")
    cfg = compose("model=minilm", "task=glue/rte", f"data.dir={glue_fixtures}", f"logger={logger}")
    datamodule = instantiate(cfg.data)
    module = instantiate(cfg.module)
    loggers = [instantiate(c) for c in cfg.logger.values()]
    callbacks = [instantiate(c) for c in cfg.callbacks.values()]
    trainer = instantiate(cfg.trainer, logger=loggers, callbacks=callbacks)
    assert isinstance(datamodule, GlueDataModule) and datamodule.task_spec.name == "rte"
    assert isinstance(module, ClassificationModule) and module.hparams.rank == cfg.rank
    assert isinstance(trainer, L.Trainer)
    assert trainer.loggers == loggers and len(loggers) == 1
    expected = {"csv": CSVLogger, "wandb": WandbLogger, "tensorboard": TensorBoardLogger, "mlflow": MLFlowLogger}[logger]
    assert isinstance(loggers[0], expected)
    assert Path(trainer.default_root_dir) == tmp_path
    try:
        loggers[0].log_hyperparams({"rank": cfg.rank})
        loggers[0].log_metrics({"val/accuracy": 0.5}, step=0)
        loggers[0].save()
    finally:
        if isinstance(loggers[0], WandbLogger):
            assert loggers[0].experiment.settings.mode == "offline"
            assert loggers[0].experiment.name == "rte-lora_sb-r24"
            loggers[0].experiment.finish()
    written = {"wandb": "wandb/offline-run-*", "csv": "logs/**/metrics.csv", "tensorboard": "tensorboard/events.out.tfevents.*", "mlflow": "mlflow.db"}
    assert any(tmp_path.glob(written[logger]))


# --- command-line errors ------------------------------------------------------------------------

CHEAP = [
    "data.train_limit=16",
    "data.val_limit=16",
    "data.max_length=32",
    "init.num_samples=2",
    "init.batch_size=2",
    "++trainer.max_steps=1",
    "++trainer.limit_val_batches=1",
    "validate_before=false",
    "export_adapter=false",
]


def cli(*args: str, env: dict | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if k != "LORASB_DATA_DIR"}
    base |= {"HYDRA_FULL_ERROR": "0", "WANDB_MODE": "offline"}
    return subprocess.run(
        [sys.executable, "-m", "lorasb.train", *args],
        cwd=REPO,
        env=base | (env or {}),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _on_fixture(fixtures: Path) -> list[str]:
    return ["task=glue/rte", f"data.dir={fixtures}", *CHEAP]


# name: (arguments, {extra env}, texts the error must contain)
CLI_ERRORS = {
    "unknown_model": (lambda fx: ["model=foo"], {}, ["foo", "minilm", "roberta_base", "roberta_large"]),
    "unknown_trainer": (lambda fx: ["trainer=foo"], {}, ["foo", "cpu", "gpu"]),
    "unknown_method": (lambda fx: ["method=foo"], {}, ["foo", "dora", "full", "lora", "lora_ga", "lora_sb", "lora_xs", "pissa"]),
    "unknown_logger_in_a_list": (lambda fx: ["logger=[csv,foo]"], {}, ["unknown logger 'foo'", "csv", "wandb"]),
    "unknown_task_option": (
        lambda fx: ["task=glue/foo"],
        {},
        ["glue/foo", *(f"glue/{name}" for name in GLUE_TASKS)],
    ),
    "unknown_experiment": (lambda fx: ["experiment=foo"], {}, ["foo", "paper/glue", "quickstart"]),
    "task_needs_a_causal_lm": (lambda fx: ["task=metamath"], {}, ["needs a model of kind causal_lm", "model=smollm2_135m"]),
    "unknown_scheduler": (
        lambda fx: [*_on_fixture(fx), "optim.scheduler=foo"],
        {},
        ["optim.scheduler=foo: expected one of linear, cosine, constant"],
    ),
    "unknown_glue_name": (
        lambda fx: [*_on_fixture(fx), "task.name=foo"],
        {},
        ["Unknown GLUE task 'foo'", *GLUE_TASKS],
    ),
    "no_matching_target": (
        lambda fx: [*_on_fixture(fx), "model.target_modules=[nope]"],
        {},
        ["nope", "attention.self.query", "attention.self.key", "intermediate.dense", "output.dense", "classifier"],
    ),
    "rank_too_large": (
        lambda fx: [*_on_fixture(fx), "rank=1000"],
        {},
        ["rank 1000", "bert.encoder.layer.0.attention.self.query", "at most 384", "rank ≤ 384"],
    ),
    "invalid_values": (
        lambda fx: ["task=glue/mrpc", "optim.lr=abc", "init.num_samples=0", "data.train_limit=0"],
        {},
        ["error: the config has 3 invalid values:", "optim.lr=abc: expected a number > 0",
         "init.num_samples=0: expected an integer ≥ 1", "data.train_limit=0: expected an integer ≥ 1 or null"],
    ),
    "malformed_data_row": (
        lambda fx: ["task=glue/rte", f"data.dir={fx / 'malformed'}", *CHEAP],
        {},
        ["error: ", "malformed/glue/RTE/train.tsv, line 3: 5 tab-separated fields; expected 4, one per column "
         "(index, sentence1, sentence2, label); a tab inside a text splits it"],
    ),
    "offline_without_data_dir": (
        lambda fx: ["task=glue/rte", *CHEAP],
        {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"},
        ["data.dir", "glue/RTE/train.tsv"],
    ),
}


@pytest.fixture(scope="module")
def cli_errors(tmp_path_factory, glue_fixtures):
    """Every CLI error case, started two at a time in the background on first use."""
    root = tmp_path_factory.mktemp("cli")
    pool = ThreadPoolExecutor(max_workers=2)
    futures = {}
    for name, (args, env, _) in CLI_ERRORS.items():
        run_dir = root / name
        env = env | {"HF_HOME": str(root / "hf_home")} if env else env
        futures[name] = pool.submit(cli, *args(glue_fixtures), f"hydra.run.dir={run_dir}", env=env)
    yield futures
    pool.shutdown(wait=True, cancel_futures=True)


@pytest.mark.slow
@pytest.mark.parametrize("name", CLI_ERRORS)
def test_cli_error_message(cli_errors, name):
    result = cli_errors[name].result()
    output = result.stdout + result.stderr
    assert result.returncode != 0, output[-3000:]
    missing = [text for text in CLI_ERRORS[name][2] if text not in output]
    assert not missing, f"{missing} not in the output:\n{output[-3000:]}"
