"""Every fine-tuning method on tiny float64 models: trainable counts, initialisation, a few steps."""

import copy

import pytest
import torch
from torch import nn
from helpers.tiny_models import BERT_TARGETS, LLAMA_TARGETS, bert_batches, llama_batches, tiny_bert, tiny_llama, tiny_model

import lorasb
from lorasb.method.targets import matches, resolve_targets
from lorasb.method.cache import Gradients
from lorasb.method.estimate import accumulate_gradients
from lorasb.method.registry import build_method, method_classes

RANK = 4
LR = 1e-3
METHODS = ["lora_sb", "lora_xs", "lora", "pissa", "dora", "lora_ga", "full"]


def bert32() -> nn.Module:  # float32: PEFT's PiSSA refuses float64
    return tiny_bert().float()


def llama32() -> nn.Module:
    return tiny_llama().float()


def phi3() -> nn.Module:  # fused projections: qkv_proj, gate_up_proj
    return tiny_model("phi3").float()


FAMILIES = {
    "encoder": (bert32, BERT_TARGETS, ["classifier"], bert_batches),
    "causal_lm": (llama32, LLAMA_TARGETS, [], llama_batches),
    "phi3 all-linear": (phi3, resolve_targets(phi3(), "all-linear"), [], llama_batches),
}


def target_linears(model: nn.Module, targets) -> dict[str, nn.Linear]:
    return {name: m for name, m in model.named_modules() if isinstance(m, nn.Linear) and matches(name, targets)}


def expected_trainable(method: str, plain: nn.Module, targets, head) -> int:
    """r² per layer (LoRA-SB, LoRA-XS), r·(in+out) (LoRA family; DoRA adds a magnitude per output), all (full)."""
    if method == "full":
        return sum(p.numel() for p in plain.parameters())
    layers = target_linears(plain, targets).values()
    heads = sum(p.numel() for name in head for p in plain.get_submodule(name).parameters())
    if method in ("lora_sb", "lora_xs"):
        return len(layers) * RANK**2 + heads
    per_layer = [RANK * (m.in_features + m.out_features) + (m.out_features if method == "dora" else 0) for m in layers]
    return sum(per_layer) + heads


def gradients_of(model, method, batches) -> Gradients:
    sums = accumulate_gradients(model, batches, method.target_weights(model))
    return Gradients(sums, batches=len(batches), samples=sum(len(b["input_ids"]) for b in batches))


def test_every_method_is_offered():
    assert sorted(method_classes()) == sorted(METHODS)


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("name", METHODS)
def test_method_trains_a_few_steps_with_its_parameter_count(name, family):
    build, targets, head, make_batches = FAMILIES[family]
    plain = build()
    method = build_method(name, RANK)
    model = method.attach(build(), targets, head)
    trainable, total = lorasb.count_parameters(model)
    assert trainable == expected_trainable(name, plain, targets, head)
    if name == "full":
        assert trainable == total

    batches = make_batches()
    gradients = gradients_of(model, method, batches) if method.needs_gradients else None
    if method.needs_gradients:  # named as in the unadapted model
        assert set(gradients.sums) == set(target_linears(plain, targets))
    method.initialize(model, gradients, LR)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=LR)
    model.train()
    for batch in batches:
        loss = model(**batch).loss
        assert torch.isfinite(loss)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    changed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    trained = {n for n, p in model.named_parameters() if p.requires_grad}
    assert changed and changed <= trained


@pytest.mark.parametrize("name", ["lora_xs", "pissa", "lora_ga", "lora", "dora"])
def test_initialisation_keeps_the_model_output(name):
    """LoRA-XS (R ≈ 0), PiSSA (W0 keeps the residual), LoRA-GA (W0 offset by B·A), LoRA and DoRA (B = 0)."""
    plain = bert32().eval()
    method = build_method(name, RANK)
    model = method.attach(bert32(), BERT_TARGETS, ["classifier"])
    batches = [{k: v.float() if v.is_floating_point() else v for k, v in b.items()} for b in bert_batches()]
    method.initialize(model, gradients_of(model, method, batches) if method.needs_gradients else None, LR)
    model.eval()
    with torch.no_grad():
        for batch in batches:
            assert torch.allclose(model(**batch).logits, plain(**batch).logits, atol=1e-5)


