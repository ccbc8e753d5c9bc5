"""Bad config values are refused by key, all at once, before any data or model loads."""

import pytest

import lorasb.train
from lorasb.config import CONF_DIR, ConfigError, config_problems

# override: the line the error must show for it (a value of the wrong type for a typed setting,
# init.batch_size=x, is refused by Hydra as it composes: tests/test_settings.py)
BAD_VALUES = {
    "rank=0": "rank=0: expected an integer ≥ 1",
    "rank=2.5": "rank=2.5: expected an integer ≥ 1",
    "seed=-1": "seed=-1: expected an integer ≥ 0",
    "optim.lr=abc": "optim.lr=abc: expected a number > 0 or auto",
    "optim.lr=-1": "optim.lr=-1: expected a number > 0 or auto",
    "optim.lr=0": "optim.lr=0: expected a number > 0 or auto",
    "optim.lr=nan": "optim.lr=nan: expected a number > 0 or auto",
    "optim.lr=true": "optim.lr=True: expected a number > 0 or auto",
    "optim.weight_decay=-0.1": "optim.weight_decay=-0.1: expected a number ≥ 0",
    "optim.betas=[0.9]": "optim.betas=[0.9]: expected two numbers in [0, 1)",
    "optim.betas=[0.9,1.0]": "optim.betas=[0.9, 1.0]: expected two numbers in [0, 1)",
    "optim.scheduler=step": "optim.scheduler=step: expected one of linear, cosine, constant",
    "optim.warmup_ratio=1": "optim.warmup_ratio=1.0: expected a number in [0, 1)",  # a float setting holds 1.0
    "method.alpha=0": "method.alpha=0: expected a number > 0 or null",
    "method.dropout=1.0": "method.dropout=1.0: expected a number in [0, 1)",
    "method.dropout=-0.1": "method.dropout=-0.1: expected a number in [0, 1)",
    "init.num_samples=0": "init.num_samples=0: expected an integer ≥ 1",
    "init.svd.niter=-1": "init.svd.niter=-1: expected an integer ≥ 0",
    "init.accumulator_dtype=float16": "init.accumulator_dtype=float16: expected one of float32, bfloat16",
    "init.layer_groups=0": "init.layer_groups=0: expected an integer ≥ 1",
    "init.memory_budget=lots": "init.memory_budget=lots: expected a number of bytes > 0 or auto or null",
    "init.head_bias=mean": "init.head_bias=mean: expected one of prior, zero",
    "data.train_limit=0": "data.train_limit=0: expected an integer ≥ 1 or null",
    "data.val_limit=-5": "data.val_limit=-5: expected an integer ≥ 1 or null",
    "data.max_length=0": "data.max_length=0: expected an integer ≥ 1",
    "data.batch_size=0": "data.batch_size=0: expected an integer ≥ 1",
    "data.dir=/no/such/folder": "data.dir=/no/such/folder: expected an existing folder or null",
    "ckpt_path=/no/such.ckpt": "ckpt_path=/no/such.ckpt: expected an existing file or null",
    "validate_before=maybe": "validate_before=maybe: expected true or false",
    "trainer.max_epochs=-2": "trainer.max_epochs=-2: expected an integer ≥ -1 or null",
    "trainer.accumulate_grad_batches=0": "trainer.accumulate_grad_batches=0: expected an integer ≥ 1",
    "data.train_limit=16": "init.num_samples=32: expected at most the 16 training rows kept (data.train_limit=16)",
}


@pytest.fixture
def no_build(monkeypatch):
    """Replaces the step that loads the data and the model; records whether it was reached."""
    calls = []
    monkeypatch.setattr(lorasb.train, "build", lambda cfg: calls.append(cfg) or pytest.fail("the run was built"))
    return calls


@pytest.mark.parametrize("override", BAD_VALUES)
def test_a_bad_value_is_named_before_anything_loads(compose, no_build, override):
    cfg = compose("task=glue/mrpc", override)
    with pytest.raises(ConfigError) as caught:
        lorasb.train.run(cfg)
    assert str(caught.value) == f"the config has 1 invalid value:\n  {BAD_VALUES[override]}"
    assert no_build == []


def test_every_bad_value_is_reported_at_once(compose, no_build):
    cfg = compose("task=glue/mrpc", "optim.lr=-1", "init.num_samples=0", "data.train_limit=0")
    with pytest.raises(ConfigError) as caught:
        lorasb.train.run(cfg)
    assert str(caught.value) == (
        "the config has 3 invalid values:\n"
        "  optim.lr=-1: expected a number > 0 or auto\n"
        "  init.num_samples=0: expected an integer ≥ 1\n"
        "  data.train_limit=0: expected an integer ≥ 1 or null"
    )
    assert no_build == []


def test_rows_held_out_count_against_the_estimate(compose):
    cfg = compose("task=metamath", "model=smollm2_135m", "data.train_limit=100", "data.val_size=90", "init.num_samples=20")
    assert config_problems(cfg) == [
        "init.num_samples=20: expected at most the 10 training rows kept (data.train_limit=100 less data.val_size=90)"
    ]


@pytest.mark.parametrize(
    "overrides",
    [
        (),
        ("task=metamath", "model=smollm2_135m"),
        ("experiment=paper/commonsense",),
        ("method.alpha=16", "+method.new_option=1", "ckpt_path=null", "trainer.max_epochs=-1"),  # optim, init: tests/test_settings.py
    ],
)
def test_shipped_and_unknown_keys_pass(compose, overrides, tmp_path):
    assert config_problems(compose(*overrides, f"data.dir={tmp_path}")) == []


def test_the_evaluation_config_is_checked_too(tmp_path):
    import hydra

    from lorasb.config import register_resolvers, register_settings

    register_resolvers()
    register_settings()
    overrides = [f"run_dir={tmp_path}", "checkpoint=/no/such.ckpt", "adapter=/no/such/adapter", "eval.limit=0", "eval.max_new_tokens=0"]
    with hydra.initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        assert config_problems(hydra.compose("evaluate")) == []
        assert config_problems(hydra.compose("evaluate", overrides=overrides)) == [
            "checkpoint=/no/such.ckpt: expected an existing file or null",
            "adapter=/no/such/adapter: expected an existing folder or null",
            "eval.limit=0: expected an integer ≥ 1 or null",
            "eval.max_new_tokens=0: expected an integer ≥ 1 or null",
        ]
