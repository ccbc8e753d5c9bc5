"""A checkpoint carrying a pickle payload is refused, by name, by every command that loads one."""

import subprocess
import sys

import pytest
import torch

from lorasb.lightning.checkpoints import UnsafeCheckpointError
from lorasb.train import run


class Payload:
    """Unpickling this creates a file: proof that code ran."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.fixture
def crafted(tmp_path):
    marker = tmp_path / "payload_ran"
    path = tmp_path / "crafted.ckpt"
    torch.save({"state_dict": {}, "pytorch-lightning_version": "2.6.0", "extra": Payload(marker)}, path)
    return path, marker


@pytest.mark.slow
def test_training_refuses_to_resume_from_it(crafted, composer, tmp_path, shared_data):
    path, marker = crafted
    overrides = ["model=minilm", "task=glue/mrpc", f"data.dir={shared_data}", "data.train_limit=16", "data.val_limit=8", "init.num_samples=4",
                 "optim.lr=1e-3", "validate_before=false", "logger=[]", f"ckpt_path={path}", "++trainer.enable_progress_bar=false"]  # fmt: skip
    with pytest.raises(UnsafeCheckpointError, match=rf"refused to load {path}: .*it names (io|builtins)\.open"):
        run(composer(overrides, tmp_path / "run"))
    assert not marker.exists()


@pytest.mark.slow
def test_evaluation_refuses_to_load_it(crafted, tmp_path):
    path, marker = crafted
    result = subprocess.run(
        [sys.executable, "-m", "lorasb.evaluate", f"checkpoint={path}", f"hydra.run.dir={tmp_path / 'eval'}"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith(f"error: refused to load {path}: it holds Python objects")
    assert not marker.exists()
