"""optim.lr=auto: the range test, the rows it steps on and scores, and a run that trains at the lr it chose."""

import csv
import json
import math

import pytest
import torch

from lorasb.data import GlueDataModule
from lorasb.lightning.lr_search import clearly_worse, held_out_losses, search_lr, take_steps
from lorasb.method.cache import Gradients
from lorasb.method.registry import build_method
from lorasb.train import run
from helpers.tiny_models import BERT_TARGETS, bert_batches, tiny_bert

OPTIMIZER = {"weight_decay": 0.0, "betas": (0.9, 0.999)}


def sb_model(rank=4):
    """A tiny BERT with LoRA-SB adapters initialised (for peak lr ``lr``) by the returned function."""
    model = tiny_bert()
    method = build_method("lora_sb", rank)
    model = method.attach(model, BERT_TARGETS, ["classifier"])
    sums = {name: torch.randn(w.shape, dtype=w.dtype, generator=torch.Generator().manual_seed(7)) for name, w in method.target_weights(model).items()}
    gradients = Gradients(sums, batches=1, samples=4)

    def initialize(lr):
        return method.initialize(model, gradients, lr / 10)  # lr₁: a tenth of the peak, as under warm-up

    names = {n for n, p in model.named_parameters() if p.requires_grad} | method.written_frozen(model)
    return model, initialize, names


def search(model, initialize, names, candidates, seed=0, scored=None):
    """Steps on 4 random batches, scored on ``scored`` (default: 2 others)."""
    train, scored = bert_batches(count=4, seed=1), scored or bert_batches(count=2, seed=2)
    return search_lr(model, candidates, initialize, names, train, scored, OPTIMIZER, seed=seed)


def test_the_lowest_held_out_loss_wins_and_every_tensor_is_put_back():
    model, initialize, names = sb_model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    # random labels: only the rows the steps saw can show progress, so those are scored here
    result = search(model, initialize, names, [1e-4, 1e-2, 1.0], scored=bert_batches(count=4, seed=1))
    assert result.conclusive and result.lr == min(result.scores, key=result.scores.get)
    assert list(result.scores)[:2] == [1.0, 1e-2] and all(math.isfinite(s) for s in result.scores.values())
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert all(p.grad is None for p in model.parameters())


def test_each_score_is_that_lr_s_steps_from_its_own_initialisation():
    """A candidate's score is exactly: initialise for it, take the steps, measure the held-aside loss."""
    model, initialize, names = sb_model()
    result = search(model, initialize, names, [3e-3, 3e-2])
    for lr in (3e-3, 3e-2):
        fresh, fresh_init, _ = sb_model()
        fresh_init(lr)
        take_steps(fresh, lr, bert_batches(count=4, seed=1), OPTIMIZER)
        assert result.scores[lr] == pytest.approx(sum(held_out_losses(fresh, bert_batches(count=2, seed=2))) / 2, rel=1e-12)
    # the same search again scores the same (same batches, same draws)
    assert search(model, initialize, names, [3e-3, 3e-2]).scores == result.scores


UNTRAINED = [0.80, 0.80]  # the held-out loss of each scored batch before any step


