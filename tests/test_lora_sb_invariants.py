"""Exact invariants of the method on tiny float64 models."""

import copy
import json

import pytest
import torch
from torch import nn
from helpers.tiny_models import BERT_TARGETS, LLAMA_TARGETS, bert_batches, llama_batches, tiny_bert, tiny_llama

import lorasb
from lorasb.method.initialize import SVDConfig, same_shape_batches, truncated_svd
from lorasb.method.registry import build_method
from lorasb.method.attach import adapters
from lorasb.method.cache import Gradients

RANK = 4
LR = 1e-3


def best_rank_r(matrix: torch.Tensor, rank: int) -> torch.Tensor:
    U, S, Vh = torch.linalg.svd(matrix.double(), full_matrices=False)
    return U[:, :rank] @ torch.diag(S[:rank]) @ Vh[:rank]


def reference_update(model: nn.Module, names, batches, lr: float) -> dict:
    """−lr·sign(ΣG) with plain autograd on a copy of the unadapted model."""
    reference = copy.deepcopy(model)
    reference.train()
    weights = {name: reference.get_submodule(name).weight for name in names}
    for weight in weights.values():
        weight.requires_grad_(True)
    for batch in batches:
        reference(**batch).loss.backward()
    return {name: -lr * torch.sign(weight.grad) for name, weight in weights.items()}


@pytest.fixture
def adapted():
    """A tiny BERT with LoRA-SB initialised from three batches (scaling 2 to keep s in play)."""
    model = tiny_bert()
    plain = copy.deepcopy(model)
    lorasb.attach(model, BERT_TARGETS, rank=RANK, alpha=2 * RANK)
    batches = bert_batches()
    updates = lorasb.estimate_update(model, batches, lr=LR)
    stats = lorasb.initialize(model, updates)
    return model, plain, batches, updates, stats


def test_attach_wraps_targets_and_freezes_the_rest():
    model = tiny_bert()
    layers = lorasb.attach(model, BERT_TARGETS, rank=RANK)
    assert sorted(layers) == sorted(
        f"bert.encoder.layer.{i}.{suffix}"
        for i in range(2)
        for suffix in ["attention.self.query", "attention.self.value", "attention.output.dense", "output.dense"]
    )
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    assert trainable == {f"{name}.lora_R" for name in layers}
    assert lorasb.count_parameters(model)[0] == len(layers) * RANK**2
    assert all(layer.scaling == 1.0 for layer in layers.values())


def test_empty_adapter_is_the_base_model():
    model = tiny_bert()
    plain = copy.deepcopy(model).eval()
    lorasb.attach(model, BERT_TARGETS, rank=RANK)
    batch = bert_batches(count=1)[0]
    torch.testing.assert_close(model.eval()(**batch).logits, plain(**batch).logits, rtol=0, atol=0)


def test_estimate_update_matches_autograd_and_touches_nothing():
    model = tiny_bert()
    batches = bert_batches()
    layers = lorasb.attach(model, BERT_TARGETS, rank=RANK)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    expected = reference_update(lorasb.merge(copy.deepcopy(model)), layers, batches, LR)

    updates = lorasb.estimate_update(model, batches, lr=LR)

    assert updates.keys() == expected.keys()
    for name in updates:
        torch.testing.assert_close(updates[name].double(), expected[name], rtol=0, atol=0)
        assert set(updates[name].unique().tolist()) <= {-LR, 0.0, LR}
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), key
    assert all(p.grad is None for p in model.parameters())
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    assert trainable == {f"{name}.lora_R" for name in layers}


def test_initialization_is_the_best_rank_r_approximation(adapted):
    model, _, _, updates, stats = adapted
    for name, layer in lorasb.adapters(model).items():
        torch.testing.assert_close(layer.delta_weight(), best_rank_r(updates[name], RANK))
        eye = torch.eye(RANK, dtype=torch.float64)
        torch.testing.assert_close(layer.lora_B.T @ layer.lora_B, eye)
        torch.testing.assert_close(layer.lora_A @ layer.lora_A.T, eye)
        S = torch.linalg.svdvals(updates[name].double())
        torch.testing.assert_close(torch.tensor(stats[name].singular_values, dtype=torch.float64), S[:RANK])
        expected_error = (S[RANK:].square().sum() / S.square().sum()).sqrt().item()
        assert stats[name].relative_error == pytest.approx(expected_error, rel=1e-9)
        torch.testing.assert_close(layer.lora_R, torch.diag(S[:RANK]) / layer.scaling)


