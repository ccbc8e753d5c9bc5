"""Memory of the gradient estimate: sums added as gradients arrive, layer groups, offload,
bfloat16 sums, int8 signs for LoRA-SB, a memory budget, and the cache keeping forms apart."""

import json
import weakref

import pytest
import torch

import lorasb
from lorasb.method.cache import GradientCache, Gradients
from lorasb.method.estimate import accumulate_gradients
from lorasb.method.memory import AccumulatorOptions, fit_budget, group_names, memory_budget, needed_bytes, split_groups
from lorasb.method.registry import build_method
from lorasb.train import run
from helpers.tiny_models import BERT_TARGETS, LLAMA_TARGETS, bert_batches, llama_batches, tiny_bert, tiny_llama

RANK = 4


def llama_with_adapters():
    model = tiny_llama()
    lorasb.attach(model, LLAMA_TARGETS, rank=RANK)
    return model


def reference_sums(model, batches) -> dict[str, torch.Tensor]:
    """ΣG from ``torch.autograd.grad`` on every target weight at once."""
    weights = {name: layer.base.weight for name, layer in lorasb.adapters(model).items()}
    for w in weights.values():
        w.requires_grad_(True)
    sums = {name: torch.zeros_like(w) for name, w in weights.items()}
    for batch in batches:
        for name, grad in zip(weights, torch.autograd.grad(model(**batch).loss, list(weights.values()))):
            sums[name] += grad
    for w in weights.values():
        w.requires_grad_(False)
    return sums


def test_sums_added_as_gradients_arrive_equal_autograd_and_leave_no_grad():
    model = llama_with_adapters()
    batches = llama_batches(count=3)
    expected = reference_sums(model, batches)
    sums = accumulate_gradients(model, batches)
    assert sums.keys() == expected.keys()
    for name, total in sums.items():
        assert total.dtype == torch.float64
        assert torch.equal(total, expected[name]), name
    assert all(p.grad is None for p in model.parameters())
    assert {n for n, p in model.named_parameters() if p.requires_grad} == {f"{n}.lora_R" for n in sums}


def padded(batches):
    """The batches with the last tokens of every other row masked out, as a padded batch has them."""
    for batch in batches:
        mask = batch["attention_mask"].clone()
        mask[::2, -3:] = 0
        batch["attention_mask"] = mask
        if batch["labels"].dim() == 2:  # causal LM: no loss on padding
            batch["labels"] = batch["labels"].masked_fill(mask == 0, -100)
    return batches


def autograd_sums_with_dropout(model, batches, seed) -> dict[str, torch.Tensor]:
    """ΣG as autograd gives it, each batch's dropout drawn from ``seed`` + its index."""
    weights = {name: layer.base.weight for name, layer in lorasb.adapters(model).items()}
    sums = {name: torch.zeros_like(w) for name, w in weights.items()}
    for w in weights.values():
        w.requires_grad_(True)
    for i, batch in enumerate(batches):
        torch.manual_seed(seed + i)
        for name, grad in zip(weights, torch.autograd.grad(model(**batch).loss, list(weights.values()))):
            sums[name] += grad
    for w in weights.values():
        w.requires_grad_(False)
    return sums


class Reseeding(list):
    """Batches that seed the global generator before each one is used, as the reference does."""

    def __init__(self, batches, seed):
        super().__init__(batches)
        self.seed = seed

    def __iter__(self):
        for i, batch in enumerate(super().__iter__()):
            torch.manual_seed(self.seed + i)
            yield batch


@pytest.mark.parametrize("family", ["bert", "llama"])
def test_sums_from_layer_inputs_and_output_gradients_equal_autograd_with_padding_and_dropout(family):
    """Every target layer of a float64 model with dropout on, padded batches, summed over batches
    (gradient accumulation): ΣG = Σ ∂L/∂yᵀ·x equals the weight gradients autograd computes."""
    if family == "bert":
        model = tiny_bert()
        model.config.hidden_dropout_prob = model.config.attention_probs_dropout_prob = 0.1
        for module in model.modules():
            if isinstance(module, torch.nn.Dropout):
                module.p = 0.1
        lorasb.attach(model, BERT_TARGETS, rank=RANK)
        batches = padded(bert_batches(count=3))
    else:
        model = tiny_llama()
        model.config.attention_dropout = 0.1
        for layer in model.model.layers:
            layer.self_attn.attention_dropout = 0.1
        lorasb.attach(model, LLAMA_TARGETS, rank=RANK)
        batches = padded(llama_batches(count=3))
    model.train()
    expected = autograd_sums_with_dropout(model, batches, seed=7)
    sums = accumulate_gradients(model, Reseeding(batches, seed=7))
    assert sums.keys() == expected.keys() and len(sums) == len(lorasb.adapters(model))
    for name, total in sums.items():
        torch.testing.assert_close(total, expected[name], rtol=1e-12, atol=1e-14, msg=name)
    torch.manual_seed(8)  # other dropout masks give other sums: the comparison sees dropout
    other = accumulate_gradients(model, batches)
    assert any(not torch.allclose(other[name], expected[name]) for name in sums)


