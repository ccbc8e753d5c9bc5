"""Opening local data files, and the error that names a file, a line and what was expected."""

from __future__ import annotations

import codecs
import gzip
from pathlib import Path


class DataFileError(ValueError):
    """A data file that does not hold what its reader expects.

    The message reads ``<path>, line <n>: <problem>; expected <what>`` (``row <n>`` for the
    objects of a JSON list, no position for problems of the whole file).
    """

    def __init__(self, path: Path | str, problem: str, expected: str, line: int | None = None, unit: str = "line"):
        self.path, self.line = Path(path), line
        where = f"{path}, {unit} {line}" if line is not None else f"{path}"
        super().__init__(f"{where}: {problem}; expected {expected}")


def read_bytes(path: Path) -> bytes:
    """The raw content of a data file (the one place a reader opens one), gzip-decompressed for ``.gz``."""
    path = Path(path)
    if path.suffix != ".gz":
        return path.read_bytes()
    try:
        return gzip.decompress(path.read_bytes())
    except (OSError, EOFError) as err:
        raise DataFileError(path, f"the file is not valid gzip ({err})", "a gzip-compressed text file") from None


def read_text(path: Path, expected: str) -> str:
    """A data file decoded as UTF-8 (a leading BOM dropped); undecodable bytes are reported by line.

    ``expected`` describes the file's layout for the error messages.
    """
    data = read_bytes(path).removeprefix(codecs.BOM_UTF8)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        raise DataFileError(
            path, f"byte 0x{data[err.start]:02x} is not UTF-8 text", f"UTF-8 text: {expected}", line
        ) from None
