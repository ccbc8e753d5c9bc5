"""A Hydra callback that writes what the task function returned (what a sweeper reads) to a JSON file."""

import json
from pathlib import Path

from hydra.experimental.callback import Callback


class RecordReturn(Callback):
    def __init__(self, path: str):
        self.path = Path(path)

    def on_job_end(self, config, job_return, **kwargs) -> None:
        self.path.write_text(json.dumps({"status": job_return.status.name, "value": job_return._return_value}))