def test_lora_xs_initialisation_is_its_definition():
    """B = U_r·S_r, A = V_rᵀ from the SVD of W0; R = N(0, 1e-5²) drawn with the SVD seed."""
    model = tiny_bert()
    method = build_method("lora_xs", RANK)
    method.attach(model, BERT_TARGETS)
    stats = method.initialize(model, None, LR)
    generator = torch.Generator().manual_seed(method.svd.seed)
    for name, layer in lorasb.adapters(model).items():
        U, S, Vh = torch.linalg.svd(layer.base.weight, full_matrices=False)
        torch.testing.assert_close(layer.lora_B.abs(), (U[:, :RANK] * S[:RANK]).abs())  # singular vectors up to sign
        torch.testing.assert_close(layer.lora_B @ layer.lora_A, U[:, :RANK] @ torch.diag(S[:RANK]) @ Vh[:RANK])
        torch.testing.assert_close(layer.lora_A @ layer.lora_A.T, torch.eye(RANK, dtype=torch.float64))
        expected_R = torch.randn(RANK, RANK, generator=generator, dtype=torch.float64) * 1e-5
        assert torch.equal(layer.lora_R, expected_R)
        assert stats[name].singular_values == pytest.approx(S[:RANK].tolist())
    assert [p for p in model.parameters() if p.requires_grad] == [layer.lora_R for layer in lorasb.adapters(model).values()]


def test_lora_sb_method_matches_the_plain_initialisation():
    """Through the cached SVD of −sign(ΣG), scaled by lr₁ afterwards: the same B·R·A as SVD(−lr₁·sign(ΣG))."""
    batches = bert_batches()
    reference = tiny_bert()
    lorasb.attach(reference, BERT_TARGETS, rank=RANK)
    lorasb.initialize(reference, lorasb.estimate_update(reference, batches, lr=LR))
    model = tiny_bert()
    method = build_method("lora_sb", RANK)
    method.attach(model, BERT_TARGETS)
    stored = {}
    memo = lambda key, compute: stored.setdefault(key, compute())  # noqa: E731
    stats = method.initialize(model, gradients_of(model, method, batches), LR, memo)
    for name, layer in lorasb.adapters(model).items():
        torch.testing.assert_close(layer.delta_weight(), lorasb.adapters(reference)[name].delta_weight())
        assert 0 <= stats[name].relative_error < 1 and stats[name].energy == pytest.approx(1 - stats[name].relative_error**2)
    assert len(stored) == len(lorasb.adapters(model))
    # another learning rate reuses the stored SVDs and scales R linearly
    again = copy.deepcopy(model)
    method.initialize(again, gradients_of(again, method, batches), 2 * LR, memo)
    assert len(stored) == len(lorasb.adapters(model))
    for name, layer in lorasb.adapters(again).items():
        torch.testing.assert_close(layer.lora_R, 2 * lorasb.adapters(model)[name].lora_R)


def test_unknown_method_and_option_are_named():
    with pytest.raises(ValueError, match=r"unknown method 'loar'; choose one of: lora_sb, lora_xs, lora, pissa, dora, lora_ga, full"):
        build_method("loar", RANK)
    with pytest.raises(ValueError, match=r"method lora has no option init_std; its options are: alpha, dropout"):
        build_method("lora", RANK, {"init_std": 1e-5})


@pytest.mark.parametrize("name", ["lora", "pissa", "lora_ga", "lora_sb"])
def test_exported_adapter_applies_to_the_original_model(name, tmp_path):
    """PiSSA and LoRA-GA change W0: their export is converted (from the saved initial adapter) to apply to the original W0."""
    from peft import PeftModel

    method = build_method(name, RANK)
    model = method.attach(bert32(), BERT_TARGETS, ["classifier"])
    batches = [{k: v.float() if v.is_floating_point() else v for k, v in b.items()} for b in bert_batches()]
    method.initialize(model, gradients_of(model, method, batches) if method.needs_gradients else None, LR)
    method.save_initial(model, tmp_path / "initial")
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    for batch in batches:
        model(**batch).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    method.export(model, tmp_path / "adapter", ["classifier"], None, initial=tmp_path / "initial")
    served = PeftModel.from_pretrained(bert32(), tmp_path / "adapter").eval()
    model.eval()
    with torch.no_grad():
        for batch in batches:
            torch.testing.assert_close(served(**batch).logits, model(**batch).logits, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("name", ["lora_sb", "lora"])
def test_evaluation_folds_the_adapters_of_a_float32_model_and_keeps_those_of_a_bfloat16_one(name):
    from lorasb.method.attach import merged_where_exact

    batch = llama_batches()[0]
    method = build_method(name, RANK)
    model = method.attach(llama32(), LLAMA_TARGETS).eval()
    for n, p in model.named_parameters():
        if "lora_" in n:  # adapters that change the model (LoRA-SB's and LoRA's start as the identity)
            torch.nn.init.normal_(p, std=0.1)
    with torch.no_grad():
        expected = model(**batch).logits
        assert (expected - llama32().eval()(**batch).logits).abs().max() > 1e-3
        folded = merged_where_exact(model)
        assert not lorasb.adapters(folded) and not any("lora" in n for n, _ in folded.named_parameters())
        torch.testing.assert_close(folded(**batch).logits, expected, atol=1e-5, rtol=1e-4)
    half = method.attach(llama32().to(torch.bfloat16), LLAMA_TARGETS)
    assert merged_where_exact(half) is half and any("lora" in n for n, _ in half.named_parameters())