@pytest.mark.parametrize("form", ["sum", "sign"])
def test_one_two_and_three_layer_groups_give_the_same_result(form):
    model = llama_with_adapters()
    batches = llama_batches(count=3)
    results = [accumulate_gradients(model, batches, form=form, options=AccumulatorOptions(layer_groups=k)) for k in (1, 2, 3)]
    for result in results[1:]:
        assert list(result) == list(results[0])
        assert all(torch.equal(result[name], results[0][name]) for name in result)
    assert all(p.grad is None for p in model.parameters())


def test_signs_are_int8_signs_of_the_sums():
    model = llama_with_adapters()
    sums = accumulate_gradients(model, llama_batches())
    signs = accumulate_gradients(model, llama_batches(), form="sign")
    for name, sign in signs.items():
        assert sign.dtype == torch.int8
        assert torch.equal(sign, sums[name].sign().to(torch.int8)), name


def test_offloaded_sums_give_exactly_the_same_signs():
    model = llama_with_adapters()
    plain = accumulate_gradients(model, llama_batches(), form="sign")
    offloaded = accumulate_gradients(model, llama_batches(), form="sign", options=AccumulatorOptions(offload=True, layer_groups=2))
    assert all(torch.equal(offloaded[name], plain[name]) and offloaded[name].device.type == "cpu" for name in plain)


def test_bfloat16_sums_mostly_keep_the_signs():
    model = llama_with_adapters().float()
    batches = llama_batches(count=8)
    single = accumulate_gradients(model, batches)
    half = accumulate_gradients(model, batches, options=AccumulatorOptions(dtype="bfloat16"))
    assert {t.dtype for t in half.values()} == {torch.bfloat16}
    agree = sum((half[n].sign() == single[n].sign()).sum().item() for n in single) / sum(t.numel() for t in single.values())
    assert 0.97 < agree < 1.0, agree  # a few entries with a sum near zero flip


def test_a_generator_cannot_feed_several_layer_groups():
    model = llama_with_adapters()
    with pytest.raises(ValueError, match="gave 2 batches to layer group 1 but 0 to group 2: pass a list or a DataLoader"):
        accumulate_gradients(model, iter(llama_batches()), options=AccumulatorOptions(layer_groups=2))


def test_a_weight_outside_the_loss_is_named():
    model = llama_with_adapters()
    model.unused = torch.nn.Linear(2, 2)  # in the model, never called by its forward
    weights = {"q": model.model.layers[0].self_attn.q_proj.base.weight, "unused": model.unused.weight}
    flags = {name: w.requires_grad for name, w in weights.items()}
    with pytest.raises(RuntimeError, match="layer 'unused' got no gradient: it does not take part in the loss"):
        accumulate_gradients(model, llama_batches(), weights)
    assert {name: w.requires_grad for name, w in weights.items()} == flags


def test_a_weight_no_linear_layer_holds_is_named():
    model = llama_with_adapters()
    weights = {"q": model.model.layers[0].self_attn.q_proj.base.weight, "stray": torch.nn.Parameter(torch.zeros(2, 2))}
    with pytest.raises(ValueError, match="the estimate reads the weights of linear layers only; stray is held by none"):
        accumulate_gradients(model, llama_batches(), weights)


