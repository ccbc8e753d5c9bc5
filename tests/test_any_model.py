"""Any model: model.target_modules=all-linear and named targets on tiny randomly initialised models
of each architecture the generic entries serve (BERT, RoBERTa, DeBERTa, DeBERTa-v2, Llama, Qwen2,
Mistral, Phi-3), built from their config classes, and LoRA-SB initialised and trained on each."""

import pytest
import torch
from helpers.tiny_models import DECODERS, ENCODERS, bert_batches, llama_batches, tiny_model
from torch import nn

import lorasb
from lorasb.method.targets import resolve_targets

RANK = 4


def linear_names(model: nn.Module) -> list[str]:
    return [name for name, module in model.named_modules() if isinstance(module, nn.Linear)]


def head_of(architecture: str) -> list[str]:
    return ["classifier"] if architecture in ENCODERS else []


@pytest.mark.parametrize("architecture", ENCODERS + DECODERS)
def test_all_linear_is_every_linear_layer_but_the_output_layer_and_the_head(architecture):
    model = tiny_model(architecture)
    left_out = {"lm_head"} if architecture in DECODERS else {n for n in linear_names(model) if n.split(".")[0] == "classifier"}
    assert left_out and left_out <= set(linear_names(model))
    assert resolve_targets(model, "all-linear", head_of(architecture)) == [n for n in linear_names(model) if n not in left_out]
    assert resolve_targets(model, ["all-linear"], head_of(architecture)) == resolve_targets(model, "all-linear", head_of(architecture))


def test_phi3s_fused_projections_are_ordinary_targets():
    model = tiny_model("phi3")
    assert resolve_targets(model, ["qkv_proj", "gate_up_proj"]) == [
        "model.layers.0.self_attn.qkv_proj", "model.layers.0.mlp.gate_up_proj",
        "model.layers.1.self_attn.qkv_proj", "model.layers.1.mlp.gate_up_proj",
    ]  # fmt: skip
    assert model.get_submodule("model.layers.0.self_attn.qkv_proj").out_features == 16 + 2 * 8  # q (2 heads of 8), k and v (1 head) in one matrix


def test_a_name_that_matches_nothing_is_refused_with_the_models_linear_layers():
    with pytest.raises(ValueError) as error:
        resolve_targets(tiny_model("phi3"), ["q_proj", "o_proj", "v_proj"])
    assert str(error.value) == (
        "no nn.Linear matches target_modules entry 'q_proj', 'v_proj'. The model's linear layers are: "
        "model.layers.*.self_attn.o_proj, model.layers.*.self_attn.qkv_proj, model.layers.*.mlp.gate_up_proj, "
        "model.layers.*.mlp.down_proj, lm_head; name some of them (or a suffix of their names), or give model.target_modules=all-linear"
    )
    with pytest.raises(ValueError, match=r"^target_modules=\['all-linear', 'o_proj'\]: all-linear stands alone"):
        resolve_targets(tiny_model("llama"), ["all-linear", "o_proj"])


def batches_for(architecture: str) -> list[dict]:
    return [{k: v.float() if v.is_floating_point() else v for k, v in b.items()} for b in bert_batches()] if architecture in ENCODERS else llama_batches()


@pytest.mark.parametrize("architecture", ENCODERS + DECODERS)
def test_lora_sb_initialises_every_target_and_a_step_trains_only_the_cores_and_the_head(architecture):
    model = tiny_model(architecture)
    targets = resolve_targets(model, "all-linear", head_of(architecture))
    layers = lorasb.attach(model, targets, rank=RANK)
    model.requires_grad_(False)
    for layer in layers.values():
        layer.lora_R.requires_grad_(True)
    for name in head_of(architecture):
        model.get_submodule(name).requires_grad_(True)
    batches = batches_for(architecture)
    lorasb.initialize(model, lorasb.estimate_update(model, batches, lr=1e-3))
    assert set(layers) == set(targets)
    for name, layer in layers.items():  # B and A orthonormal, R the top singular values of the estimated step
        eye = torch.eye(RANK)
        torch.testing.assert_close(layer.lora_B.T @ layer.lora_B, eye, atol=1e-5, rtol=0)
        torch.testing.assert_close(layer.lora_A @ layer.lora_A.T, eye, atol=1e-5, rtol=0)
        assert layer.lora_R.abs().sum() > 0, name
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    loss = model(**batches[0]).loss
    assert torch.isfinite(loss)
    loss.backward()
    optimizer.step()
    changed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    cores = {f"{name}.lora_R" for name in layers}
    head = {n for n, _ in model.named_parameters() if any(n.startswith(h + ".") for h in head_of(architecture))}
    assert cores <= changed <= cores | head
