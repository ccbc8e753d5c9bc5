"""Real runs on SmolLM2-135M-Instruct: LoRA-SB on a MetaMathQA slice, then GSM8K; commonsense evaluation."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from lorasb.eval import eval_set
from lorasb.eval.grading import ANSWER_VOCABULARY
from lorasb.evaluate import load_model
from lorasb.models import load_tokenizer
from lorasb.report import collect
from lorasb.train import build, fit, run
from tests.helpers.presets import preset as own_settings

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
LAYERS = 30 * 7  # SmolLM2-135M: 30 blocks, q/k/v/o/gate/up/down in each
QUIET = ["++trainer.enable_progress_bar=false", "++trainer.enable_model_summary=false"]
SMOLLM2 = ["model=smollm2_135m", "trainer=cpu", "logger=csv", *QUIET]
RANK = 8


@pytest.fixture(scope="module")
def metamath_run(composer, tmp_path_factory, shared_data):
    """64 MetaMathQA rows, one epoch of 16 steps; 24 held-out rows; 8 GSM8K test questions after."""
    run_dir = tmp_path_factory.mktemp("metamath")
    cfg = composer(
        [
            "task=metamath",
            *SMOLLM2,
            f"data.dir={shared_data}",
            "data.train_limit=88",
            "data.val_size=24",
            "data.max_length=192",
            "data.batch_size=4",
            f"rank={RANK}",
            "init.num_samples=8",
            "init.batch_size=4",
            "optim.lr=1e-3",
            "optim.warmup_ratio=0.25",
            "trainer.max_epochs=1",
            "eval.sets=[gsm8k]",
            "eval.limit=8",
            "eval.batch_size=8",
        ],
        run_dir,
    )
    return run_dir, run(cfg)


def test_held_out_loss_falls(metamath_run):
    run_dir, summary = metamath_run
    before, after = summary["before"]["val/loss"], summary["final"]["val/loss"]
    print(f"MetaMathQA held-out loss: {before:.4f} -> {after:.4f}")
    assert after < 0.97 * before
    assert summary["parameters"]["trainable"] == LAYERS * RANK**2
    stats = json.loads((run_dir / "init_stats.json").read_text())
    assert len(stats["layers"]) == LAYERS and 0 < stats["first_step_lr"] < 1e-3  # warm-up: lr/4 at the first step


def test_gsm8k_is_evaluated_after_training(metamath_run, shared_data, smollm2_dir):
    run_dir, summary = metamath_run
    written = json.loads((run_dir / "eval.json").read_text())
    results, setup = written["results"], written["setup"]
    assert summary["eval"] == results and set(results) == {"gsm8k"}
    assert setup["model"] == {"base_model": str(smollm2_dir), "trained_in": str(run_dir)}
    assert setup["sets"] == ["gsm8k"] and setup["limit"] == 8 and setup["max_new_tokens"] == {"gsm8k": 256}
    assert setup["grading"] == "reference" and "Instruction:" in setup["stop_strings"] and setup["lorasb_version"]
    gsm8k = results["gsm8k"]
    print(f"GSM8K after training: {gsm8k['correct']}/{gsm8k['count']}, {gsm8k['seconds_per_example']:.2f} s/example")
    records = [json.loads(line) for line in (run_dir / "predictions" / "gsm8k.jsonl").read_text().splitlines()]
    rows = eval_set("gsm8k").source.rows(shared_data, limit=8)
    assert [r["index"] for r in records] == list(range(8)) and gsm8k["count"] == 8
    assert gsm8k["accuracy"] == sum(r["correct"] for r in records) / 8
    (reported,) = collect(run_dir)  # python -m lorasb.report reads the scores, not the counts and timings
    assert (reported["evaluation"], reported["evaluated"]) == ({"gsm8k/accuracy": gsm8k["accuracy"]}, {"gsm8k": 8})
    for record, row in zip(records, rows):
        assert record["prompt"].endswith("### Response: Let's think step by step.") and row["question"] in record["prompt"]
        assert record["gold"] == float(row["answer"].rsplit("####", 1)[1].replace(",", ""))
        assert record["generation"].strip() and record["correct"] == eval_set("gsm8k").correct(record["generation"], row, False)


def test_adapter_and_checkpoint_give_the_trained_model(metamath_run, smollm2_dir):
    run_dir, _ = metamath_run
    base_cfg = OmegaConf.create({"model": {"name_or_path": str(smollm2_dir), "target_modules": [], "dtype": "float32"}, "adapter": None, "checkpoint": None})
    base, _ = load_model(base_cfg)
    from_adapter, _ = load_model(OmegaConf.merge(base_cfg, {"adapter": str(run_dir / "adapter")}))
    from_checkpoint, tokenizer_path = load_model(OmegaConf.merge(base_cfg, {"checkpoint": str(run_dir / "checkpoints" / "last.ckpt")}))
    tokenizer = load_tokenizer(tokenizer_path)
    inputs = tokenizer(["### Instruction:\nWhat is 3 + 4?\n\n### Response:\n"], return_tensors="pt")
    with torch.no_grad():
        logits = [model.eval()(**inputs).logits for model in (base, from_adapter, from_checkpoint)]
    torch.testing.assert_close(logits[1], logits[2], rtol=1e-4, atol=1e-4)
    assert (logits[1] - logits[0]).abs().max() > 1e-2  # training changed the model
    # the adapter names its own base model: a model config naming another one does not matter
    _, base_used = load_model(OmegaConf.merge(base_cfg, {"model": {"name_or_path": "/no/such/model"}, "adapter": str(run_dir / "adapter")}))
    assert base_used == str(smollm2_dir)


def test_export_command_round_trips_smollm2(metamath_run, smollm2_dir, tmp_path):
    """``python -m lorasb.export``: the rank-padded PEFT adapter on the base model and the merged
    model give the trained module's logits."""
    from peft import AutoPeftModelForCausalLM
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from lorasb.export import load_module, main

    run_dir, _ = metamath_run
    assert main([str(run_dir), "--out", str(tmp_path), "--merged", "--pad-rank", "16"]) == 0
    config = json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())
    assert config["r"] == 16 and config["task_type"] == "CAUSAL_LM" and config["base_model_name_or_path"] == str(smollm2_dir)
    trained, _ = load_module(run_dir / "checkpoints" / "best.ckpt")
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "merged")
    inputs = tokenizer(["### Instruction:\nWhat is 3 + 4?\n\n### Response:\n"], return_tensors="pt")
    served = AutoPeftModelForCausalLM.from_pretrained(tmp_path / "adapter", torch_dtype=torch.float32).eval()
    merged = AutoModelForCausalLM.from_pretrained(tmp_path / "merged", torch_dtype=torch.float32).eval()
    with torch.no_grad():
        expected = trained.model.eval()(**inputs).logits
        torch.testing.assert_close(served(**inputs).logits, expected, atol=2e-4, rtol=0)
        torch.testing.assert_close(merged(**inputs).logits, expected, atol=2e-4, rtol=0)

