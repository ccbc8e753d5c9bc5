"""Batched greedy generation with a KV cache and left padding."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import contextmanager

import torch
from tqdm.auto import tqdm
from transformers import GenerationConfig, PreTrainedModel, PreTrainedTokenizerBase


@contextmanager
def left_padding(tokenizer: PreTrainedTokenizerBase):
    """Pad on the left while generating, so every prompt ends where the new tokens begin."""
    side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    try:
        yield tokenizer
    finally:
        tokenizer.padding_side = side


def stop_tokens(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> list[int]:
    """The tokenizer's EOS and every EOS the model's generation config declares."""
    declared = model.generation_config.eos_token_id
    declared = declared if isinstance(declared, list) else [declared]
    return sorted({tokenizer.eos_token_id, *declared} - {None})


@torch.no_grad()
def generate(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: Sequence[str],
    max_new_tokens: int,
    batch_size: int = 8,
    stop_strings: Sequence[str] = (),
    desc: str = "generating",
    progress: bool = True,
    stop_ids: Sequence[int] = (),
    add_special_tokens: bool = True,
) -> list[str]:
    """The greedy continuation of every prompt (special tokens dropped), in the prompts' order.

    A continuation ends at EOS, after ``max_new_tokens``, or once it has written one of
    ``stop_strings`` (which it then ends with) or one of ``stop_ids`` (a chat template's
    end-of-turn token); the others of its batch go on. ``add_special_tokens``: the tokenizer adds
    its own (BOS) to each prompt (not for a prompt a chat template wrote, which holds them).
    Prompts are batched longest first, so batches hold prompts of similar length (little
    padding) and an out-of-memory error shows on the first batch.
    """
    config = GenerationConfig(
        max_new_tokens=max_new_tokens,
        do_sample=False,
        use_cache=True,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=sorted({*stop_tokens(model, tokenizer), *stop_ids}),
        stop_strings=list(stop_strings) or None,
    )
    device = next(model.parameters()).device
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]), reverse=True)
    outputs: list[str] = [""] * len(prompts)
    was_training = model.training
    model.eval()
    try:
        with left_padding(tokenizer), tqdm(total=len(prompts), desc=desc, disable=not progress) as bar:
            for start in range(0, len(order), batch_size):
                indices = order[start : start + batch_size]
                inputs = tokenizer(
                    [prompts[i] for i in indices], return_tensors="pt", padding=True, add_special_tokens=add_special_tokens
                ).to(device)
                tokens = model.generate(**inputs, generation_config=config, tokenizer=tokenizer)
                texts = tokenizer.batch_decode(tokens[:, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
                for index, text in zip(indices, texts):
                    outputs[index] = text
                bar.update(len(indices))
    finally:
        model.train(was_training)
    return outputs
