"""One CSV log per run, however often the run is resumed."""

from __future__ import annotations

import csv
from pathlib import Path

from lightning.fabric.loggers.logger import rank_zero_experiment
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter


def _header(path: Path) -> list[str]:
    if not path.is_file():
        return []
    with open(path, newline="") as file:
        return next(csv.reader(file), [])


class _AppendingWriter(ExperimentWriter):
    """Lightning's CSV writer, going on with the columns of an existing metrics.csv (Lightning's
    own deletes the file)."""

    def _check_log_dir_exists(self) -> None:
        self.metrics_keys = _header(Path(self.metrics_file_path))


class RunCSVLogger(CSVLogger):
    """Lightning's CSV logger writing ``<save_dir>/<name>/metrics.csv`` for the whole run.

    Lightning's own starts a new ``version_N`` folder (or empties the old one) each time a run
    resumes; this one appends to the run's file. A resumed run first drops the rows logged
    after the checkpoint it resumes from (:meth:`rewind`, see
    :class:`lorasb.lightning.resume.ExactResume`), so every step has its rows once.
    """

    def __init__(self, save_dir: str | Path, name: str = "logs", **options):
        super().__init__(save_dir, name=name, version="", **options)

    @property
    @rank_zero_experiment
    def experiment(self) -> ExperimentWriter:
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = _AppendingWriter(log_dir=self.log_dir)
        return self._experiment

    @property
    def metrics_file(self) -> Path:
        return Path(self.log_dir) / ExperimentWriter.NAME_METRICS_FILE

    def rows(self) -> int:
        """Rows logged so far (written out first)."""
        self.save()
        if not self.metrics_file.is_file():
            return 0
        with open(self.metrics_file, newline="") as file:
            return sum(1 for _ in csv.DictReader(file))

    def rewind(self, rows: int, step: int) -> None:
        """Drop what was logged after a checkpoint taken at optimizer step ``step``, when the file
        had ``rows`` rows: later rows stay only where they are of an earlier step (Lightning logs
        a step's training row just after the checkpoint of that step is written)."""
        self.save()
        if not self.metrics_file.is_file():
            return
        with open(self.metrics_file, newline="") as file:
            reader = csv.DictReader(file)
            header = reader.fieldnames
            kept = [row for index, row in enumerate(reader) if index < rows or int(row["step"]) < step]
        with open(self.metrics_file, "w", newline="") as file:
            writer = csv.DictWriter(file, fieldnames=header)
            writer.writeheader()
            writer.writerows(kept)
