"""LoRA-SB's Trainer callback in two data-parallel processes (torch.distributed.run on the CPU, gloo)."""

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForSequenceClassification

import lorasb
from lorasb.integrations import attach_for_trainer

SCRIPT = Path(__file__).resolve().parent / "helpers" / "trainer_ddp.py"
REPO = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_processes_end_with_rank_0s_factors_from_the_summed_gradient(minilm_dir, shared_data, tmp_path):
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(_free_port()),
        str(SCRIPT), str(tmp_path), str(minilm_dir), str(shared_data / "glue" / "SST-2" / "train.tsv"),
    ]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(2)]

    assert [len(r["batches"]) for r in ranks] == [1, 1]
    assert not torch.equal(ranks[0]["batches"][0]["input_ids"], ranks[1]["batches"][0]["input_ids"])  # each its own share
    for name, tensor in ranks[0]["factors"].items():
        assert torch.equal(ranks[1]["factors"][name], tensor), name

    # one process summing the gradients of both shares (0 + g₀ + g₁, as the all-reduce adds g₀ + g₁) gets the same factors
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(minilm_dir, num_labels=2, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    attach_for_trainer(model, ["query", "value"], rank=4)
    both = [ranks[0]["batches"][0], ranks[1]["batches"][0]]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as torch.distributed.run gives each process (OMP_NUM_THREADS=1): the same sums, bit for bit
    try:
        lorasb.initialize(model, lorasb.estimate_update(model, both, lr=ranks[0]["first_lr"]))
    finally:
        torch.set_num_threads(threads)
    for name, layer in lorasb.adapters(model).items():
        for factor in ("lora_A", "lora_B", "lora_R"):
            assert torch.equal(getattr(layer, factor), ranks[0]["factors"][f"{name}.{factor}"]), (name, factor)
