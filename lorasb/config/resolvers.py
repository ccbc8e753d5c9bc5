"""Hydra resolvers the configs in ``conf/`` use (the model loaders import only when a config resolves)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

from omegaconf import OmegaConf

from lorasb.config.choices import group_options, model_kind


def _package_dir(package: str) -> str:
    from lorasb.models import package_dir

    return package_dir(package)


def _gguf_folder(package: str, filename: str) -> str:
    from lorasb.models import gguf_folder

    return gguf_folder(package, filename)


def _options(group: str, kind: str | None = None) -> str:
    options = group_options(group)
    if kind is not None:
        options = [name for name in options if model_kind(name) == kind]
    return ", ".join(options)


def _cache_dir() -> str:
    from lorasb.models import cache_dir

    return str(cache_dir())


def path_safe(text: str) -> str:
    """``text`` as one folder or run name: ``/`` becomes ``-``; other characters than letters,
    digits and ``._=,+-`` become ``_``; at most 200 characters."""
    return re.sub(r"[^A-Za-z0-9._=,+-]", "_", str(text).replace("/", "-"))[:200]


def _hydra_job():
    """The running Hydra job's config (``None`` outside ``@hydra.main``, e.g. in a composed test config)."""
    from hydra.core.hydra_config import HydraConfig

    return HydraConfig.get() if HydraConfig.initialized() else None


def sweep_group(default: str) -> str:
    """The multirun's folder as a group name (every job of a sweep shares it); ``default`` for a single run."""
    from hydra.types import RunMode

    job = _hydra_job()
    return path_safe(job.sweep.dir) if job is not None and job.mode == RunMode.MULTIRUN else default


SWEEP = re.compile(r",|^(range|choice|glob|interval)\(")  # a value that sweeps


def _command_line(job) -> list[str]:
    """The overrides the multirun was started with (its ``multirun.yaml``, which every launcher
    writes before the jobs start, in this process or another); else this process's arguments."""
    from hydra.types import RunMode

    saved = Path(job.sweep.dir) / "multirun.yaml"
    if job.mode == RunMode.MULTIRUN and saved.is_file():
        return list(OmegaConf.load(saved).hydra.overrides.task)
    return [arg for arg in sys.argv[1:] if not arg.startswith("-")]


def _swept_keys(job) -> set[str]:
    """The keys a multirun sweeps: on its command line or in ``hydra.sweeper.params``."""
    given = [arg.split("=", 1) for arg in _command_line(job) if "=" in arg]
    given += [(key, str(value)) for key, value in (job.sweeper.get("params") or {}).items()]
    return {key.lstrip("+~") for key, value in given if SWEEP.search(re.sub(r"\[[^\]]*\]", "", value))}  # [a,b] is one value


def job_name(default: str = "run") -> str:
    """The job's swept overrides as a name (``method=lora,rank=16``); all its overrides when it
    sweeps nothing (a single run); ``default`` when there are none or outside Hydra."""
    job = _hydra_job()
    if job is None:
        return default
    overrides = [o for o in job.overrides.task if o.split("=", 1)[0].lstrip("+~") not in job.job.config.override_dirname.exclude_keys]
    swept = _swept_keys(job)
    chosen = [o for o in overrides if o.split("=", 1)[0].lstrip("+~") in swept] or overrides
    return path_safe(",".join(chosen)) if chosen else default


def register_resolvers() -> None:
    """``${package_dir:pkg}``: the folder of an installed package (offline model weights);
    ``${gguf_folder:pkg,file.gguf}``: a GGUF file of a package, converted once to a HF folder;
    ``${options:group}``: the options of a config group, comma-separated (for ``--help``);
    ``${options:model,causal_lm}``: the models of one kind; ``${cache_dir:}``: lorasb's cache
    folder; ``${path_safe:text}``: text usable as a folder name; ``${sweep_group:default}`` and
    ``${job_name:default}``: a W&B group per multirun and a job name from the job's overrides."""
    OmegaConf.register_new_resolver("package_dir", _package_dir, replace=True)
    OmegaConf.register_new_resolver("gguf_folder", _gguf_folder, replace=True)
    OmegaConf.register_new_resolver("options", _options, replace=True)
    OmegaConf.register_new_resolver("cache_dir", _cache_dir, replace=True)
    OmegaConf.register_new_resolver("path_safe", path_safe, replace=True)
    OmegaConf.register_new_resolver("sweep_group", sweep_group, replace=True)
    OmegaConf.register_new_resolver("job_name", job_name, replace=True)
