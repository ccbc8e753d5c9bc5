"""A checkpoint carrying a pickled Python object whose unpickling would create a file (proof that code ran)."""

from pathlib import Path

import torch


class Payload:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def crafted_checkpoint(folder: Path) -> tuple[Path, Path]:
    """``(checkpoint, marker)``: a Lightning-looking checkpoint in ``folder`` with a payload that,
    if unpickled, creates ``marker``."""
    marker, path = folder / "payload_ran", folder / "crafted.ckpt"
    torch.save({"state_dict": {}, "pytorch-lightning_version": "2.6.0", "extra": Payload(marker)}, path)
    return path, marker
