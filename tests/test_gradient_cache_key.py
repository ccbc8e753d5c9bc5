"""The gradient cache's key: what ΣG is computed from (batches, weights, seed, settings) and
nothing else, so a changed label, token, row or weight misses and a sweep over rank, lr or
method hits; an entry of an older key layout is never read; ``python -m lorasb.cache``."""

import json
import time

import pytest
import torch

from lorasb.cache import main as cache_main
from lorasb.lightning.gradient_key import estimate_inputs
from lorasb.method.cache import GradientCache, Gradients, cache_key
from lorasb.method.registry import build_method
from helpers.tiny_models import BERT_TARGETS, bert_batches, tiny_bert

SETTINGS = {"precision": "32-true", "init": {"accumulator_dtype": "float32"}}


def key(method="lora_sb", rank=4, batches=None, change=None, seed=42, settings=SETTINGS) -> str:
    """The key of a tiny BERT adapted by ``method`` at ``rank``; ``change(model)`` edits it first."""
    built = build_method(method, rank)
    model = built.attach(tiny_bert(), BERT_TARGETS, ["classifier"])
    if change is not None:
        with torch.no_grad():
            change(model)
    return cache_key(estimate_inputs(built, model, batches if batches is not None else bert_batches(), seed, settings))


def edited(edit):
    """``bert_batches()`` with ``edit(batches)`` applied."""
    batches = bert_batches()
    edit(batches)
    return batches


def one_more_row(batches):
    batches[0] = {name: torch.cat([tensor, tensor[:1]]) for name, tensor in batches[0].items()}


def parameter(model, name):
    return dict(model.named_parameters())[name]


def test_the_same_inputs_give_the_same_key():
    assert key() == key()


@pytest.mark.parametrize(
    "changed",
    [
        pytest.param(lambda: key(batches=edited(lambda b: b[1]["labels"].__setitem__(0, 1 - b[1]["labels"][0]))), id="one label"),
        pytest.param(lambda: key(batches=edited(lambda b: b[2]["input_ids"].__setitem__((3, 4), 5 + b[2]["input_ids"][3, 4] % 50))), id="one token"),
        pytest.param(lambda: key(batches=edited(lambda b: b[0]["attention_mask"].__setitem__((0, 6), 0))), id="one mask entry"),
        pytest.param(lambda: key(batches=bert_batches()[:2]), id="one batch fewer"),
        pytest.param(lambda: key(batches=edited(lambda b: b.reverse())), id="batch order"),
        pytest.param(lambda: key(batches=edited(one_more_row)), id="one row more"),
        pytest.param(lambda: key(change=lambda m: parameter(m, "bert.encoder.layer.0.attention.self.query.base.weight")[0, 0].add_(1e-6)), id="one target weight"),
        pytest.param(lambda: key(change=lambda m: parameter(m, "classifier.bias")[1].add_(1e-6)), id="the head's bias"),
        pytest.param(lambda: key(change=lambda m: parameter(m, "bert.embeddings.word_embeddings.weight")[7, 3].add_(1e-6)), id="an embedding"),
        pytest.param(lambda: key(change=lambda m: m.double().float()), id="the dtype"),
        pytest.param(lambda: key(seed=43), id="the seed"),
        pytest.param(lambda: key(change=lambda m: setattr(m.config, "hidden_dropout_prob", 0.2)), id="the dropout"),
        pytest.param(lambda: key(settings={**SETTINGS, "precision": "bf16-mixed"}), id="the precision"),
        pytest.param(lambda: key(settings={**SETTINGS, "init": {"accumulator_dtype": "bfloat16"}}), id="the accumulator"),
    ],
)
def test_changing_what_the_estimate_reads_misses(changed):
    assert changed() != key()


@pytest.mark.parametrize("method, rank", [("lora_sb", 8), ("lora_ga", 4), ("lora_ga", 16)])
def test_rank_and_method_leave_the_key_alone(method, rank):
    """Their adapters are empty during the estimate: the key names none of their tensors."""
    assert key(method, rank) == key()


def test_the_key_changes_with_the_target_layers():
    built = build_method("lora_sb", 4)
    fewer = built.attach(tiny_bert(), ["query"], ["classifier"])
    assert cache_key(estimate_inputs(built, fewer, bert_batches(), 42, SETTINGS)) != key()


# --- the layout on disk ----------------------------------------------------------------------


def estimated(store):
    return Gradients(dict(store({"a": torch.tensor([1, -1], dtype=torch.int8)})), batches=1, samples=2)


def test_an_entry_of_an_older_key_layout_is_ignored(tmp_path):
    inputs = {"settings": SETTINGS}
    GradientCache(tmp_path, inputs).gradients(estimated, "sign")
    (entry,) = tmp_path.iterdir()
    meta = entry / "sign" / "meta.json"
    older = {k: v for k, v in json.loads(meta.read_text()).items() if k != "layout"}  # as lorasb wrote it before
    meta.write_text(json.dumps(older))
    calls = []
    again = GradientCache(tmp_path, inputs).gradients(lambda store: calls.append(1) or estimated(store), "sign")
    assert calls == [1] and not again.cached
    assert json.loads(meta.read_text())["layout"] == 2  # rewritten under this layout, then read
    assert GradientCache(tmp_path, inputs).gradients(lambda store: pytest.fail("estimated again"), "sign").cached


def test_a_folder_named_by_the_older_key_is_never_looked_at(tmp_path):
    """The older layout named folders by 16 hex digits of a settings hash: no key of now is one."""
    old = tmp_path / "0123456789abcdef" / "sign"
    old.mkdir(parents=True)
    (old / "meta.json").write_text(json.dumps({"depends_on": {}, "form": "sign", "layers": ["a"], "batches": 1, "samples": 2}))
    assert cache_key({}).startswith("v2-") and len(cache_key({})) != 16
    assert not GradientCache(tmp_path, {}).gradients(estimated, "sign").cached


# --- python -m lorasb.cache ------------------------------------------------------------------


def write_entry(root, name, created, about):
    cache = GradientCache(root, {"name": name}, about=about)
    cache.gradients(estimated, "sign")
    meta = cache.dir / "sign" / "meta.json"
    record = json.loads(meta.read_text())
    meta.write_text(json.dumps({**record, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(created))}))
    return cache.dir


def test_list_shows_each_entry_and_the_total(tmp_path, capsys):
    write_entry(tmp_path, "new", time.time(), {"model": "minilm/model", "data": "sst2 from /data"})
    old = tmp_path / "0123456789abcdef" / "sum"
    old.mkdir(parents=True)
    (old / "meta.json").write_text("{}")
    assert cache_main(["--dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert f"gradient cache: {tmp_path} (2 entries" in out
    assert "minilm/model  |  sst2 from /data" in out and "0123456789abcdef: written by an older lorasb" in out


def test_clear_removes_entries_older_than_asked_and_dry_run_removes_none(tmp_path, capsys):
    old = write_entry(tmp_path, "old", time.time() - 40 * 86400, {"model": "old"})
    new = write_entry(tmp_path, "new", time.time() - 86400, {"model": "new"})
    assert cache_main(["clear", "--older-than", "30d", "--dry-run", "--dir", str(tmp_path)]) == 0
    assert "would remove" in capsys.readouterr().out and old.is_dir()
    assert cache_main(["clear", "--older-than", "30d", "--dir", str(tmp_path)]) == 0
    assert "in 1 entries" in capsys.readouterr().out and not old.exists() and new.is_dir()
    assert cache_main(["clear", "--dir", str(tmp_path)]) == 0
    assert list(tmp_path.iterdir()) == []