def test_initialized_model_equals_plain_model_with_updated_weights(adapted):
    model, plain, batches, _, _ = adapted
    with torch.no_grad():
        for name, layer in lorasb.adapters(model).items():
            plain.get_submodule(name).weight += layer.delta_weight()
    for batch in batches:
        torch.testing.assert_close(model.eval()(**batch).logits, plain.eval()(**batch).logits)


def test_base_weights_unchanged_by_initialization(adapted):
    model, plain, _, _, _ = adapted
    for name, layer in lorasb.adapters(model).items():
        assert torch.equal(layer.base.weight, plain.get_submodule(name).weight)


def test_gradient_of_R_is_the_projected_full_gradient(adapted):
    """∂L/∂R = s·Bᵀ·G·Aᵀ, with G the gradient of the effective weight W0 + s·B·R·A."""
    model, _, batches, _, _ = adapted
    merged = lorasb.merge(copy.deepcopy(model)).train()
    layers = lorasb.adapters(model)
    for name in layers:
        merged.get_submodule(name).weight.requires_grad_(True)
    model.train()
    batch = batches[0]
    model(**batch).loss.backward()
    merged(**batch).loss.backward()
    for name, layer in layers.items():
        G = merged.get_submodule(name).weight.grad
        expected = layer.scaling * layer.lora_B.T @ G @ layer.lora_A.T
        torch.testing.assert_close(layer.lora_R.grad, expected)
        assert layer.lora_A.grad is None and layer.lora_B.grad is None and layer.base.weight.grad is None


def test_merge_equals_adapted_output_and_removes_wrappers(adapted):
    model, _, batches, _, _ = adapted
    with torch.no_grad():
        for layer in lorasb.adapters(model).values():
            layer.lora_R.add_(torch.randn_like(layer.lora_R))
    model.eval()
    expected = [model(**batch).logits for batch in batches]
    merged = lorasb.merge(model)
    assert not lorasb.adapters(merged)
    assert all(type(merged.get_submodule(f"bert.encoder.layer.0.{s}")) is nn.Linear for s in ["attention.self.query", "output.dense"])
    for batch, logits in zip(batches, expected):
        torch.testing.assert_close(merged(**batch).logits, logits)


def test_export_peft_loads_in_peft_with_the_same_logits(adapted, tmp_path):
    from peft import PeftModel

    model, plain, batches, _, _ = adapted
    model.classifier.requires_grad_(True)
    with torch.no_grad():
        model.classifier.weight.mul_(3.0)
        for layer in lorasb.adapters(model).values():
            layer.lora_R.add_(0.1 * torch.randn_like(layer.lora_R))
    lorasb.export_peft(model, tmp_path)  # as the README calls it: the trained head is found and saved

    config = json.loads((tmp_path / "adapter_config.json").read_text())
    assert config["modules_to_save"] == ["classifier"] and config["task_type"] == "SEQ_CLS"
    served = PeftModel.from_pretrained(plain, tmp_path).eval()
    model.eval()
    for batch in batches:
        torch.testing.assert_close(served(**batch).logits, model(**batch).logits)


