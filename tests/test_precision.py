"""Mixed precision: trained tensors in float32 beside a half-precision base, a scaled float16 estimate."""

import torch
from torch import nn

from lorasb.method import attach, estimate_update, initialize, unfreeze
from lorasb.method.estimate import accumulate_gradients
from helpers.tiny_models import bert_batches, llama_batches, tiny_bert, tiny_llama


def half_llama(dtype: torch.dtype) -> nn.Module:
    model = tiny_llama().to(dtype)
    attach(model, ["q_proj", "v_proj", "down_proj"], rank=4)
    return model


def test_bfloat16_model_keeps_its_cores_in_float32():
    model = half_llama(torch.bfloat16)
    layer = model.model.layers[0].self_attn.q_proj
    assert layer.lora_R.dtype == torch.float32
    assert layer.lora_A.dtype == layer.lora_B.dtype == layer.base.weight.dtype == torch.bfloat16
    batch = llama_batches(count=1)[0]
    assert model(**batch).logits.dtype == torch.bfloat16  # the base path stays in bfloat16


def test_updates_below_bfloat16_resolution_still_change_the_core():
    model = half_llama(torch.bfloat16)
    initialize(model, estimate_update(model, llama_batches(), lr=1e-2))
    cores = [p for p in model.parameters() if p.requires_grad]
    before = [core.detach().clone() for core in cores]
    optimizer = torch.optim.AdamW(cores, lr=1e-5, weight_decay=0.0)
    for batch in llama_batches(count=3, seed=5):
        model(**batch).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    # Adam moves each entry by about lr per step; in bfloat16 such a step rounds away:
    largest = max(core.abs().max() for core in before)
    assert largest.to(torch.bfloat16) + 3e-5 == largest.to(torch.bfloat16)
    moved = [(core - old).abs().max().item() for core, old in zip(cores, before)]
    assert all(1e-6 < step <= 3.5e-5 for step in moved), moved


def test_delta_of_a_bfloat16_model_is_the_float32_product_rounded_once():
    """delta_weight() (what merge() adds to W0) forms s·B·R·A with the float32 core, then rounds to
    bfloat16 once.

    Rounding R to bfloat16 first drops the low bits the float32 core holds (Adam steps below
    bfloat16's spacing, as above), and the product then rounds a second time: measured here,
    42% of the entries land one bfloat16 step away from the nearest value of the
    float32 product, where a single rounding leaves only the ones float32 noise puts next to a tie.
    """
    model = half_llama(torch.bfloat16)
    initialize(model, estimate_update(model, llama_batches(), lr=1e-2))
    cores = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(cores, lr=1e-5, weight_decay=0.0)
    for batch in llama_batches(count=3, seed=5):  # steps below bfloat16's spacing of R's entries
        model(**batch).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    for layer in (model.model.layers[1].mlp.down_proj, model.model.layers[0].self_attn.q_proj):
        expected = layer.scaling * (layer.lora_B.double() @ layer.lora_R.double() @ layer.lora_A.double())
        got = layer.delta_weight()
        assert got.dtype == torch.bfloat16
        nearest = expected.to(torch.bfloat16)
        off = (got != nearest).double().mean().item()
        assert off < 0.01, f"{off:.1%} of the entries of s·B·R·A are not the float32 product rounded once"
        # and none is further than one bfloat16 step (2⁻⁸ relative) from the exact product
        torch.testing.assert_close(got.double(), expected, rtol=2**-8, atol=1e-30)


def test_half_precision_head_trains_in_float32():
    model = tiny_bert().to(torch.bfloat16)
    attach(model, ["query", "value"], rank=4)
    unfreeze(model, ["classifier"])
    assert {p.dtype for p in model.classifier.parameters()} == {torch.float32}
    assert all(p.requires_grad for p in model.classifier.parameters())
    batch = bert_batches(count=1)[0]
    loss = model(**batch).loss
    loss.backward()
    assert model.classifier.weight.grad.dtype == torch.float32 and model.classifier.weight.grad.abs().sum() > 0


class Quiet(nn.Module):
    """A model whose loss is 2⁻²⁰ of its inner model's: float16 gradients of it underflow."""

    def __init__(self, inner: nn.Module):
        super().__init__()
        self.inner = inner

    def forward(self, **batch):
        output = self.inner(**batch)
        output.loss = output.loss * 2.0**-20
        return output


def test_float16_estimate_with_a_scaled_loss_recovers_the_underflowed_signs():
    model = half_llama(torch.float16)
    audible = accumulate_gradients(model, llama_batches())  # the same model without the 2⁻²⁰ factor
    plain = accumulate_gradients(Quiet(model), llama_batches())
    scaled = accumulate_gradients(Quiet(model), llama_batches(), loss_scale=2.0**20)
    for name, grad in audible.items():
        lost = (plain[f"inner.{name}"] == 0).float().mean().item()
        agree = (scaled[f"inner.{name}"].sign() == grad.sign()).float().mean().item()
        assert lost > 0.5, (name, lost)  # unscaled, most float16 gradients are zero
        assert agree > 0.99, (name, agree)  # scaled by a power of two, they are the audible ones


def test_a_scale_that_overflows_is_halved_until_the_gradients_are_finite():
    model = half_llama(torch.float16)
    reference = accumulate_gradients(model, llama_batches(), loss_scale=1.0)
    huge = accumulate_gradients(model, llama_batches(), loss_scale=2.0**60)  # overflows float16 at first
    for name, grad in reference.items():
        assert torch.isfinite(huge[name]).all()
        assert (huge[name].sign() == grad.sign()).float().mean() > 0.95
