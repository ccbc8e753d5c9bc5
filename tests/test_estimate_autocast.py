"""The estimate under a trainer's mixed precision: accelerate runs the model's forward under
autocast (transformers' Trainer and TRL's SFTTrainer with bf16=True), so a target layer's output,
and its gradient, are bfloat16 while its input may be float32."""

import torch
from helpers.tiny_models import llama_batches, tiny_llama

import lorasb

TARGETS = ["q_proj", "v_proj", "down_proj"]
LR = 1e-3


def under_autocast(model):
    """``model`` whose forward runs under bfloat16 autocast, as accelerate wraps it."""
    forward = model.forward

    def autocast_forward(*args, **kwargs):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return forward(*args, **kwargs)

    model.forward = autocast_forward
    return model


def test_the_estimate_runs_under_an_autocast_forward_and_keeps_the_float32_signs():
    batches = llama_batches(count=2)
    plain = tiny_llama().float()
    lorasb.attach(plain, TARGETS, rank=4)
    expected = lorasb.estimate_update(plain, batches, lr=LR)

    mixed = under_autocast(tiny_llama().float())
    lorasb.attach(mixed, TARGETS, rank=4)
    updates = lorasb.estimate_update(mixed, batches, lr=LR)

    assert updates.keys() == expected.keys()
    agree = total = 0
    for name, update in updates.items():
        assert update.dtype == torch.float32 and update.shape == expected[name].shape
        lr = torch.tensor(LR, dtype=torch.float32).item()
        assert set(update.unique().tolist()) <= {-lr, 0.0, lr}
        agree += int((update == expected[name]).sum())
        total += update.numel()
    assert agree / total > 0.9, agree / total
