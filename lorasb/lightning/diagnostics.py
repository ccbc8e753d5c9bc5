"""Why an initialisation is good or bad, to every logger: per-layer approximation error and spectrum.

For each adapted layer the method approximates a matrix M at rank r (LoRA-SB: the estimated
first update ΔW; LoRA-XS: W0). Logged: the relative error ‖M − M_r‖/‖M‖, the energy
‖M_r‖²/‖M‖² captured at rank r, and the r kept singular values. W&B gets a table of every layer
and a spectrum plot per layer type (``attention.self.query`` of every block in one plot); a CSV
logger gets the same rows as ``init_layers.csv`` in its log folder.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

from lightning.pytorch.loggers import CSVLogger, Logger, WandbLogger

from lorasb.method.initialize import LayerInit

COLUMNS = ["layer", "layer_type", "relative_error", "energy", "singular_values"]


def layer_type(name: str) -> str:
    """The name with its block numbers replaced by ``*``: ``bert.encoder.layer.*.attention.self.query``."""
    return re.sub(r"\.\d+\.", ".*.", name)


def rows(stats: dict[str, LayerInit]) -> list[list]:
    return [[name, layer_type(name), s.relative_error, s.energy, " ".join(f"{v:.6g}" for v in s.singular_values)] for name, s in stats.items()]


def log_layers(loggers: list[Logger], stats: dict[str, LayerInit]) -> None:
    """The per-layer diagnostics as a W&B table and spectrum plots, and as a CSV file."""
    if not stats:
        return
    table = rows(stats)
    for logger in loggers:
        if isinstance(logger, WandbLogger):
            _to_wandb(logger, stats, table)
        elif isinstance(logger, CSVLogger):
            path = Path(logger.log_dir) / "init_layers.csv"
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "w", newline="") as file:
                writer = csv.writer(file)
                writer.writerow(COLUMNS)
                writer.writerows(table)


def _to_wandb(logger: WandbLogger, stats: dict[str, LayerInit], table: list[list]) -> None:
    import wandb

    logger.log_table("init/layers", columns=COLUMNS, data=table)
    plots = {}
    for kind in dict.fromkeys(layer_type(name) for name in stats):
        names = [name for name in stats if layer_type(name) == kind]
        values = [stats[name].singular_values for name in names]
        plots[f"init/spectrum/{kind}"] = wandb.plot.line_series(
            xs=list(range(1, len(values[0]) + 1)),
            ys=values,
            keys=names,
            title=f"kept singular values: {kind}",
            xname="index",
        )
    logger.experiment.log(plots)