@pytest.mark.parametrize("groups", [1, 3])
def test_each_group_goes_to_on_group_once_final_and_lora_sb_decomposes_it_keeping_nothing(groups):
    """Every group is handed over before the next group's pass starts, and LoRA-SB's ``digest_group``
    keeps none of it: its signs are freed at once, the factors wait in the memo, and the
    initialisation then needs no signs and gives the adapters an initialisation from all signs gives."""
    batches = llama_batches(count=2)
    method = build_method("lora_sb", RANK)
    model = method.attach(tiny_llama(), LLAMA_TARGETS)
    forwards, handed, alive = [], [], []
    model.register_forward_hook(lambda *_: forwards.append(all(ref() is None for ref in alive)))
    memo = GradientCache(None, {}).memo

    def on_group(group):
        handed.append((len(forwards), list(group)))
        alive.extend(weakref.ref(t) for t in group.values())
        return method.digest_group(model, group, memo)

    options = AccumulatorOptions(layer_groups=groups)
    kept = accumulate_gradients(model, batches, method.target_weights(model), form="sign", options=options, on_group=on_group)
    assert kept == {} and all(forwards) and all(ref() is None for ref in alive)  # no pass saw an earlier group's signs
    names = group_names(method.target_weights(model), groups)
    assert handed == [(2 * (i + 1), group) for i, group in enumerate(names)]  # after its own pass, before the next
    stats = method.initialize(model, Gradients({}, batches=2, samples=8), 1e-3, memo)

    reference = method.attach(tiny_llama(), LLAMA_TARGETS)
    signs = accumulate_gradients(reference, batches, form="sign")
    expected = method.initialize(reference, Gradients(signs, batches=2, samples=8), 1e-3)
    for name, layer in lorasb.adapters(model).items():
        assert torch.equal(layer.delta_weight(), lorasb.adapters(reference)[name].delta_weight()), name
        assert stats[name] == expected[name]


def test_lora_sb_initialises_from_the_int8_signs_as_from_the_sums():
    batches = bert_batches()
    models, method = [], build_method("lora_sb", RANK)
    for form in ("sum", "sign"):
        model = method.attach(tiny_bert(), BERT_TARGETS)
        sums = accumulate_gradients(model, batches, form=form)
        method.initialize(model, Gradients(sums, batches=3, samples=12), 1e-3)
        models.append(model)
    for name, layer in lorasb.adapters(models[0]).items():
        assert torch.equal(layer.delta_weight(), lorasb.adapters(models[1])[name].delta_weight()), name


# --- groups and the memory budget, on made-up shapes ---------------------------------------


def test_groups_are_contiguous_and_their_largest_is_the_smallest_possible():
    assert split_groups([4, 4, 4, 4], 2) == [[0, 1], [2, 3]]
    assert split_groups([1, 1, 1, 3], 3) == [[0, 1], [2], [3]]
    assert split_groups([6, 1, 1, 1, 1, 1, 1], 2) == [[0], [1, 2, 3, 4, 5, 6]]
    assert split_groups([5, 5], 10) == [[0], [1]]
    assert split_groups([3, 1, 2], 1) == [[0, 1, 2]]


def shapes(*numels, dtype=torch.float32) -> dict[str, torch.Tensor]:
    return {f"layer{i}": torch.empty(n, device="meta", dtype=dtype) for i, n in enumerate(numels)}


FOUR = shapes(1000, 1000, 1000, 1000)  # 4000 bytes of float32 gradient each


@pytest.mark.parametrize(
    ("budget", "configured", "groups"),
    [(None, 1, 1), (20000, 1, 1), (19999, 1, 2), (12000, 1, 2), (11999, 1, 4), (8000, 1, 4), (20000, 3, 3), (50000, 9, 4)],
)
def test_the_budget_picks_the_fewest_groups_that_fit(budget, configured, groups):
    # peak = largest gradient 4000 + largest group's float32 sums (a finished group's signs are gone before the next pass)
    assert needed_bytes(FOUR, AccumulatorOptions(layer_groups=groups), "sign") <= (budget or 10**9)
    assert fit_budget(FOUR, AccumulatorOptions(layer_groups=configured), "sign", budget).layer_groups == groups


def test_bfloat16_offload_and_the_sum_form_in_the_budget():
    assert fit_budget(FOUR, AccumulatorOptions(dtype="bfloat16"), "sign", 12000).layer_groups == 1
    assert fit_budget(FOUR, AccumulatorOptions(offload=True), "sign", 4000, on_device=False).layer_groups == 1
    assert needed_bytes(FOUR, AccumulatorOptions(layer_groups=4), "sum") == 4000 + 16000  # groups do not lower it
    assert fit_budget(FOUR, AccumulatorOptions(), "sum", 20000).layer_groups == 1


def test_a_budget_nothing_fits_names_what_to_change():
    with pytest.raises(ValueError) as caught:
        fit_budget(FOUR, AccumulatorOptions(), "sign", 7999)
    assert str(caught.value) == (
        "init.memory_budget=7999 bytes is less than the 8000 bytes the gradient estimate needs (accumulators in "
        "float32, offload=false, 4 layer groups); set init.offload=true, init.accumulator_dtype=bfloat16 or a larger "
        "init.memory_budget"
    )
    with pytest.raises(ValueError, match=r"^init.memory_budget=19999 bytes is less than the 20000 bytes .* 1 layer group\);"):
        fit_budget(FOUR, AccumulatorOptions(), "sum", 19999)
    with pytest.raises(ValueError, match=r"^init.memory_budget=3999 bytes is less than the 4000 bytes .*offload=true"):
        fit_budget(FOUR, AccumulatorOptions(offload=True), "sign", 3999, on_device=False)