def test_export_peft_records_where_the_base_model_came_from(tmp_path, minilm_dir):
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(minilm_dir, num_labels=2)
    lorasb.attach(model, ["query"], rank=2)
    config = json.loads((lorasb.export_peft(model, tmp_path, modules_to_save=[]) / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == str(minilm_dir) and config["modules_to_save"] is None


def test_llama_update_and_init_cover_all_projections():
    model = tiny_llama()
    layers = lorasb.attach(model, LLAMA_TARGETS, rank=RANK)
    assert len(layers) == 2 * 7
    batches = llama_batches()
    expected = reference_update(lorasb.merge(copy.deepcopy(model)), layers, batches, LR)
    updates = lorasb.estimate_update(model, batches, lr=LR)
    for name in layers:
        torch.testing.assert_close(updates[name].double(), expected[name], rtol=0, atol=0)
    lorasb.initialize(model, updates)
    for name, layer in layers.items():
        torch.testing.assert_close(layer.delta_weight(), best_rank_r(updates[name], RANK))


def test_randomized_svd_recovers_a_low_rank_matrix_deterministically():
    generator = torch.Generator().manual_seed(0)
    low_rank = torch.randn(300, RANK, generator=generator) @ torch.randn(RANK, 200, generator=generator)
    noisy = low_rank + 1e-6 * torch.randn(300, 200, generator=generator)
    config = SVDConfig(exact_max_dim=0)
    U, S, Vh = truncated_svd(noisy, RANK, config)
    torch.testing.assert_close(U @ torch.diag(S) @ Vh, best_rank_r(noisy, RANK).float(), rtol=1e-4, atol=1e-4)
    again = truncated_svd(noisy, RANK, config)
    assert all(torch.equal(a, b) for a, b in zip((U, S, Vh), again))


@pytest.mark.parametrize("rank", [16, 64, 128])
def test_the_default_randomized_svd_captures_the_exact_top_r_energy_of_a_sign_matrix(rank):
    """A sign matrix's spectrum has a flat tail, the hard case for a randomised SVD: with the
    default power iterations the rank-r approximation keeps ≥ 99.5% of the exact one's energy."""
    generator = torch.Generator().manual_seed(0)
    signs = (torch.randn(768, 8, generator=generator) @ torch.randn(8, 1536, generator=generator) + 2 * torch.randn(768, 1536, generator=generator)).sign()
    singular = torch.linalg.svdvals(signs)
    exact = float(singular[:rank].square().sum() / singular.square().sum())
    U, S, Vh = truncated_svd(signs, rank, SVDConfig(exact_max_dim=0))
    captured = 1 - float((signs - U @ torch.diag(S) @ Vh).square().sum() / signs.square().sum())
    assert 0.995 * exact <= captured <= exact * (1 + 1e-4)


@pytest.mark.parametrize("exact_max_dim", [512, 0])
def test_a_stack_of_matrices_decomposes_as_each_one_alone(exact_max_dim):
    """Batched (same-shaped layers together): each slice's rank-r approximation is its own
    truncated SVD, exact or randomised (a gap after rank r makes the approximation unique)."""
    generator = torch.Generator().manual_seed(0)
    stack = torch.randn(3, 120, RANK, generator=generator) @ torch.randn(3, RANK, 90, generator=generator) + 1e-3 * torch.randn(3, 120, 90, generator=generator)
    config = SVDConfig(exact_max_dim=exact_max_dim)
    U, S, Vh = truncated_svd(stack, RANK, config)
    assert U.shape == (3, 120, RANK) and S.shape == (3, RANK) and Vh.shape == (3, RANK, 90)
    for i in range(3):
        torch.testing.assert_close(U[i] @ torch.diag(S[i]) @ Vh[i], best_rank_r(stack[i], RANK).float(), rtol=1e-4, atol=1e-4)


def test_same_shaped_layers_are_batched_up_to_the_byte_limit():
    shapes = {"q0": (4, 8), "up0": (16, 8), "q1": (4, 8), "up1": (16, 8), "q2": (4, 8)}
    assert same_shape_batches(shapes, 2**30) == [["q0", "q1", "q2"], ["up0", "up1"]]
    assert same_shape_batches(shapes, 2 * 4 * 32) == [["q0", "q1"], ["q2"], ["up0"], ["up1"]]  # two 4×8 float32 per batch
    assert same_shape_batches(shapes, 1) == [["q0"], ["q1"], ["q2"], ["up0"], ["up1"]]  # never an empty batch


def test_lora_sb_initialises_the_same_with_or_without_batched_svds():
    def initialised(batch_bytes):
        torch.manual_seed(0)
        model = tiny_bert()
        method = build_method("lora_sb", RANK, svd=SVDConfig(batch_bytes=batch_bytes))
        model = method.attach(model, BERT_TARGETS)
        generator = torch.Generator().manual_seed(3)
        sums = {name: torch.randn(w.shape, generator=generator, dtype=w.dtype) for name, w in method.target_weights(model).items()}
        method.initialize(model, Gradients(sums, batches=1, samples=4), LR)
        return {name: layer.delta_weight() for name, layer in adapters(model).items()}

    alone, batched = initialised(1), initialised(2**30)
    assert alone.keys() == batched.keys()
    for name in alone:
        torch.testing.assert_close(batched[name], alone[name], rtol=1e-5, atol=1e-9)


def test_dropout_acts_only_on_the_adapter_path():
    base = nn.Linear(8, 6).double()
    layer = lorasb.LoraSBLinear(base, rank=2, dropout=0.5).train()
    x = torch.randn(5, 8, dtype=torch.float64)
    torch.testing.assert_close(layer(x), base(x))  # R = 0: dropout has nothing to act on
    with torch.no_grad():
        layer.lora_A.copy_(torch.eye(2, 8))
        layer.lora_B.copy_(torch.eye(6, 2))
        layer.lora_R.copy_(torch.eye(2))
    assert not torch.allclose(layer(x), layer.eval()(x))



def test_no_matching_module_lists_the_linear_layers():
    with pytest.raises(ValueError, match=r"no nn.Linear matches.*layer\.\*\.attention\.self\.query.*classifier"):
        lorasb.attach(tiny_bert(), ["q_proj"], rank=RANK)


def test_rank_larger_than_a_layer_names_it():
    with pytest.raises(ValueError, match=r"rank 17 is larger than layer 'bert.encoder.layer.0.attention.self.query'.*at most 16"):
        lorasb.attach(tiny_bert(), BERT_TARGETS, rank=17)


def test_attach_twice_is_refused():
    model = tiny_bert()
    lorasb.attach(model, ["query"], rank=RANK)
    with pytest.raises(ValueError, match="already has LoRA-SB adapters"):
        lorasb.attach(model, ["value"], rank=RANK)


def test_nan_gradient_names_the_layer():
    model = tiny_bert(num_labels=1)
    lorasb.attach(model, ["query"], rank=RANK)
    batch = bert_batches(count=1, num_labels=1)[0]
    batch["labels"][0] = float("nan")
    with pytest.raises(FloatingPointError, match=r"layer 'bert.encoder.layer.\d.attention.self.query' contains NaN"):
        lorasb.estimate_update(model, [batch], lr=LR)
    assert all(not layer.base.weight.requires_grad for layer in lorasb.adapters(model).values())


def test_initialize_rejects_updates_for_other_layers(adapted):
    model, _, _, updates, _ = adapted
    with pytest.raises(KeyError, match="missing"):
        lorasb.initialize(model, {k: v for k, v in list(updates.items())[1:]})


def test_layers_with_a_zero_core_are_bypassed_exactly_and_only_inside_the_block():
    """A zero core adds nothing and sends nothing back: bypassed, the loss and the gradients of
    W0 and of the inputs are the same; a layer with a non-zero core keeps its path."""
    from lorasb.method.attach import bypassing_empty_adapters

    model = tiny_llama()
    layers = lorasb.attach(model, LLAMA_TARGETS, rank=RANK)
    generator = torch.Generator().manual_seed(0)
    for layer in layers.values():  # factors as after an initialisation, cores still zero
        layer.lora_A.data = torch.randn(layer.lora_A.shape, generator=generator, dtype=layer.lora_A.dtype)
        layer.lora_B.data = torch.randn(layer.lora_B.shape, generator=generator, dtype=layer.lora_B.dtype)
    trained = next(iter(layers.values()))
    trained.lora_R.data.fill_(0.1)
    batch = llama_batches()[0]
    embeddings = model.get_input_embeddings()(batch["input_ids"]).detach().requires_grad_(True)
    inputs = {"inputs_embeds": embeddings, "attention_mask": batch["attention_mask"], "labels": batch["labels"]}
    weights = [layer.base.weight.requires_grad_(True) for layer in layers.values()]

    def loss_and_gradients():
        loss = model(**inputs).loss
        return loss, torch.autograd.grad(loss, [embeddings, *weights])

    full_loss, full = loss_and_gradients()
    with bypassing_empty_adapters(model):
        assert [layer.bypassed for layer in layers.values()] == [layer is not trained for layer in layers.values()]
        loss, bypassed = loss_and_gradients()
    assert not any(layer.bypassed for layer in layers.values())
    torch.testing.assert_close(loss, full_loss, rtol=1e-12, atol=0)
    for got, expected in zip(bypassed, full):
        torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-12)
    trained.lora_R.data.zero_()  # the one non-zero core did change the loss
    assert not torch.isclose(model(**inputs).loss, full_loss)
