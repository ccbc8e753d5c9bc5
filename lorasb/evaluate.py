"""Evaluate a causal language model on GSM8K, MATH, the commonsense sets or a held-out instruction file.

    python -m lorasb.evaluate eval.sets=[gsm8k] eval.limit=50 data.dir=<root>          # base model
    python -m lorasb.evaluate adapter=<run_dir>/adapter eval.sets=[piqa,siqa]          # PEFT adapter
    python -m lorasb.evaluate checkpoint=<run_dir>/checkpoints/best.ckpt eval.sets=[math]
    python -m lorasb.evaluate adapter=<run_dir>/adapter eval.sets=[] harness.tasks=[arc_easy]  # lm-evaluation-harness
    python -m lorasb.evaluate adapter=<run_dir>/adapter eval.sets=[] eval.file=held_out.jsonl eval.match=[exact,contains]

Writes ``eval.json`` (accuracy and count per set; loss, perplexity and the matches of a file)
and ``predictions/<set>.jsonl`` (prompt, generation, extracted and gold answers, grade per
example) into its run directory, and with ``harness.tasks`` the harness's results as
``lm_eval.json`` beside them.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import hydra
from omegaconf import DictConfig, OmegaConf

from lorasb.lightning.checkpoints import UnsafeCheckpointError, refusing_unsafe
from lorasb.config import ConfigError, check_config, check_group_choices, register_resolvers, register_settings

if TYPE_CHECKING:  # transformers loads only once an evaluation starts, so --help is quick
    from transformers import PreTrainedModel

register_resolvers()
register_settings()
log = logging.getLogger(__name__)


def load_model(cfg: DictConfig) -> tuple[PreTrainedModel, str]:
    """The model to evaluate, adapters folded into its weights where it is float32
    (:func:`lorasb.method.attach.merged_where_exact`), and the name or path of its tokenizer.

    ``checkpoint``: a lorasb training checkpoint, which names its own base model;
    ``adapter``: a PEFT LoRA folder on top of the base model it records (else the ``model``
    config's), quantized as ``model.quantization`` says;
    neither: the base model itself (quantized likewise).
    """
    if cfg.checkpoint and cfg.adapter:
        raise ConfigError("give checkpoint=<file> or adapter=<folder>, not both")

    from peft import PeftModel

    from lorasb.lightning.causal_lm import CausalLMModule
    from lorasb.method.attach import merged_where_exact
    from lorasb.models import load_causal_lm
    from lorasb.models.quantization import bnb_config
    from lorasb.settings.convert import settings_from
    from lorasb.settings.model import ModelSettings

    if cfg.checkpoint:
        with refusing_unsafe(cfg.checkpoint):
            module = CausalLMModule.load_from_checkpoint(cfg.checkpoint, map_location="cpu", weights_only=True)
        return merged_where_exact(module.model.eval()), module.model_settings.name_or_path
    base = adapter_base(cfg.adapter) if cfg.adapter else None
    settings = settings_from(ModelSettings, OmegaConf.to_container(cfg.model, resolve=True), "model")
    base = base or settings.name_or_path
    quantized = settings.quantization is not None
    quantization = bnb_config(settings.quantization, settings.layer_compute_dtype(), settings.double_quant) if quantized else None
    model = load_causal_lm(base, settings.dtype, quantization)
    if cfg.adapter:
        model = merged_where_exact(PeftModel.from_pretrained(model, cfg.adapter))
    return model, base


def adapter_base(adapter: str) -> str | None:
    """The base model a PEFT adapter records, when it can be loaded here (a Hub name or an existing
    folder); None otherwise (the ``model`` config's is used)."""
    config_path = Path(adapter) / "adapter_config.json"
    if not config_path.is_file():
        raise ConfigError(f"adapter={adapter} is not a PEFT adapter folder (no adapter_config.json)")
    recorded = json.loads(config_path.read_text()).get("base_model_name_or_path")
    if recorded and (Path(recorded).is_dir() or not Path(recorded).is_absolute()):
        log.info("base model: %s, as the adapter records", recorded)
        return recorded
    return None


def harness_model(cfg: DictConfig) -> tuple[str, str | None]:
    """What the harness loads: the base model and the PEFT adapter on it (None: the model alone,
    e.g. a merged export given as ``model.name_or_path``). A training checkpoint's adapter is
    exported into the run directory first, by the export every run uses."""
    if cfg.checkpoint and cfg.adapter:
        raise ConfigError("give checkpoint=<file> or adapter=<folder>, not both")
    if cfg.checkpoint:
        from lorasb.lightning.causal_lm import CausalLMModule

        with refusing_unsafe(cfg.checkpoint):
            module = CausalLMModule.load_from_checkpoint(cfg.checkpoint, map_location="cpu", weights_only=True)
        adapter = module.export_adapter(Path(cfg.run_dir) / "adapter", run_dir=Path(cfg.checkpoint).parent.parent)
        return module.model_settings.name_or_path, str(adapter)
    if cfg.adapter:
        return adapter_base(cfg.adapter) or cfg.model.name_or_path, cfg.adapter
    return cfg.model.name_or_path, None


@hydra.main(version_base="1.3", config_path="../conf", config_name="evaluate")
def main(cfg: DictConfig) -> None:
    try:
        check_config(cfg)
        own_scoring = bool(cfg.eval.sets) or cfg.eval.file is not None  # the paper's sets, a held-out file, or both
        if not own_scoring and not cfg.harness.tasks:
            raise ConfigError("nothing to score: give eval.sets=[...], eval.file=<file> or harness.tasks=[...]")
        if own_scoring:
            score_sets(cfg)
        if cfg.harness.tasks:
            score_with_harness(cfg)
    except (ConfigError, UnsafeCheckpointError) as err:  # the message says it all; no traceback
        raise SystemExit(f"error: {err}") from None


def score_sets(cfg: DictConfig) -> None:
    """lorasb's own evaluation: ``eval.json`` and ``predictions/``."""
    from lorasb.eval import evaluate_model
    from lorasb.models import load_tokenizer

    model, tokenizer_name = load_model(cfg)
    scored = {"base_model": tokenizer_name, "adapter": cfg.adapter, "checkpoint": cfg.checkpoint}
    results = evaluate_model(model, load_tokenizer(tokenizer_name), cfg.eval, cfg.data, cfg.run_dir, scored, cfg.device)
    for name, result in results.items():
        if "accuracy" in result:
            log.info("%s: accuracy %.4f on %d examples (%.2f s/example)", name, result["accuracy"], result["count"], result["seconds_per_example"])
    log.info("results: %s", Path(cfg.run_dir) / "eval.json")


def score_with_harness(cfg: DictConfig) -> None:
    """lm-evaluation-harness on ``harness.tasks``: ``lm_eval.json``."""
    from lorasb.eval.evaluation import resolve_device
    from lorasb.eval.harness import RESULTS_FILE, UnknownTaskError, run_harness

    pretrained, adapter = harness_model(cfg)
    options = cfg.harness
    try:
        output = run_harness(
            pretrained,
            list(options.tasks),
            cfg.run_dir,
            adapter=adapter,
            include_path=options.include_path,
            limit=options.limit,
            num_fewshot=options.num_fewshot,
            batch_size=options.batch_size,
            device=str(resolve_device(cfg.device)),
            dtype=cfg.model.dtype,
        )
    except UnknownTaskError as err:
        raise ConfigError(str(err)) from None
    for task, metrics in output["results"].items():
        log.info("%s: %s", task, ", ".join(f"{k} {v:.4f}" for k, v in metrics.items() if isinstance(v, float)))
    log.info("harness results: %s", Path(cfg.run_dir) / RESULTS_FILE)


if __name__ == "__main__":
    check_group_choices(sys.argv[1:])
    main()
