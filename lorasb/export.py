"""Export a trained run: ``python -m lorasb.export <run dir or checkpoint> [options]``.

Writes, from the run's best checkpoint (a run folder) or the checkpoint given:

    <out>/adapter   the adapter in PEFT's format, with its task type, base model and trained head
                    (``full`` fine-tuning: the whole model), which ``peft.AutoPeftModelFor…`` loads
    <out>/merged    with ``--merged``: the adapter folded into the base weights, a plain Hugging
                    Face model folder with its tokenizer; a quantized base (``model.quantization``)
                    is dequantized to float32 first (LoRA-SB and LoRA-XS), and the merged model's
                    logits on a probe prompt are compared with the adapter's on the quantized base

``--pad-rank N`` pads the LoRA-SB adapter with zero rows and columns to rank N (serving engines
such as vLLM accept a few ranks only); the padded adapter computes the same update.
``--base-model NAME`` records NAME as the base model (a Hub name others can resolve) instead
of where the run loaded it from.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from lorasb.lightning.checkpoints import UnsafeCheckpointError, refusing_unsafe

log = logging.getLogger(__name__)


def checkpoint_of(source: Path) -> Path:
    """``source`` itself, or a run folder's ``checkpoints/best.ckpt`` (else its ``last.ckpt``)."""
    if source.is_file():
        return source
    for name in ("best.ckpt", "last.ckpt"):
        if (source / "checkpoints" / name).is_file():
            return source / "checkpoints" / name
    raise FileNotFoundError(f"{source} is neither a checkpoint nor a run folder with checkpoints/best.ckpt or last.ckpt")


def load_module(checkpoint: Path):
    """The trained Lightning module of ``checkpoint`` (classification or causal LM, as its model's
    kind says) and the epoch it was saved at (counted from 1)."""
    import torch

    with refusing_unsafe(checkpoint):
        saved = torch.load(checkpoint, map_location="cpu", weights_only=True, mmap=True)
        if saved["hyper_parameters"]["model"].get("kind") == "causal_lm":
            from lorasb.lightning.causal_lm import CausalLMModule as Module
        else:
            from lorasb.lightning.classification import ClassificationModule as Module
        module = Module.load_from_checkpoint(checkpoint, map_location="cpu", weights_only=True).eval()
    return module, saved["epoch"] + 1


def pad_rank(adapter: Path, rank: int) -> None:
    """Zero-pad a PEFT LoRA adapter to ``rank``: A gains zero rows, B zero columns, and
    ``lora_alpha`` grows with r so that the scaling alpha/r, and so the update, stays the same."""
    from safetensors.torch import load_file, save_file
    from torch.nn.functional import pad

    config = json.loads((adapter / "adapter_config.json").read_text())
    old = config["r"]
    if rank < old:
        raise ValueError(f"--pad-rank {rank} is below the adapter's rank {old}")
    tensors = load_file(adapter / "adapter_model.safetensors")
    for key, tensor in tensors.items():
        if key.endswith("lora_A.weight"):
            tensors[key] = pad(tensor, (0, 0, 0, rank - old))
        elif key.endswith("lora_B.weight"):
            tensors[key] = pad(tensor, (0, rank - old))
    save_file(tensors, adapter / "adapter_model.safetensors", metadata={"format": "pt"})
    config["lora_alpha"] = config["lora_alpha"] * rank / old
    config["r"] = rank
    (adapter / "adapter_config.json").write_text(json.dumps(config, indent=2) + "\n")


def export(source: Path, out: Path, merged: bool = False, rank: int | None = None, base_model: str | None = None) -> dict[str, Path]:
    """Write the exports of ``source`` (a run folder or checkpoint) under ``out``; their folders by kind."""
    from lorasb.method.attach import merged as merged_adapters
    from lorasb.models import load_tokenizer

    checkpoint = checkpoint_of(source)
    module, epoch = load_module(checkpoint)
    log.info("exporting %s, saved at epoch %d", checkpoint, epoch)
    written = {"adapter": module.export_adapter(out / "adapter", run_dir=checkpoint.parent.parent)}
    config_path = written["adapter"] / "adapter_config.json"
    if base_model and config_path.is_file():
        config = json.loads(config_path.read_text())
        config["base_model_name_or_path"] = base_model
        config_path.write_text(json.dumps(config, indent=2) + "\n")
    if rank is not None:
        pad_rank(written["adapter"], rank)
    if merged:
        tokenizer = load_tokenizer(module.model_settings.name_or_path)
        if module.model_settings.quantization is None:
            model = merged_adapters(module.model)
        else:
            model = merged_dequantized(module, tokenizer)
        model.save_pretrained(out / "merged")
        tokenizer.save_pretrained(out / "merged")
        written["merged"] = out / "merged"
    return written


PROBE = "### Instruction:\nWhat is 3 + 4?\n\n### Response:\n"
DEQUANTIZED_MERGE = ("lora_sb", "lora_xs")


def merged_dequantized(module, tokenizer):
    """The module's model with a quantized base: every LoRA-SB layer folded into its dequantized
    float32 weight, the other quantized layers dequantized; checked on a probe prompt against the
    adapter on the quantized base (the largest logit difference is logged)."""
    import torch

    from lorasb.method.attach import merge
    from lorasb.method.quantized import dequantize_linears

    quantization, method = module.model_settings.quantization, module.method.name
    if method not in DEQUANTIZED_MERGE:
        raise ValueError(
            f"--merged on a model.quantization={quantization} base folds {', '.join(DEQUANTIZED_MERGE)} adapters into the "
            f"dequantized weights; for method={method} apply the exported adapter to the float base model "
            "(peft.PeftModel.from_pretrained(base, <out>/adapter).merge_and_unload())"
        )
    model = module.model.eval()
    inputs = tokenizer([PROBE], return_tensors="pt").to(module.device)
    with torch.no_grad():
        expected = model(**inputs).logits.float()
        dequantize_linears(merge(model))
        difference = (model(**inputs).logits.float() - expected).abs().max().item()
    log.info(
        "merged: the %s base dequantized to float32 and the adapters folded in; on a probe prompt its logits differ from "
        "the adapter's on the quantized base by at most %.3g (logits span %.3g)", quantization, difference, float(expected.max() - expected.min()),
    )
    return model


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m lorasb.export", description=__doc__.split("\n\n")[0])
    parser.add_argument("source", type=Path, help="a run folder (its best checkpoint) or a checkpoint file")
    parser.add_argument("--out", type=Path, default=None, help="where to write (default: <run folder>/export)")
    parser.add_argument("--merged", action="store_true", help="also write the merged Hugging Face model with its tokenizer")
    parser.add_argument("--pad-rank", type=int, default=None, help="zero-pad the adapter to this rank")
    parser.add_argument("--base-model", default=None, help="the base model name to record in the adapter")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    out = args.out or (args.source if args.source.is_dir() else args.source.parent.parent) / "export"
    try:
        written = export(args.source, out, args.merged, args.pad_rank, args.base_model)
    except (FileNotFoundError, ValueError, UnsafeCheckpointError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    for kind, folder in written.items():
        print(f"{kind}: {folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