@pytest.fixture(scope="module")
def commonsense_root(tmp_path_factory, shared_data, glue_fixtures):
    """A data root with all eight sets: four real ones from ../shared/data, four hand-written fixtures."""
    root = tmp_path_factory.mktemp("commonsense_root")
    (root / "commonsense").mkdir()
    for folder in ("boolq", "ARC-Easy", "ARC-Challenge", "openbookqa"):
        (root / "commonsense" / folder).symlink_to(shared_data / "commonsense" / folder)
    for folder in ("piqa", "social_i_qa", "hellaswag", "winogrande"):
        (root / "commonsense" / folder).symlink_to(glue_fixtures / "commonsense" / folder)
    return root


def test_evaluate_command_on_the_commonsense_sets(commonsense_root, tmp_path):
    sets = ["boolq", "piqa", "siqa", "hellaswag", "winogrande", "arc_e", "arc_c", "obqa"]
    result = subprocess.run(
        [sys.executable, "-m", "lorasb.evaluate", f"eval.sets=[{','.join(sets)}]", "eval.limit=4", f"data.dir={commonsense_root}", f"hydra.run.dir={tmp_path}"],
        cwd=REPO,
        env={k: v for k, v in os.environ.items() if k != "LORASB_DATA_DIR"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    written = json.loads((tmp_path / "eval.json").read_text())
    results = written["results"]
    assert list(results) == sets and written["setup"]["sets"] == sets and written["setup"]["limit"] == 4
    assert written["setup"]["model"]["adapter"] is None and written["setup"]["model"]["checkpoint"] is None
    for name in sets:
        expected = 3 if name in ("piqa", "siqa", "hellaswag", "winogrande") else 4
        assert results[name]["count"] == expected, name
        records = [json.loads(line) for line in (tmp_path / "predictions" / f"{name}.jsonl").read_text().splitlines()]
        assert len(records) == expected and results[name]["correct"] == sum(r["correct"] for r in records)
        assert results[name]["accuracy"] == results[name]["correct"] / expected
        for record in records:  # each grade is the first label of the model's real generation against the gold
            assert record["prediction"] in (None, *ANSWER_VOCABULARY[name])
            assert record["correct"] == (record["prediction"] == record["gold"]), record
        assert f"{name}: accuracy {results[name]['accuracy']:.4f} on {expected} examples" in result.stdout
    print({name: (r["correct"], r["count"], round(r["seconds_per_example"], 2)) for name, r in results.items()})


# What a preset needs changed to run here: its Hub model becomes the offline SmolLM2 on the CPU,
# the training file is cut to a slice, and one example of each evaluation set is scored.
# Every other setting (rank, lr, schedule, lengths, init samples and batch) is the preset's.
OFFLINE = {
    "paper/metamath": ["model=smollm2_135m", "trainer=cpu", "data.train_limit=400"],
    "paper/metamath_nf4": ["model=smollm2_135m", "trainer=cpu", "data.train_limit=400"],
    "paper/commonsense": ["model=smollm2_135m", "trainer=cpu", "data.train_limit=400"],
    "smollm2_metamath": [],
}


@pytest.mark.parametrize("experiment", OFFLINE)
def test_preset_runs_one_step_with_its_own_settings(experiment, composer, tmp_path, shared_data, commonsense_root):
    data_dir = commonsense_root if experiment == "paper/commonsense" else shared_data
    if experiment == "paper/commonsense":
        (commonsense_root / "commonsense" / "train.json").unlink(missing_ok=True)
        (commonsense_root / "commonsense" / "train.json").symlink_to(shared_data / "commonsense" / "train.json")
    overrides = [f"experiment={experiment}", *OFFLINE[experiment], *QUIET, "++trainer.fast_dev_run=true", f"data.dir={data_dir}", "eval.limit=1"]
    cfg = composer(overrides, tmp_path)
    preset = own_settings(experiment)
    summary = run(cfg)
    stats = json.loads((tmp_path / "init_stats.json").read_text())
    assert stats["samples"] == preset.init.num_samples
    assert stats["first_step_lr"] == pytest.approx(preset.optim.lr, rel=1e-12)  # one step: warm-up ends there
    assert summary["parameters"]["trainable"] == LAYERS * preset.rank**2
    assert "val/loss" in summary["before"] and "val/loss" in summary["final"]
    assert set(summary["eval"]) == set(cfg.eval.sets) and all(result["count"] == 1 for result in summary["eval"].values())
    assert (tmp_path / "adapter" / "adapter_model.safetensors").is_file()


@pytest.mark.slow
def test_bfloat16_preset_checkpoint_keeps_the_cores_in_float32(composer, tmp_path, shared_data):
    """paper/metamath as on a GPU (bfloat16 weights) for one step: R is saved in float32, A and B in bfloat16."""
    overrides = ["experiment=paper/metamath", "model=smollm2_135m", "model.dtype=bfloat16", "trainer=cpu", "data.train_limit=240"]
    quick = ["init.num_samples=3", "data.max_length=128", "validate_before=false", "eval.after_fit=false", "++trainer.fast_dev_run=true"]
    parts = build(composer([*overrides, *quick, *QUIET, f"data.dir={shared_data}"], tmp_path))
    fit(parts)
    parts.trainer.save_checkpoint(tmp_path / "step.ckpt")
    state = torch.load(tmp_path / "step.ckpt", map_location="cpu", weights_only=True)["state_dict"]
    cores = {k: v.dtype for k, v in state.items() if k.endswith("lora_R")}
    factors = {v.dtype for k, v in state.items() if k.endswith(("lora_A", "lora_B"))}
    assert len(cores) == LAYERS and set(cores.values()) == {torch.float32}
    assert factors == {torch.bfloat16}
    assert parts.module.model.model.layers[0].self_attn.q_proj.base.weight.dtype == torch.bfloat16