@pytest.mark.parametrize(
    "losses, tried, chosen, conclusive",
    [
        # a smaller lr clearly worse than the best (scores as per-batch losses) ends the walk
        ({3e-2: [0.70, 0.70], 1e-2: [0.60, 0.60], 3e-3: [0.65, 0.66], 1e-3: [0.50, 0.50]}, [3e-2, 1e-2, 3e-3], 1e-2, True),
        # worse on average but within the noise of the two batches: the walk goes on
        ({3e-2: [0.60, 0.60], 1e-2: [0.50, 0.72], 3e-3: [0.55, 0.55], 1e-3: [0.70, 0.71]}, [3e-2, 1e-2, 3e-3, 1e-3], 3e-3, True),
        ({3e-2: [math.nan, 1.0], 1e-2: [0.60, 0.60], 3e-3: [0.55, 0.56], 1e-3: [0.56, 0.56]}, [3e-2, 1e-2, 3e-3, 1e-3], 3e-3, True),  # a diverged lr never stops it
        ({3e-2: [0.70, 0.70], 1e-2: [0.60, 0.60], 3e-3: [0.55, 0.55], 1e-3: [0.50, 0.50]}, [3e-2, 1e-2, 3e-3, 1e-3], 1e-3, True),  # better all the way down
        # the two largest overshoot (both worse than before any step, the smaller one worse still):
        # no candidate has made progress yet, so the walk goes on until one has and a smaller is clearly worse
        ({3e-2: [0.84, 0.85], 1e-2: [0.90, 0.91], 3e-3: [0.70, 0.71], 1e-3: [0.75, 0.75], 3e-4: [0.5, 0.5]}, [3e-2, 1e-2, 3e-3, 1e-3], 3e-3, True),
        # none beats the untrained model beyond the noise (3e-2 by 0.005 with a standard error of
        # 0.005): every candidate is tried and, the test having told nothing, the middle one is taken
        ({3e-2: [0.79, 0.80], 1e-2: [0.85, 0.85], 3e-3: [0.82, 0.82], 1e-3: [0.84, 0.84], 3e-4: [0.83, 0.83]}, [3e-2, 1e-2, 3e-3, 1e-3, 3e-4], 3e-3, False),
        ({3e-2: [0.95, 0.95], 1e-2: [0.79, 0.80], 3e-3: [0.81, 0.82], 1e-3: [0.85, 0.85]}, [3e-2, 1e-2, 3e-3, 1e-3], 3e-3, False),  # of two, the lower
    ],
)
def test_the_walk_goes_down_from_the_largest_lr_until_a_candidate_is_clearly_worse_than_one_that_made_progress(
    monkeypatch, losses, tried, chosen, conclusive
):
    model, initialize, names = sb_model()
    current = []

    def initialize_and_note(lr):
        current.append(lr)
        return initialize(lr)

    monkeypatch.setattr("lorasb.lightning.lr_search.held_out_losses", lambda model, batches: losses[current[-1]] if current else UNTRAINED)
    result = search(model, initialize_and_note, names, sorted(losses))
    assert current == tried and list(result.scores) == tried and result.lr == chosen
    assert result.untrained == pytest.approx(0.80)
    assert result.conclusive == conclusive
    mean = {lr: sum(values) / 2 for lr, values in losses.items()}  # two scored batches of 4 rows
    assert all(result.scores[lr] == pytest.approx(mean[lr]) or math.isnan(mean[lr]) and math.isinf(result.scores[lr]) for lr in tried)


def test_clearly_worse_means_more_than_z_standard_errors_of_the_paired_difference():
    # differences 0.1 and 0.3 over two equal batches: mean 0.2, standard error 0.1
    assert clearly_worse([0.6, 0.8], [0.5, 0.5], [4, 4], z=1.9)
    assert not clearly_worse([0.6, 0.8], [0.5, 0.5], [4, 4], z=2.1)
    assert not clearly_worse([0.5, 0.5], [0.5, 0.5], [4, 4], z=0.0)  # equal is not worse
    # rows weight the batches: a batch of 1 row barely moves the mean
    assert clearly_worse([0.51, 5.0], [0.5, 0.5], [1000, 1], z=0.0) and not clearly_worse([0.49, 5.0], [0.5, 0.5], [1000, 1], z=0.0)
    # one batch gives no standard error: any excess counts
    assert clearly_worse([0.51], [0.5], [8], z=2.0) and not clearly_worse([0.5], [0.5], [8], z=2.0)


def test_the_walk_shows_its_progress_with_each_score(capsys):
    model, initialize, names = sb_model()
    train, scored = bert_batches(count=1, seed=1), bert_batches(count=1, seed=2)
    result = search_lr(model, [1e-3, 1e-2], initialize, names, train, scored, OPTIMIZER, progress=True)
    shown = capsys.readouterr().err
    assert "optim.lr=auto: trying learning rates" in shown
    last = list(result.scores)[-1]  # the bar ends on the last candidate tried, with its score
    assert f"{len(result.scores)}/2" in shown and f"held-out loss at {last:g}: {result.scores[last]:.4f}" in shown


