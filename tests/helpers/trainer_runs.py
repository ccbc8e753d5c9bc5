"""Pieces the transformers / TRL trainer tests share: a collator that keeps the batches it builds,
a callback that records the adapters as LoRA-SB's callback left them, and the factors of a model."""

import torch
from transformers import TrainerCallback

import lorasb


def factors(model) -> dict[str, torch.Tensor]:
    """Every adapter's B, R and A, copied."""
    return {
        f"{name}.{factor}": getattr(layer, factor).detach().clone()
        for name, layer in lorasb.adapters(model).items()
        for factor in ("lora_A", "lora_B", "lora_R")
    }


class RecordingCollator:
    """A data collator that keeps a copy of every batch it builds, in order."""

    def __init__(self, collate):
        self.collate = collate
        self.batches = []

    def __call__(self, features):
        batch = self.collate(features)
        self.batches.append({k: v.clone() if isinstance(v, torch.Tensor) else v for k, v in batch.items()})
        return batch


class Snapshot(TrainerCallback):
    """Placed after LoraSBCallback: the factors and the loss on ``probe`` as training begins, whether
    the optimizer holds the cores themselves, and the lr of every optimizer step."""

    def __init__(self, probe: dict):
        self.probe = probe
        self.factors = None
        self.loss_at_start = None
        self.cores_in_optimizer = None
        self.lrs = []

    def on_train_begin(self, args, state, control, model=None, optimizer=None, **kwargs):
        self.factors = factors(model)
        held = {id(p) for group in optimizer.param_groups for p in group["params"]}
        self.cores_in_optimizer = all(id(layer.lora_R) in held for layer in lorasb.adapters(model).values())
        self.loss_at_start = probe_loss(model, self.probe)

    def on_optimizer_step(self, args, state, control, optimizer=None, **kwargs):
        self.lrs.append(optimizer.param_groups[0]["lr"])


@torch.no_grad()
def probe_loss(model, batch: dict) -> float:
    """The loss of ``model`` in eval mode on ``batch``, its mode restored."""
    was_training = model.training
    model.eval()
    loss = model(**batch).loss.item()
    model.train(was_training)
    return loss


def assert_factors_are_initialize(snapshot: Snapshot, reference, batches: list, lr: float, seed: int, layers: int) -> None:
    """The factors the callback wrote (``snapshot``) equal ``lorasb.initialize`` on a fresh copy of
    the model (``reference``) from the same batches, lr₁ and seed, bit for bit, in every one of
    ``layers`` adapted layers (three factors each), and the optimizer holds the trained cores."""
    lorasb.initialize(reference, lorasb.estimate_update(reference, batches, lr=lr, seed=seed))
    expected = factors(reference)
    assert snapshot.factors.keys() == expected.keys() and len(expected) == 3 * layers
    for name, tensor in expected.items():
        assert torch.equal(snapshot.factors[name], tensor), name
    assert snapshot.cores_in_optimizer
