"""Shared base for the project's data modules: tokenizer, cached tokenisation, collator and loaders."""

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import datasets
import lightning as L
import torch
from datasets.fingerprint import Hasher
from torch.utils.data import DataLoader, Dataset, Subset
from transformers import DataCollatorWithPadding, PreTrainedTokenizerBase

from lorasb.data.resumable import ResumableLoader
from lorasb.models import cache_dir, load_tokenizer
from lorasb.settings.data import DataSettings
from lorasb.settings.fields import default

Encode = Callable[[dict[str, list[Any]]], dict[str, list[Any]]]


class TextDataModule(L.LightningDataModule):
    """Base data module holding a tokenizer and a tokenized ``train_dataset``.

    Args:
        tokenizer: a Hugging Face name or local path (loaded with ``AutoTokenizer``; the EOS
            token pads where the tokenizer has no padding token), or a tokenizer object.
        dir: local data root; ``None`` means download from the Hub.
        max_length: truncation length in tokens.
        batch_size: training batch size.
        eval_batch_size: evaluation batch size (``None``: ``batch_size``).
        num_workers: DataLoader worker processes.
        train_limit, val_limit: keep only the first N rows of each split (quick runs).
        seed: seed of the ``init_dataloader`` subsets.

    The defaults are the ``data`` settings' (:class:`lorasb.settings.data.DataSettings`).
    Subclasses implement ``setup`` so that ``setup("fit")`` sets ``train_dataset``.
    """

    def __init__(
        self,
        tokenizer: str | os.PathLike | PreTrainedTokenizerBase,
        dir: str | os.PathLike | None = default(DataSettings, "dir"),
        max_length: int = default(DataSettings, "max_length"),
        batch_size: int = default(DataSettings, "batch_size"),
        eval_batch_size: int | None = default(DataSettings, "eval_batch_size"),
        num_workers: int = default(DataSettings, "num_workers"),
        train_limit: int | None = default(DataSettings, "train_limit"),
        val_limit: int | None = default(DataSettings, "val_limit"),
        seed: int = default(DataSettings, "seed"),
    ):
        super().__init__()
        if isinstance(tokenizer, (str, os.PathLike)):
            tokenizer = load_tokenizer(str(tokenizer))
        self.tokenizer = tokenizer
        self.dir = Path(dir) if dir is not None else None
        self.max_length = max_length
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.num_workers = num_workers
        self.train_limit = train_limit
        self.val_limit = val_limit
        self.seed = seed
        self.train_dataset: Dataset | None = None
        self.collate = self.build_collator()

    def module_arguments(self) -> dict[str, Any]:
        """Arguments the Lightning module takes from the data once they are read (none by default)."""
        return {}

    def build_collator(self) -> Callable[[list[dict[str, Any]]], dict[str, torch.Tensor]]:
        """Pads a list of examples to the longest one; other keys (``labels``) become tensors."""
        return DataCollatorWithPadding(self.tokenizer, return_tensors="pt")

    def tokenized(self, columns: dict[str, Sequence[Any]], encode: Encode, encoding: str) -> datasets.Dataset:
        """``encode`` mapped over the rows in batches by ``datasets``, cached on disk.

        The cache file (under ``<cache_dir>/datasets``) is keyed by the rows' content, the
        tokenizer, ``max_length`` and ``encoding`` (a name for what ``encode`` does, changed
        whenever that changes), so an unchanged split
        is tokenised once across runs and a changed one never reuses a stale file. The columns
        ``encode`` does not return are dropped, except ``labels``.
        """
        rows = datasets.Dataset.from_dict({name: list(values) for name, values in columns.items()})
        tokenizer = self.tokenizer
        key = Hasher.hash(
            [rows._fingerprint, type(tokenizer).__name__, tokenizer.name_or_path, len(tokenizer),
             tokenizer.special_tokens_map, tokenizer.padding_side, self.max_length, encoding]
        )
        folder = cache_dir() / "datasets"
        folder.mkdir(parents=True, exist_ok=True)
        return rows.map(
            encode,
            batched=True,
            remove_columns=[name for name in rows.column_names if name != "labels"],
            cache_file_name=str(folder / f"{key}.arrow"),
            new_fingerprint=key,
            desc="tokenizing",
        )

    def _loader(self, dataset: Dataset, batch_size: int) -> DataLoader:
        return DataLoader(
            dataset,
            batch_size=batch_size,
            num_workers=self.num_workers,
            collate_fn=self.collate,
        )

    def _train_set(self) -> Dataset:
        """The training set, running ``setup("fit")`` first if it is not loaded yet."""
        if self.train_dataset is None:
            self.setup("fit")
        return self.train_dataset

    def train_dataloader(self) -> DataLoader:
        """Shuffled anew each epoch by ``seed`` and the epoch; resumable mid-epoch (:mod:`lorasb.data.resumable`)."""
        trainer = self.trainer
        rank, world_size = (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)
        return ResumableLoader(
            self._train_set(), self.batch_size, self.seed, rank=rank, world_size=world_size,
            num_workers=self.num_workers, collate_fn=self.collate,
        )

    def init_dataloader(
        self, num_samples: int, batch_size: int, rank: int = 0, world_size: int = 1, skip: int = 0
    ) -> DataLoader:
        """Loader over a seeded random subset of ``num_samples`` training examples.

        Used to estimate the first full fine-tuning gradient (and by ``optim.lr=auto``). The
        subset is positions ``skip`` to ``skip + num_samples`` of a permutation that depends only
        on ``seed``, so subsets with disjoint positions share no row; rank ``k`` of
        ``world_size`` gets subset positions ``k::world_size``, in order. Runs ``setup("fit")``
        first if the training set is not loaded yet.
        """
        dataset = self._train_set()
        if not 1 <= num_samples <= len(dataset) - skip:
            raise ValueError(
                f"num_samples must be between 1 and the training set size ({len(dataset)}"
                f"{f' less the {skip} rows skipped' if skip else ''}), got {num_samples}"
            )
        if not 0 <= rank < world_size:
            raise ValueError(f"rank must be in [0, {world_size}), got {rank}")
        generator = torch.Generator().manual_seed(self.seed)
        indices = torch.randperm(len(dataset), generator=generator)[skip : skip + num_samples].tolist()
        return self._loader(Subset(dataset, indices[rank::world_size]), batch_size)
