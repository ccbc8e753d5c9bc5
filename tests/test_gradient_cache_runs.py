"""The gradient cache in real runs of all-MiniLM-L6-v2 on SST-2 rows the test writes: a sweep over
rank and lr reads the first run's ΣG; the same command after every label of train.tsv is flipped
in place (what a user reported to have been served the first run's sign(ΣG)) estimates anew.

The head's bias stays zero (``init.head_bias=zero``), so that the flipped labels change only the
batches, not the prior bias the head would otherwise start from."""

import gzip
import json
from pathlib import Path

import pytest

from lorasb.train import run

pytestmark = pytest.mark.slow

SAMPLE = Path(__file__).resolve().parents[1] / "lorasb" / "data" / "samples" / "glue" / "SST-2"
QUICK = [
    "model=minilm", "task=glue/sst2", "trainer=cpu", "logger=csv", "model.target_modules=[query]", "init.head_bias=zero",
    "data.max_length=32", "data.val_limit=8", "init.num_samples=8", "init.batch_size=4",
    "trainer.max_steps=1", "validate_before=false", "export_adapter=false",
    "++trainer.enable_progress_bar=false", "++trainer.enable_model_summary=false",
]  # fmt: skip


def write_sst2(root: Path, rows: int) -> Path:
    """The first ``rows`` training and validation rows of the packaged sample, as plain TSV files."""
    folder = root / "glue" / "SST-2"
    folder.mkdir(parents=True)
    for split in ("train", "dev"):
        lines = gzip.open(SAMPLE / f"{split}.tsv.gz", "rt").read().splitlines()[: rows + 1]
        (folder / f"{split}.tsv").write_text("\n".join(lines) + "\n")
    return folder / "train.tsv"


def flip_labels(train: Path) -> None:
    header, *rows = train.read_text().splitlines()
    flipped = [f"{text}\t{1 - int(label)}" for text, label in (row.rsplit("\t", 1) for row in rows)]
    train.write_text("\n".join([header, *flipped]) + "\n")


def gradients_of(composer, tmp_path, name, cache, *overrides) -> str:
    """``estimated`` or ``cached``: where the run's ΣG came from."""
    run_dir = tmp_path / name
    cfg = composer([*QUICK, *overrides], run_dir)
    cfg.gradient_cache.dir = str(cache)
    run(cfg)
    return json.loads((run_dir / "init_stats.json").read_text())["gradients"]


def test_a_sweep_hits_and_the_same_command_on_changed_files_misses(composer, tmp_path):
    train = write_sst2(tmp_path / "data", rows=32)
    data, cache = f"data.dir={tmp_path / 'data'}", tmp_path / "cache"
    assert gradients_of(composer, tmp_path, "first", cache, data, "rank=2", "optim.lr=1e-3") == "estimated"
    assert gradients_of(composer, tmp_path, "sweep", cache, data, "rank=4", "optim.lr=3e-3") == "cached"
    flip_labels(train)
    assert gradients_of(composer, tmp_path, "flipped", cache, data, "rank=2", "optim.lr=1e-3") == "estimated"
    assert len(list(cache.iterdir())) == 2
