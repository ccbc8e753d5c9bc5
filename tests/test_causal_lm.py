"""The causal-LM module on SmolLM2-135M-Instruct: response-only loss, trained tensors, checkpointing."""

import pytest
import torch
import torch.nn.functional as F

from lorasb.method.attach import adapters
from lorasb.lightning.causal_lm import CausalLMModule
from lorasb.data import encode_examples
from lorasb.data.instruction import IGNORE_INDEX, InstructionDataModule
from lorasb.data.prompts import alpaca_prompt

pytestmark = pytest.mark.slow  # SmolLM2-135M forward and backward passes

RANK = 4
PAIRS = [
    (alpaca_prompt("What is 2 + 3?"), "2 + 3 = 5.\nThe answer is: 5"),
    (alpaca_prompt("Name a primary colour."), "Red is a primary colour.\nThe answer is: red"),
    (alpaca_prompt("Is ice colder than steam?", "Answer true or false."), "the correct answer is true"),
]


def make_module(smollm2_dir, **kwargs):
    module = CausalLMModule(
        model={"name_or_path": str(smollm2_dir), "target_modules": ["q_proj", "v_proj", "down_proj"], "dtype": "float32"},
        rank=RANK,
        method={"name": "lora_sb", "alpha": None, "dropout": 0.0},
        init={"num_samples": 2, "batch_size": 2},
        optim={"lr": 1e-3},
        **kwargs,
    )
    torch.manual_seed(0)
    for layer in adapters(module.model).values():  # a non-zero adapter, as after the initialisation
        for factor in (layer.lora_A, layer.lora_B, layer.lora_R):
            factor.data.normal_(0, 0.05)
    return module


@pytest.fixture(scope="module")
def batch(smollm2_tokenizer):
    data = InstructionDataModule(task="metamath", tokenizer=smollm2_tokenizer)
    return data.collate(encode_examples(smollm2_tokenizer, PAIRS, 128))


def response_cross_entropy(logits, batch):
    """Σ and count of the next-token cross-entropy over the positions whose label is not ignored."""
    targets = batch["labels"][:, 1:]
    losses = F.cross_entropy(logits[:, :-1].flatten(0, 1), targets.flatten(), ignore_index=IGNORE_INDEX, reduction="sum")
    return losses, (targets != IGNORE_INDEX).sum()


def test_only_the_cores_train(smollm2_dir):
    module = make_module(smollm2_dir)
    trained = {name for name, p in module.model.named_parameters() if p.requires_grad}
    assert len(trained) == 30 * 3 and all(name.endswith("lora_R") for name in trained)
    assert module.parameter_counts()["trainable"] == 30 * 3 * RANK**2


def test_training_loss_covers_the_response_tokens_only(smollm2_dir, batch):
    module = make_module(smollm2_dir)
    loss = module.training_step(batch, 0)
    logits = module.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    total, count = response_cross_entropy(logits, batch)
    torch.testing.assert_close(loss, total / count)
    # changing a prompt token's label from ignored to a target changes the loss: the mask matters
    unmasked = {**batch, "labels": torch.where(batch["attention_mask"].bool(), batch["input_ids"], IGNORE_INDEX)}
    assert not torch.isclose(module.model(**unmasked).loss, loss)


def test_validation_loss_is_averaged_over_tokens(smollm2_dir, batch):
    module = make_module(smollm2_dir).eval()
    halves = [{key: value[:1] for key, value in batch.items()}, {key: value[1:] for key, value in batch.items()}]
    with torch.no_grad():
        for index, half in enumerate(halves):
            module.validation_step(half, index)
        logits = module.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    total, count = response_cross_entropy(logits, batch)
    torch.testing.assert_close(module.val_loss.compute(), total / count, rtol=1e-5, atol=1e-6)


def test_gradient_checkpointing_gives_the_same_gradients(smollm2_dir, batch):
    grads = []
    for checkpointing in (False, True):
        module = make_module(smollm2_dir, gradient_checkpointing=checkpointing).train()
        module.training_step(batch, 0).backward()
        grads.append({name: p.grad for name, p in module.model.named_parameters() if p.requires_grad})
    assert grads[1].keys() == grads[0].keys()
    for name in grads[0]:
        torch.testing.assert_close(grads[1][name], grads[0][name], rtol=1e-4, atol=1e-7)
