"""A real comparison sweep: one gradient estimate shared by every job, and its report."""

import csv
import json
import shutil
from pathlib import Path

import pytest
from omegaconf import OmegaConf
from helpers.processes import python
from helpers.wandb_files import logged

from lorasb.config.resolvers import path_safe
from lorasb.train import run

REPO = Path(__file__).resolve().parents[1]
MINILM_LAYERS = 24  # 6 blocks × the 4 targets of conf/model/minilm.yaml
HEAD = 384 * 2 + 2


@pytest.fixture(scope="module")
def sweep(tmp_path_factory, shared_data):
    """minilm on a 32-row MRPC slice: LoRA-SB and LoRA-GA at ranks 2 and 4, one step each."""
    root = tmp_path_factory.mktemp("compare")
    result = python(
        "-m", "lorasb.train", "-m",
        "task=glue/mrpc", "method=lora_sb,lora_ga", "rank=2,4",
        f"data.dir={shared_data}", "data.train_limit=32", "data.val_limit=16", "data.max_length=32",
        "init.num_samples=8", "init.batch_size=4", "++trainer.fast_dev_run=true", "validate_before=false",
        "++trainer.enable_progress_bar=false", "++trainer.enable_model_summary=false", "logger=[csv,wandb]",
        f"gradient_cache.dir={root / 'cache'}", f"hydra.sweep.dir={root / 'sweep'}",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    return root, result.stdout + result.stderr


def jobs(root: Path) -> dict[tuple[str, int], Path]:
    found = {}
    for metrics in (root / "sweep").glob("*/metrics.json"):
        run = json.loads(metrics.read_text())["run"]
        found[run["method"], run["rank"]] = metrics.parent
    return found


@pytest.mark.slow
def test_sweep_runs_every_job_in_a_named_folder(sweep):
    root, _ = sweep
    found = jobs(root)
    assert set(found) == {("lora_sb", 2), ("lora_sb", 4), ("lora_ga", 2), ("lora_ga", 4)}
    for (method, rank), job in found.items():
        assert job.name.split("_", 1)[1] == f"method={method},rank={rank}"
        summary = json.loads((job / "metrics.json").read_text())
        trainable = MINILM_LAYERS * rank**2 if method == "lora_sb" else None
        if trainable is not None:
            assert summary["parameters"]["trainable"] == trainable + HEAD
        assert (job / "adapter" / "adapter_config.json").is_file()
        # one W&B run per job, in the group of the multirun, named after the job's overrides
        (run_file,) = job.glob("wandb/offline-run-*/run-*.wandb")
        wandb_run = logged(run_file)
        assert wandb_run["group"] == path_safe(str(root / "sweep"))
        assert wandb_run["name"] == f"method={method},rank={rank}"


@pytest.mark.slow
def test_sweep_estimates_the_gradient_once(sweep):
    root, output = sweep
    sources = sorted(json.loads((job / "init_stats.json").read_text())["gradients"] for job in jobs(root).values())
    # once per form the methods read: LoRA-SB's int8 signs, LoRA-GA's sums
    assert sources == ["cached", "cached", "estimated", "estimated"]
    (key,) = [path for path in (root / "cache").iterdir() if path.is_dir()]
    for form in ("sign", "sum"):
        meta = json.loads((key / form / "meta.json").read_text())
        assert len(meta["layers"]) == MINILM_LAYERS and meta["samples"] == 8 and meta["batches"] == 2
        assert meta["inputs"]["settings"]["init"] == {"num_samples": 8, "batch_size": 4, "accumulator_dtype": "float32", "head_bias": "prior"}
        assert "rank" not in json.dumps(meta["inputs"])
        assert len(list((key / form).glob("*.pt"))) == MINILM_LAYERS
    # LoRA-SB's SVD of sign(ΣG): once per rank
    assert sorted(p.name.split("-")[0] for p in (key / "sign_factors").iterdir()) == ["r2", "r4"]
    assert output.count("gradient cache hit: 24 layers") == 2


@pytest.mark.slow
def test_report_of_the_sweep(sweep, tmp_path):
    root, _ = sweep
    folder = shutil.copytree(root / "sweep", tmp_path / "sweep", symlinks=True)  # the report is written beside the runs: into a copy
    result = python("-m", "lorasb.report", str(folder))
    assert result.returncode == 0, result.stderr
    with open(folder / "report.csv") as file:
        rows = list(csv.DictReader(file))
    assert [(r["method"], r["rank"]) for r in rows] == [("lora_ga", "2"), ("lora_ga", "4"), ("lora_sb", "2"), ("lora_sb", "4")]
    assert all(r["task"] == "mrpc" and r["metric"] == "val/f1" and r["best"] != "" for r in rows)
    assert [int(r["trainable"]) for r in rows if r["method"] == "lora_sb"] == [24 * 4 + HEAD, 24 * 16 + HEAD]
    table = (folder / "report.md").read_text()
    main = table.split("## Main metric")[1].split("\n## ")[0]
    assert "| task | method | rank | lr | n | seeds | metric | best |" in main and main.count("\n| mrpc | ") == 4
    assert "No task has runs of both lora_sb and lora." in table
    for figure in ("report.png", "report_curves.png"):
        assert (folder / figure).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_report_of_a_folder_without_runs(tmp_path):
    result = python("-m", "lorasb.report", str(tmp_path))
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr == (
        f"error: no runs under {tmp_path}: no metrics.json found; give a multirun folder "
        "(outputs/multirun/<date>/<time>) or a folder of finished runs\n"
    )


EXPECTED_KEYS = {
    "train/loss", "train/lr", "val/f1", "val/accuracy",
    "before/val/f1", "final/val/f1", "best/val/f1",
    "parameters/trainable", "parameters/total", "parameters/trainable_ratio",
    "init/seconds", "init/gradient_seconds", "init/factor_seconds", "init/first_step_lr",
    "init/relative_error_mean", "init/energy_mean",
}  # fmt: skip


@pytest.mark.slow
def test_wandb_offline_run_and_csv_hold_the_diagnostics(composer, tmp_path, shared_data, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    overrides = [
        "task=glue/mrpc", "logger=[csv,wandb]", f"data.dir={shared_data}", "data.train_limit=16", "data.val_limit=16",
        "data.max_length=32", "init.num_samples=4", "init.batch_size=4", "trainer.max_steps=2", "rank=4",
        "++trainer.enable_progress_bar=false", "++trainer.enable_model_summary=false",
    ]  # fmt: skip
    run(composer(overrides, tmp_path))
    (run_file,) = tmp_path.glob("wandb/offline-run-*/run-*.wandb")
    wandb_run = logged(run_file)
    assert EXPECTED_KEYS <= wandb_run["history"], EXPECTED_KEYS - wandb_run["history"]
    assert {f"init/relative_error/bert.encoder.layer.{i}.output.dense" for i in range(6)} <= wandb_run["history"]
    spectra = {key.split("_table/")[0] for key in wandb_run["history"] if key.startswith("init/spectrum/")}
    assert spectra == {f"init/spectrum/bert.encoder.layer.*.{t}" for t in ("attention.self.query", "attention.self.value", "attention.output.dense", "output.dense")}
    assert any(key.startswith("init/layers/") for key in wandb_run["history"])
    assert {"seed", "data", "trainer", "method", "optim", "init", "overrides"} <= wandb_run["config"]
    assert wandb_run["group"] == "mrpc" and wandb_run["name"] == "mrpc-lora_sb-r4"  # a single run outside a sweep
    # the same diagnostics in the CSV logger's folder
    with open(tmp_path / "logs" / "init_layers.csv") as file:
        layers = list(csv.DictReader(file))
    assert len(layers) == MINILM_LAYERS and all(len(row["singular_values"].split()) == 4 for row in layers)
    assert all(0 <= float(row["relative_error"]) < 1 and 0 < float(row["energy"]) <= 1 for row in layers)
    with open(tmp_path / "logs" / "metrics.csv") as file:
        columns = set(next(csv.reader(file)))
    assert EXPECTED_KEYS <= columns, EXPECTED_KEYS - columns


@pytest.mark.parametrize("preset", ["compare/glue", "compare/metamath"])
def test_compare_preset_sweeps_every_method_and_three_seeds_at_each_methods_own_lr(preset, composer, tmp_path):
    sweep = OmegaConf.load(REPO / "conf" / "experiment" / f"{preset}.yaml").hydra.sweeper.params
    methods = sweep.method.split(",")
    assert sorted(methods) == sorted(p.stem for p in (REPO / "conf" / "method").glob("*.yaml"))
    assert len(str(sweep.rank).split(",")) == 2
    assert sweep.seed.split(",") == ["0", "1", "2"]
    for method in methods:
        cfg = composer([f"experiment={preset}", f"method={method}"], tmp_path)
        default = OmegaConf.load(REPO / "conf" / "method" / f"{method}.yaml").method.lr
        assert cfg.optim.lr == default[cfg.model.kind] and cfg.method.name == method
        assert list(cfg.optim.auto_lr.candidates) == list(default.search[cfg.model.kind])


@pytest.mark.parametrize("method", sorted(p.stem for p in (REPO / "conf" / "method").glob("*.yaml")))
def test_every_method_takes_the_range_test_on_encoders_and_keeps_a_published_lr(method, composer, tmp_path):
    cfg = composer([f"method={method}", "model=minilm"], tmp_path)
    assert cfg.optim.lr == "auto"
    candidates = list(cfg.optim.auto_lr.candidates)
    assert len(candidates) >= 3 and candidates == sorted(candidates)
    published = composer([f"method={method}", "model=minilm", "optim.lr=${method.lr.published.encoder}"], tmp_path).optim.lr
    assert isinstance(published, float) and candidates[0] <= published <= candidates[-1]  # the range holds the method's own lr
    assert isinstance(composer([f"method={method}", "model=smollm2_135m"], tmp_path).optim.lr, float)  # LLMs: a fixed lr