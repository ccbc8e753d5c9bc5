"""Quantized bases (bitsandbytes 4-bit and 8-bit layers, on the CPU): the estimate, the LoRA-SB and
LoRA-XS layers, and the refusals, on a tiny Llama model quantized as transformers loads it."""

import importlib.util

import pytest
import torch

from lorasb.config import config_problems
from lorasb.method.attach import adapters
from lorasb.method.estimate import accumulate_gradients
from lorasb.method.quantized import dequantize_linears, float_weight, is_quantized, weight_shape
from lorasb.method.registry import build_method
from lorasb.models import load_causal_lm
from lorasb.models.quantization import bnb_config, prepare_for_training
from lorasb.settings.model import INSTALL
from lorasb.settings.model import ModelSettings
from tests.helpers.tiny_models import LLAMA_TARGETS

pytest.importorskip("bitsandbytes", reason="bitsandbytes is in the test extra: pip install -e '.[test]'")


def quantized_settings(kind: str, folder) -> ModelSettings:
    return ModelSettings(name_or_path=str(folder), target_modules=LLAMA_TARGETS, quantization=kind, kind="causal_lm")


@pytest.fixture(scope="module")
def llama_folder(tmp_path_factory):
    """A tiny Llama (hidden 64, so that every layer fills whole 4-bit blocks) saved in float32."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=96, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2)
    folder = tmp_path_factory.mktemp("tiny_llama")
    LlamaForCausalLM(config).save_pretrained(folder)
    return folder


def load(kind: str, folder):
    settings = quantized_settings(kind, folder)
    return load_causal_lm(settings.name_or_path, settings.dtype, bnb_config(settings.quantization, settings.dtype, settings.double_quant))


def batches(count: int = 2, seed: int = 1):
    generator = torch.Generator().manual_seed(seed)
    ids = [torch.randint(1, 96, (3, 10), generator=generator) for _ in range(count)]
    masks = [torch.ones_like(i) for i in ids]
    masks[0][0, 7:] = 0  # padding
    return [{"input_ids": i, "attention_mask": m, "labels": i.masked_fill(m == 0, -100)} for i, m in zip(ids, masks)]


def four_bit_layers(model) -> list:
    return [m for m in model.modules() if hasattr(m, "support_avx512bf16_for_cpu")]


def repack_for_cpu_inference(model) -> None:
    """Repack every 4-bit weight as bitsandbytes does after an eval pass on a CPU with AVX512-BF16,
    for its inference kernel, which has no backward."""
    from bitsandbytes.functional import _convert_weight_packed_for_cpu

    for layer in four_bit_layers(model):
        layer.weight.data, layer.weight.quant_state = _convert_weight_packed_for_cpu(layer.weight.data, layer.weight.quant_state)
        assert layer.weight.quant_state.packing_format_for_cpu


@pytest.mark.parametrize("kind", ["nf4", "fp4"])
@pytest.mark.parametrize("repacked", [False, True], ids=["loaded", "repacked"])
def test_the_estimate_on_a_4bit_base_is_the_gradient_of_its_dequantized_weights(kind, repacked, llama_folder):
    """ΣG from layer inputs and output gradients on the quantized layers equals autograd's gradient of
    the same model with each quantized weight replaced by its dequantized float32 copy. Repacked:
    the weights were first repacked for bitsandbytes' CPU inference kernel; prepare_for_training
    puts them back, and no later eval pass repacks them (on any CPU)."""
    model = load(kind, llama_folder)
    assert four_bit_layers(model) and not any(layer.support_avx512bf16_for_cpu for layer in four_bit_layers(model))
    if repacked:
        repack_for_cpu_inference(model)
        prepare_for_training(model, gradient_checkpointing=False)
        with torch.no_grad():
            model.eval()(input_ids=batches(1)[0]["input_ids"])
        assert not any(layer.weight.quant_state.packing_format_for_cpu for layer in four_bit_layers(model))
    names = [n for n, m in model.named_modules() if isinstance(m, torch.nn.Linear) and is_quantized(m.weight)]
    assert len(names) == 2 * 7
    weights = {n: model.get_submodule(n).weight for n in names}
    sums = accumulate_gradients(model, batches(), weights)
    assert all(sums[n].shape == weight_shape(weights[n]) == (model.get_submodule(n).out_features, model.get_submodule(n).in_features) for n in names)

    reference = dequantize_linears(model).train()  # its weights as the estimate read them (a repacking's round trip takes its scales through bfloat16)
    assert not reference.is_quantized and not any(is_quantized(p) for p in reference.parameters())
    reference.requires_grad_(False)
    for n in names:
        reference.get_submodule(n).weight.requires_grad_(True)
    for batch in batches():
        reference(**batch).loss.backward()
    for n in names:
        torch.testing.assert_close(sums[n], reference.get_submodule(n).weight.grad, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("kind", ["nf4", "int8"])
def test_lora_sb_on_a_quantized_base_starts_as_the_base_and_merges_to_its_outputs(kind, llama_folder):
    model = load(kind, llama_folder).eval()
    inputs = batches(1)[0]
    with torch.no_grad():
        before = model(input_ids=inputs["input_ids"]).logits
    method = build_method("lora_sb", 4)
    method.attach(model, LLAMA_TARGETS)
    layers = adapters(model)
    assert all(is_quantized(layer.base.weight) and layer.lora_R.dtype == layer.lora_A.dtype == torch.float32 for layer in layers.values())
    with torch.no_grad():
        torch.testing.assert_close(model(input_ids=inputs["input_ids"]).logits, before, rtol=0, atol=0)
    signs = accumulate_gradients(model, batches(), method.target_weights(model), form="sign")
    from lorasb.method.cache import Gradients

    method.initialize(model, Gradients(signs, batches=2, samples=6), lr=1e-2)
    with torch.no_grad():
        adapted = model(input_ids=inputs["input_ids"]).logits
        assert (adapted - before).abs().max() > 1e-4
        for name, layer in layers.items():
            merged = layer.merged()
            assert merged.weight.dtype == torch.float32 and not is_quantized(merged.weight)
            torch.testing.assert_close(merged.weight, float_weight(layer.base) + layer.delta_weight())
        if kind == "nf4":  # a 4-bit layer computes with its dequantized weight, so the merged layer gives its outputs
            x = torch.randn(5, 64)
            name, layer = next(iter(layers.items()))
            torch.testing.assert_close(layer.merged()(x), layer(x), rtol=1e-5, atol=1e-5)


def test_lora_xs_takes_the_svd_of_the_dequantized_weight(llama_folder):
    model = load("nf4", llama_folder)
    method = build_method("lora_xs", 64)  # full rank of the 64-wide layers: B·A is the dequantized W0
    method.attach(model, ["q_proj"])
    method.initialize(model, None, lr=1e-3)
    for layer in adapters(model).values():
        torch.testing.assert_close(layer.lora_B @ layer.lora_A, float_weight(layer.base), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("method", ["pissa", "lora_ga", "full"])
def test_methods_that_write_the_base_weights_are_refused_by_name(method, compose):
    cfg = compose("model=smollm2_135m", "task=metamath", f"method={method}", "model.quantization=nf4")
    assert config_problems(cfg) == [
        f"method={method} writes into the base weights, which model.quantization=nf4 holds quantized; "
        "use lora_sb, lora_xs, lora or dora, or model.quantization=null"
    ]


def test_quantization_without_bitsandbytes_names_the_install_command(compose, monkeypatch):
    cfg = compose("model=smollm2_135m", "task=metamath", "model.quantization=int8")
    assert config_problems(cfg) == []
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "bitsandbytes" else real(name, *a))
    assert config_problems(cfg) == [f"model.quantization=int8 needs bitsandbytes, which is not installed: {INSTALL}"]


def test_an_unknown_quantization_and_a_quantized_encoder_are_refused(compose):
    assert config_problems(compose("model=smollm2_135m", "task=metamath", "model.quantization=int4")) == [
        "model.quantization=int4: expected one of nf4, fp4, int8 or null"
    ]
    assert config_problems(compose("model=minilm", "task=glue/rte", "model.quantization=nf4")) == [
        "model.quantization=nf4: quantized bases are for causal language models; set model.quantization=null"
    ]
