"""Learning-rate schedules (lorasb.lightning.schedule) exactly, and the lr that LoRA-SB initialises with."""

import csv
import json
import math

import pytest
import torch

from lorasb.lightning.schedule import SCHEDULES, lr_factor, warmup_steps
from lorasb.train import run

KINDS = ("linear", "cosine", "constant")


def test_schedules_offered():
    assert SCHEDULES == KINDS


@pytest.mark.parametrize("kind", KINDS)
def test_warmup_starts_at_lr_over_warmup_and_reaches_peak(kind):
    factor = lr_factor(kind, total_steps=100, warmup_ratio=0.1)  # 10 warm-up steps
    assert factor(0) == pytest.approx(1 / 10)  # the first step already moves, at lr / warmup
    assert [factor(k) for k in range(10)] == pytest.approx([(k + 1) / 10 for k in range(10)])
    assert factor(9) == 1.0  # peak at the last warm-up step ...
    assert factor(10) == 1.0  # ... and at the first step after it


def test_warmup_steps_round_up():
    assert warmup_steps(100, 0.06) == 6
    assert warmup_steps(10, 0.06) == 1  # ceil(0.6)
    assert warmup_steps(33, 0.1) == 4  # ceil(3.3)
    assert warmup_steps(100, 0.0) == 0


def test_linear_decays_to_zero_at_total_steps():
    factor = lr_factor("linear", total_steps=100, warmup_ratio=0.1)
    assert factor(55) == pytest.approx(0.5)  # halfway through the 90 decay steps
    assert factor(99) == pytest.approx(1 / 90)
    assert factor(100) == pytest.approx(0.0, abs=1e-12)
    assert factor(150) == pytest.approx(0.0, abs=1e-12)  # never negative past the end
    values = [factor(k) for k in range(10, 101)]
    assert all(a > b for a, b in zip(values, values[1:]))  # strictly decreasing


def test_cosine_is_half_at_the_midpoint_of_decay():
    factor = lr_factor("cosine", total_steps=100, warmup_ratio=0.1)
    assert factor(10) == pytest.approx(1.0)
    assert factor(55) == pytest.approx(0.5)
    assert factor(10 + 90 // 4) == pytest.approx(0.5 * (1 + math.cos(math.pi * 22 / 90)))
    assert factor(100) == pytest.approx(0.0, abs=1e-12)


def test_constant_stays_at_peak():
    factor = lr_factor("constant", total_steps=50, warmup_ratio=0.1)  # 5 warm-up steps
    assert [factor(k) for k in range(5)] == pytest.approx([0.2, 0.4, 0.6, 0.8, 1.0])
    assert all(factor(k) == 1.0 for k in range(5, 80))


@pytest.mark.parametrize("kind", KINDS)
def test_no_warmup_starts_at_peak(kind):
    factor = lr_factor(kind, total_steps=20, warmup_ratio=0.0)
    assert factor(0) == 1.0
    assert factor(10) == {"linear": 0.5, "cosine": pytest.approx(0.5), "constant": 1.0}[kind]


def test_unknown_schedule_lists_the_choices():
    with pytest.raises(ValueError, match="unknown schedule 'step'") as error:
        lr_factor("step", 100, 0.1)
    assert all(kind in str(error.value) for kind in KINDS)


@pytest.mark.parametrize("ratio", [-0.1, 1.0, 1.5])
def test_bad_warmup_ratio(ratio):
    with pytest.raises(ValueError, match=r"warmup_ratio must be in \[0, 1\)"):
        lr_factor("linear", 100, ratio)


def test_no_steps_is_refused():
    with pytest.raises(ValueError, match="total_steps must be at least 1"):
        lr_factor("linear", 0, 0.1)


@pytest.mark.parametrize("kind", KINDS)
def test_lambda_lr_applies_the_factor_per_optimizer_step(kind):
    """What a torch LambdaLR built on the factor does: step k runs at lr·factor(k)."""
    lr, total = 0.5, 12
    factor = lr_factor(kind, total, warmup_ratio=0.25)  # 3 warm-up steps
    optimizer = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(2))], lr=lr)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    seen = []
    for _ in range(total):
        seen.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert seen[0] == pytest.approx(lr / 3)
    assert seen == pytest.approx([lr * factor(k) for k in range(total)])


@pytest.mark.slow
def test_module_initialises_with_the_first_step_lr(composer, tmp_path, glue_fixtures):
    """A real run: FineTuningModule's optimizer and schedule give on_fit_start lr·factor(0) = lr / warm-up.

    RTE fixture (4 rows), batch 1, 2 epochs: 8 optimizer steps, warm-up ceil(8·0.3) = 3, so
    the LoRA-SB estimate must use lr/3, and the logged lr of step k must be lr·factor(k).
    """
    lr, epochs, ratio = 4e-3, 2, 0.3
    cfg = composer(
        [
            "model=minilm",
            "task=glue/rte",
            f"data.dir={glue_fixtures}",
            "data.batch_size=1",
            "data.max_length=32",
            "init.num_samples=2",
            "init.batch_size=2",
            f"optim.lr={lr}",
            f"optim.warmup_ratio={ratio}",
            "optim.scheduler=linear",
            f"trainer.max_epochs={epochs}",
            "++trainer.log_every_n_steps=1",
            "++trainer.enable_progress_bar=false",
            "++trainer.enable_model_summary=false",
            "validate_before=false",
            "export_adapter=false",
            "logger=csv",
        ],
        tmp_path,
    )
    run(cfg)
    total = 4 * epochs
    warmup = math.ceil(total * ratio)
    assert warmup == 3
    init = json.loads((tmp_path / "init_stats.json").read_text())
    assert init["first_step_lr"] == pytest.approx(lr / warmup, rel=1e-12)
    assert init["first_step_lr"] == pytest.approx(lr * lr_factor("linear", total, ratio)(0), rel=1e-12)

    (log,) = (tmp_path / "logs").rglob("metrics.csv")
    with open(log) as file:
        rows = [row for row in csv.DictReader(file) if row.get("train/lr")]
    logged = {int(row["step"]): float(row["train/lr"]) for row in rows}
    factor = lr_factor("linear", total, ratio)
    assert sorted(logged) == list(range(total))
    assert [logged[k] for k in range(total)] == pytest.approx([lr * factor(k) for k in range(total)])
