"""A Hugging Face model adapted with LoRA-SB for transformers' ``Trainer`` (and TRL's trainers).

One call wraps the target layers (:func:`lorasb.method.attach`), trains the classification head
and sets how the model saves, so that the trainer's checkpoints and ``trainer.save_model`` hold
what trains:

- ``_keys_to_ignore_on_save`` lists the frozen pretrained tensors: a checkpoint's
  ``model.safetensors`` holds the r×r cores, the factors the initialisation wrote and the head,
  and ``Trainer(resume_from_checkpoint=…)`` loads them back into a model built the same way (the
  Trainer expects exactly those keys to be missing).
- ``save_pretrained`` also writes the PEFT LoRA adapter (:func:`lorasb.method.export_peft`, the
  export every lorasb run uses), which ``peft.PeftModel.from_pretrained`` loads with the same
  outputs.
- A quantized base (bitsandbytes 4-bit or 8-bit) gets QLoRA's preparation
  (:func:`lorasb.models.quantization.prepare_for_training`). transformers' ``Trainer`` refuses a
  quantized model unless it carries PEFT adapters, which it tells from ``model.is_quantized``, a
  flag nothing else in training reads; with LoRA-SB's trainable cores attached that flag is
  cleared, and the weights stay quantized (``hf_quantizer``, ``is_loaded_in_4bit`` unchanged).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from torch import nn

from lorasb.method.attach import adapters, attach, unfreeze
from lorasb.method.export import export_peft, task_type
from lorasb.models.quantization import prepare_for_training

CLASSIFIER_HEADS = ("classifier", "score")  # the heads of transformers' …ForSequenceClassification models


def attach_for_trainer(
    model: nn.Module,
    target_modules: Iterable[str],
    rank: int,
    alpha: float | None = None,
    dropout: float = 0.0,
    head: Iterable[str] | None = None,
) -> nn.Module:
    """``model`` with LoRA-SB on ``target_modules`` (R = 0 until :class:`LoraSBCallback` runs),
    ``head`` trained in full, saving as the module docstring says; returns ``model``.

    ``head`` defaults to a sequence classifier's ``classifier`` or ``score`` module (none for
    other models).
    """
    quantized = getattr(model, "hf_quantizer", None) is not None
    if quantized:
        prepare_for_training(model, gradient_checkpointing=False)  # the Trainer, when it checkpoints, makes the inputs need grads itself
    attach(model, target_modules, rank, alpha=alpha, dropout=dropout)
    if quantized:
        model.is_quantized = False  # trainable adapters are on it (see the module docstring)
    heads = list(head) if head is not None else default_head(model)
    unfreeze(model, heads)
    model._keys_to_ignore_on_save = frozen_keys(model)
    model.save_pretrained = saving_adapter_too(model, model.save_pretrained, heads)
    return model


def default_head(model: nn.Module) -> list[str]:
    """The classification head of a transformers sequence classifier, else none."""
    if task_type(model) != "SEQ_CLS":
        return []
    children = dict(model.named_children())
    return [name for name in CLASSIFIER_HEADS if name in children]


def frozen_keys(model: nn.Module) -> set[str]:
    """State-dict keys of what neither trains nor is written by the initialisation (the pretrained weights)."""
    kept = {name for name, p in model.named_parameters() if p.requires_grad}
    kept |= {f"{name}.{factor}" for name in adapters(model) for factor in ("lora_A", "lora_B")}
    return {key for key in model.state_dict() if key not in kept}


def saving_adapter_too(model: nn.Module, save_pretrained: Callable, heads: list[str]) -> Callable:
    """``save_pretrained`` that also writes the PEFT adapter (with ``heads``) into the same folder."""

    def save(save_directory, *args, is_main_process: bool = True, **kwargs):
        save_pretrained(save_directory, *args, is_main_process=is_main_process, **kwargs)
        if is_main_process:
            export_peft(model, save_directory, modules_to_save=heads)

    return save
