"""Data-parallel update estimate: each process sums its share, the sum is all-reduced before sign."""

import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from helpers.tiny_models import BERT_TARGETS, bert_batches, tiny_bert

import lorasb

LR = 1e-3
WORLD = 2


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def _worker(rank: int, port: int, out: dict) -> None:
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD)
    try:
        model = tiny_bert()
        lorasb.attach(model, BERT_TARGETS, rank=4)
        share = bert_batches(count=4)[rank::WORLD]
        out[rank] = lorasb.estimate_update(model, share, lr=LR, reduce=_all_reduce_sum)
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_two_processes_estimate_the_single_process_update():
    model = tiny_bert()
    lorasb.attach(model, BERT_TARGETS, rank=4)
    single = lorasb.estimate_update(model, bert_batches(count=4), lr=LR)

    with mp.Manager() as manager:
        out = manager.dict()
        mp.spawn(_worker, args=(_free_port(), out), nprocs=WORLD, join=True)
        results = dict(out)

    for rank in range(WORLD):
        assert results[rank].keys() == single.keys()
        for name, update in single.items():
            assert torch.equal(results[rank][name], update), (rank, name)
