"""A training loader that a run killed mid-epoch resumes exactly.

Each epoch's order of rows is a function of the seed and the epoch alone (a
``DistributedSampler``, which also splits the rows between processes), and the loader tells
Lightning how far into the epoch it is: Lightning keeps that in every checkpoint and hands it
back on resume, and the loader then serves the epoch's remaining batches, the ones an
uninterrupted run would have served next.
"""

from __future__ import annotations

from collections.abc import Iterator

from torch.utils.data import DataLoader, Dataset, DistributedSampler


class EpochShuffle(DistributedSampler):
    """This process's share of a seeded per-epoch permutation, from position ``start`` of it for
    one epoch (set by :meth:`ResumableLoader.load_state_dict`)."""

    def __init__(self, dataset: Dataset, seed: int, rank: int = 0, world_size: int = 1):
        super().__init__(dataset, num_replicas=world_size, rank=rank, shuffle=True, seed=seed)
        self.start = 0

    def __iter__(self) -> Iterator[int]:
        indices = list(super().__iter__())[self.start :]
        self.start = 0
        return iter(indices)


class ResumableLoader(DataLoader):
    """A ``DataLoader`` over an :class:`EpochShuffle` that resumes mid-epoch (module docstring)."""

    sampler: EpochShuffle

    def __init__(self, dataset: Dataset, batch_size: int, seed: int, rank: int = 0, world_size: int = 1, **options):
        super().__init__(dataset, batch_size=batch_size, sampler=EpochShuffle(dataset, seed, rank=rank, world_size=world_size), **options)
        self.served = 0

    def __iter__(self) -> Iterator:
        self.served = self.sampler.start // self.batch_size
        for batch in super().__iter__():
            self.served += 1
            yield batch

    def state_dict(self) -> dict[str, int]:
        """The epoch and how many of its batches were served (Lightning saves it in checkpoints)."""
        return {"epoch": self.sampler.epoch, "batches": self.served}

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Continue the saved epoch after the batches it had served."""
        self.sampler.set_epoch(state["epoch"])
        self.sampler.start = state["batches"] * self.batch_size