def test_memory_budget_values():
    assert memory_budget(None, torch.device("cpu")) is None
    assert memory_budget(2.5e9, torch.device("cpu")) == 2_500_000_000
    assert memory_budget("auto", torch.device("cpu")) > 0  # MemAvailable


def test_group_names_follow_the_weights_order():
    assert group_names(shapes(3, 1, 2, 2), 2) == [["layer0", "layer1"], ["layer2", "layer3"]]


# --- the cache and a run ------------------------------------------------------------------


def computed(gradients: Gradients):
    """A ``compute`` for the cache that passes all of ``gradients`` as one group."""
    return lambda store: Gradients(dict(store(gradients.sums)), gradients.batches, gradients.samples, accumulator=gradients.accumulator)


def test_the_cache_keeps_sums_and_signs_apart_and_reads_signs_from_sums(tmp_path):
    sums = Gradients({"a": torch.tensor([0.5, -2.0, 0.0])}, batches=1, samples=2)
    signs = Gradients({"a": torch.tensor([1, 1, -1], dtype=torch.int8)}, batches=1, samples=2, accumulator={"dtype": "float32"})
    cache = GradientCache(tmp_path / "signs first", {"model": "m"})
    cache.gradients(computed(signs), "sign")
    assert cache.gradients(computed(sums), "sum").sums == sums.sums  # sums are not read from signs
    read = GradientCache(tmp_path / "signs first", {"model": "m"}).gradients(lambda store: pytest.fail("estimated again"), "sign")
    assert read.cached and torch.equal(read.sums["a"], signs.sums["a"]) and read.accumulator == {"dtype": "float32"}
    (key,) = (tmp_path / "signs first").iterdir()
    assert json.loads((key / "sign" / "meta.json").read_text())["form"] == "sign"

    GradientCache(tmp_path / "sums only", {"model": "m"}).gradients(computed(sums), "sum")
    read = GradientCache(tmp_path / "sums only", {"model": "m"}).gradients(lambda store: pytest.fail("estimated again"), "sign")
    assert read.cached and read.sums["a"].dtype == torch.int8 and read.sums["a"].tolist() == [1, -1, 0]


def test_the_cache_stores_every_group_as_it_comes_and_keeps_what_on_group_returns(tmp_path):
    groups = [{"a": torch.ones(2), "b": -torch.ones(3)}, {"c": torch.zeros(1)}]
    seen = []

    def compute(store):
        kept = {}
        for group in groups:
            kept.update(store(group))
        return Gradients(kept, batches=2, samples=4)

    def on_group(group):
        seen.append(sorted(group))
        return {}

    estimated = GradientCache(tmp_path, {"model": "m"}).gradients(compute, "sum", on_group=on_group)
    assert seen == [["a", "b"], ["c"]] and dict(estimated.sums) == {}
    read = GradientCache(tmp_path, {"model": "m"}).gradients(lambda store: pytest.fail("estimated again"), "sum")
    assert list(read.sums) == ["a", "b", "c"] and len(read.sums) == 3
    assert torch.equal(read.sums["b"], -torch.ones(3)) and "d" not in read.sums  # read from disk when asked for


@pytest.mark.slow
def test_a_run_records_its_accumulator(composer, tmp_path, glue_fixtures):
    overrides = [
        "task=glue/rte", "model=minilm", "trainer=cpu", "trainer.precision=32-true", "logger=csv",
        f"data.dir={glue_fixtures}", "data.train_limit=16", "data.val_limit=16", "data.max_length=32",
        "init.num_samples=4", "init.batch_size=2", "optim.lr=1e-3", "++trainer.fast_dev_run=true",
        "++trainer.enable_progress_bar=false", "++trainer.enable_model_summary=false",
        "init.layer_groups=2", "init.memory_budget=auto",
    ]  # fmt: skip
    run(composer(overrides, tmp_path))
    stats = json.loads((tmp_path / "init_stats.json").read_text())
    assert stats["gradients"] == "estimated"
    assert stats["accumulator"] == {"dtype": "float32", "offload": False, "layer_groups": 2}
    meta = json.loads(next(tmp_path.glob("gradient_cache/*/sign/meta.json")).read_text())
    assert meta["accumulator"] == stats["accumulator"] and len(meta["layers"]) == 24
