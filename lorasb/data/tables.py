"""The rows of the user's own dataset, read through ``datasets``' loaders from wherever it is kept.

A source is a local file, read by the loader of its format (``.csv``, ``.tsv``, ``.json``,
``.jsonl``, ``.parquet``; the text formats also gzip-compressed as ``.gz``); a local dataset
folder, as a Hub dataset repository is laid out (files named by their split, e.g.
``train.csv`` and ``validation.csv``, or a loading script); or a Hugging Face Hub dataset id.
Folders and Hub ids are read at a named split. Anything that cannot be read raises
:class:`DataFileError` naming the source and the fix.
"""

from __future__ import annotations

from pathlib import Path

import datasets

from lorasb.data.files import DataFileError
from lorasb.models import cache_dir
from lorasb.settings.data import FILE_KINDS as KINDS

LOADERS = {  # file suffix → the datasets loader and its options
    ".csv": ("csv", {}),
    ".tsv": ("csv", {"delimiter": "\t"}),
    ".json": ("json", {}),
    ".jsonl": ("json", {}),
    ".parquet": ("parquet", {}),
}


def suffix(source: str) -> str:
    """The format suffix of a file name (``.csv`` of ``train.csv.gz``), or ``""``."""
    name = source.removesuffix(".gz")
    return next((ending for ending in LOADERS if name.endswith(ending)), "")


def load_table(source: str, split: str, root: Path | None = None) -> tuple[datasets.Dataset, str]:
    """Every row of ``source`` (its ``split``, for a folder or a Hub id) and what errors call it.

    Relative names start at ``root`` when it is given, else where the command runs.
    """
    path = Path(source)
    if root is not None and not path.is_absolute():
        path = root / path
    if path.is_dir():
        return _split_of(str(path), split, f"a dataset folder with a {split!r} split (e.g. {split}.csv), or a file of it")
    if suffix(source):
        return _file(path), str(path)
    if path.exists():
        raise DataFileError(path, "an unknown file type", f"a name ending in {', '.join(LOADERS)} (optionally .gz), as the format it holds")
    return _split_of(source, split, f"{KINDS}; without network, point at a local file or folder")


def _file(path: Path) -> datasets.Dataset:
    if not path.is_file():
        raise DataFileError(path, "no such file", f"{KINDS}; check the path (relative paths start where the command runs, or at data.dir when set)")
    builder, options = LOADERS[suffix(path.name)]
    try:
        return datasets.load_dataset(builder, data_files=str(path), split="train", cache_dir=str(cache_dir() / "datasets"), **options)
    except Exception as err:  # the loader's own error (a parser's, for a row it cannot split) is the cause
        kind = suffix(path.name)[1:].upper()
        raise DataFileError(path, f"cannot be read as {kind} ({str(err.__cause__ or err).strip()})", f"a well-formed {kind} file: nothing of it is used") from None


def _split_of(repository: str, split: str, expected: str) -> tuple[datasets.Dataset, str]:
    """A split of a dataset folder or Hub id, as ``datasets.load_dataset`` reads either."""
    try:
        return datasets.load_dataset(repository, split=split), f"{repository} (split {split})"
    except Exception as err:
        where = "a dataset folder" if Path(repository).is_dir() else "not a local file, and the Hugging Face Hub"
        raise DataFileError(repository, f"{where} did not provide its split {split!r} ({type(err).__name__}: {err})", expected) from None
