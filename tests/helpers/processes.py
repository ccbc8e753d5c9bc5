"""lorasb's entry points run as a user runs them: a Python process from the repository root."""

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def python(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    """``python <args>`` with W&B offline and no ``LORASB_DATA_DIR`` of the caller's."""
    env = {k: v for k, v in os.environ.items() if k != "LORASB_DATA_DIR"} | {"HYDRA_FULL_ERROR": "1", "WANDB_MODE": "offline"}
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