def test_a_search_where_every_candidate_diverges_names_the_fix():
    model, initialize, names = sb_model()
    with pytest.raises(FloatingPointError, match=r"every candidate lr \(inf\) gave a non-finite loss.*optim.auto_lr.candidates"):
        search(model, initialize, names, [math.inf])


def test_the_scored_rows_are_other_training_rows_than_the_stepped_ones(shared_data, minilm_dir):
    data = GlueDataModule("mrpc", tokenizer=str(minilm_dir), dir=shared_data, train_limit=200)
    rows = lambda loader: [tuple(ids) for ids in loader.dataset.dataset.select(loader.dataset.indices)["input_ids"]]  # noqa: E731
    stepped, scored = rows(data.init_dataloader(48, 16)), rows(data.init_dataloader(30, 8, skip=48))
    assert len(stepped) == 48 and len(scored) == 30 and not set(stepped) & set(scored)
    assert stepped + scored == rows(data.init_dataloader(78, 16))  # one seeded order, cut in two
    assert len(data.train_dataset) == 200  # nothing leaves the training set
    with pytest.raises(ValueError, match=r"between 1 and the training set size \(200 less the 190 rows skipped\), got 30"):
        data.init_dataloader(30, 8, skip=190)


@pytest.mark.slow
def test_a_run_that_chose_an_lr_trains_exactly_as_a_run_given_it(composer, tmp_path, shared_data):
    overrides = [
        "model=minilm", "task=glue/mrpc", "logger=csv", f"data.dir={shared_data}", "data.train_limit=80",
        "data.val_limit=16", "data.max_length=32", "data.batch_size=16", "init.num_samples=8", "init.batch_size=8",
        "optim.auto_lr.steps=2", "optim.auto_lr.score_rows=16", "optim.warmup_ratio=0.5", "trainer.max_epochs=1",
        "method.dropout=0.1", "++trainer.enable_progress_bar=false",
    ]  # fmt: skip
    cfg = composer(overrides, tmp_path / "auto")
    assert cfg.optim.lr == "auto"  # LoRA-SB's default on encoders
    run(cfg)
    stats = json.loads((tmp_path / "auto" / "init_stats.json").read_text())
    chosen, scores = stats["auto_lr"]["lr"], stats["auto_lr"]["held_out_loss"]
    largest_first = sorted(cfg.method.lr.search.encoder, reverse=True)
    assert list(scores) == [f"{lr:g}" for lr in largest_first[: len(scores)]]
    if stats["auto_lr"]["conclusive"]:  # a candidate beat the untrained model: the lowest score wins
        assert f"{chosen:g}" == min(scores, key=scores.get)
        assert len(scores) == len(largest_first) or list(scores.values())[-1] > scores[f"{chosen:g}"]  # the walk's stop
    else:  # none did: every candidate was tried and the middle one taken
        assert len(scores) == len(largest_first) and chosen == sorted(largest_first)[(len(largest_first) - 1) // 2]
    run(composer([*overrides, f"optim.lr={chosen!r}"], tmp_path / "fixed"))

    def trained(name):
        checkpoint = torch.load(tmp_path / name / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
        return checkpoint["state_dict"], checkpoint["lr_schedulers"][0]["base_lrs"]

    def logged(name, key):
        with open(tmp_path / name / "logs" / "metrics.csv") as file:
            return [float(row[key]) for row in csv.DictReader(file) if row.get(key)]

    (auto, auto_lrs), (fixed, fixed_lrs) = trained("auto"), trained("fixed")
    assert auto_lrs == fixed_lrs == [chosen]  # a resumed run keeps it
    assert auto.keys() == fixed.keys() and all(torch.equal(auto[k], fixed[k]) for k in auto)
    # 80 rows, 5 steps, every row trained on: the same lrs and losses step by step
    assert logged("auto", "train/lr") == logged("fixed", "train/lr") and max(logged("auto", "train/lr")) == pytest.approx(chosen)
    assert len(logged("auto", "train/loss")) == 5 and logged("auto", "train/loss") == logged("fixed", "train/loss")
    assert logged("auto", "init/auto_lr") == [pytest.approx(chosen)]
    assert json.loads((tmp_path / "auto" / "metrics.json").read_text())["peak_lr"] == chosen
