"""model=hf_encoder and model=hf_causal_lm through lorasb.train: tiny randomly initialised models of
each architecture saved to a folder and loaded by path (LoRA-SB on all-linear, one step), every
method on one of them, and all-linear on the real offline all-MiniLM-L6-v2."""

import json

import pytest
from helpers.tiny_models import DECODERS, ENCODERS, save_tiny_model
from torch import nn
from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

from lorasb.models import load_tokenizer
from lorasb.train import run

pytestmark = pytest.mark.slow  # runs through lorasb.train

RANK = 4
QUIET = ["++trainer.enable_progress_bar=false", "++trainer.enable_model_summary=false"]
ONE_STEP = ["trainer=cpu", "trainer.precision=32-true", "logger=csv", "optim.lr=1e-3", f"rank={RANK}", "init.num_samples=4",
            "init.batch_size=4", "data.batch_size=4", "data.max_length=48", "++trainer.fast_dev_run=true", *QUIET]  # fmt: skip
CHATS = [
    {"messages": [{"role": "user", "content": f"What is {i} + {i}?"}, {"role": "assistant", "content": f"{i} + {i} = {2 * i}."}]}
    for i in range(12)
]


@pytest.fixture(scope="module")
def chat_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("chats") / "chats.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in CHATS))
    return path


def expected_targets(folder: str, architecture: str) -> list[str]:
    """Every nn.Linear of the loaded model but the language-model head or the classifier."""
    auto = AutoModelForSequenceClassification if architecture in ENCODERS else AutoModelForCausalLM
    model = auto.from_pretrained(folder)
    names = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    return [n for n in names if n != "lm_head" and n.split(".")[0] != "classifier"]


def overrides(architecture: str, folder: str, chat_file, glue_fixtures) -> list[str]:
    if architecture in ENCODERS:
        return ["model=hf_encoder", f"model.name_or_path={folder}", "task=glue/rte", f"data.dir={glue_fixtures}", *ONE_STEP]
    return ["model=hf_causal_lm", f"model.name_or_path={folder}", "model.dtype=float32", "task=custom/instruction",
            f"data.train_file={chat_file}", "data.val_size=4", *ONE_STEP]  # fmt: skip


def tokenizer_for(architecture: str, minilm_dir, smollm2_dir):
    return load_tokenizer(str(minilm_dir if architecture in ENCODERS else smollm2_dir))


@pytest.mark.parametrize("architecture", ENCODERS + DECODERS)
def test_a_tiny_model_loaded_by_path_is_initialised_on_all_linear_and_trained(
    architecture, composer, tmp_path, chat_file, glue_fixtures, minilm_dir, smollm2_dir
):
    folder = save_tiny_model(architecture, tmp_path / architecture, tokenizer_for(architecture, minilm_dir, smollm2_dir))
    summary = run(composer(overrides(architecture, folder, chat_file, glue_fixtures), tmp_path / "run"))
    stats = json.loads((tmp_path / "run" / "init_stats.json").read_text())
    targets = expected_targets(folder, architecture)
    assert stats["target_modules"] == targets and set(stats["layers"]) == set(targets)
    assert stats["method"] == "lora_sb" and all(len(layer["singular_values"]) == RANK for layer in stats["layers"].values())
    assert summary["steps"] == 1
    assert (tmp_path / "run" / "adapter" / "adapter_model.safetensors").is_file()


@pytest.mark.parametrize("method", ["lora_xs", "lora", "pissa", "dora", "lora_ga", "full"])
def test_every_method_trains_a_step_on_tiny_phi3s_fused_projections(method, composer, tmp_path, chat_file, glue_fixtures, smollm2_dir):
    folder = save_tiny_model("phi3", tmp_path / "phi3", load_tokenizer(str(smollm2_dir)))
    run(composer([*overrides("phi3", folder, chat_file, glue_fixtures), f"method={method}"], tmp_path / "run"))
    stats = json.loads((tmp_path / "run" / "init_stats.json").read_text())
    assert stats["method"] == method and stats["target_modules"] == expected_targets(folder, "phi3")
    assert any(name.endswith("qkv_proj") for name in stats["target_modules"])
    assert (tmp_path / "run" / "adapter").is_dir()


def test_the_generic_encoder_entry_runs_all_minilm_on_all_linear(composer, tmp_path, glue_fixtures, minilm_dir):
    summary = run(composer(["model=hf_encoder", f"model.name_or_path={minilm_dir}", "task=glue/rte", f"data.dir={glue_fixtures}", *ONE_STEP], tmp_path))
    stats = json.loads((tmp_path / "init_stats.json").read_text())
    blocks = [f"bert.encoder.layer.{i}.{name}" for i in range(6) for name in (
        "attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense", "intermediate.dense", "output.dense")]  # fmt: skip
    assert stats["target_modules"] == [*blocks, "bert.pooler.dense"]
    assert summary["parameters"]["trainable"] == 37 * RANK**2 + 384 * 2 + 2  # the cores and the 2-label classifier
