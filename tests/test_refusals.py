"""What the commands refuse, by name: a method whose initialisation writes whole tensors under a
sharding strategy, and an export from a checkpoint that holds pickled Python objects."""

import subprocess
import sys
from pathlib import Path

import lightning as L
import pytest
from lightning.pytorch.strategies import DeepSpeedStrategy, FSDPStrategy

from helpers.tiny_models import BERT_TARGETS, tiny_bert
from helpers.unsafe_checkpoint import crafted_checkpoint
from lorasb.lightning.module import FineTuningModule
from lorasb.method.registry import method_classes

REPO = Path(__file__).resolve().parents[1]
# initialised in on_fit_start, after the strategy has wrapped the model (conf/trainer/fsdp.yaml)
REFUSED = {"lora_sb", "lora_xs", "lora_ga"}
ALLOWED = {"full", "lora", "pissa", "dora"}  # set up in __init__, before any sharding


class TinyModule(FineTuningModule):
    def build_model(self):
        return tiny_bert().float()  # PiSSA decomposes float32 weights only


def module_of(method: str) -> TinyModule:
    return TinyModule(
        model={"name_or_path": "tiny", "target_modules": BERT_TARGETS, "head": ["classifier"]},
        rank=2, method={"name": method}, init={"num_samples": 2, "batch_size": 2}, optim={"lr": 1e-3},
    )  # fmt: skip


class FSDPOnCPU(FSDPStrategy):
    """Lightning's FSDP strategy itself; Lightning accepts the exact class on GPUs only, so it is
    subclassed to build a Trainer on this CPU. The refusal checks isinstance, as for any subclass."""


def fsdp_trainer() -> L.Trainer:
    return L.Trainer(accelerator="cpu", devices=1, strategy=FSDPOnCPU(), max_epochs=1, logger=False, enable_progress_bar=False)


def deepspeed_trainer() -> L.Trainer:
    return L.Trainer(accelerator="cpu", devices=1, strategy=DeepSpeedStrategy(stage=2), max_epochs=1, logger=False, enable_progress_bar=False)


def test_the_listed_methods_are_every_method():
    assert REFUSED | ALLOWED == set(method_classes())


@pytest.mark.parametrize("strategy", ["FSDP", "DeepSpeed"])
@pytest.mark.parametrize("method", sorted(REFUSED))
def test_sharding_refuses_a_method_initialised_in_place(method, strategy):
    trainer = fsdp_trainer() if strategy == "FSDP" else deepspeed_trainer()
    module = module_of(method)
    module.trainer = trainer
    with pytest.raises(ValueError) as refusal:
        module.on_fit_start()  # the hook fit calls first; it refuses before reading any data
    assert str(refusal.value) == (
        f"method={method} writes its initialisation into whole tensors, which {type(trainer.strategy).__name__} "
        "holds in shards across processes: use trainer=ddp (the trained parameters and their optimizer state "
        "are small enough to keep on every process)"
    )
    assert strategy in type(trainer.strategy).__name__  # the message names the strategy (FSDPOnCPU, DeepSpeedStrategy)
    assert not bool(module.initialized)


@pytest.mark.parametrize("strategy", ["FSDP", "DeepSpeed"])
@pytest.mark.parametrize("method", sorted(ALLOWED))
def test_sharding_runs_a_method_set_up_before_it(method, strategy):
    trainer = fsdp_trainer() if strategy == "FSDP" else deepspeed_trainer()
    module = module_of(method)
    module.trainer = trainer
    assert module._refuse_sharding_strategy() is None


@pytest.mark.slow  # a subprocess
def test_export_refuses_a_checkpoint_holding_python_objects(tmp_path):
    path, marker = crafted_checkpoint(tmp_path)
    result = subprocess.run(
        [sys.executable, "-m", "lorasb.export", str(path), "--out", str(tmp_path / "export")],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 1, result.stderr[-2000:]
    assert result.stderr.strip().splitlines()[-1].startswith(f"error: refused to load {path}: it holds Python objects")
    assert "it names builtins.open" in result.stderr or "it names io.open" in result.stderr
    assert not marker.exists()
    assert not (tmp_path / "export").exists()
