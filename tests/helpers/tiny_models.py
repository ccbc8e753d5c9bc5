"""Small randomly initialised models built from configs, for exact tests of the method."""

import torch
from transformers import BertConfig, BertForSequenceClassification, LlamaConfig, LlamaForCausalLM

BERT_TARGETS = ["query", "value", "attention.output.dense", "output.dense"]
LLAMA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def tiny_bert(num_labels: int = 2, seed: int = 0) -> BertForSequenceClassification:
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=64,
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=24,
        max_position_embeddings=32,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        num_labels=num_labels,
    )
    return BertForSequenceClassification(config).double()


def tiny_llama(seed: int = 0) -> LlamaForCausalLM:
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=64,
        hidden_size=16,
        intermediate_size=24,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=32,
    )
    return LlamaForCausalLM(config).double()


def bert_batches(count: int = 3, batch_size: int = 4, length: int = 7, num_labels: int = 2, seed: int = 1):
    generator = torch.Generator().manual_seed(seed)
    batches = []
    for _ in range(count):
        labels = (
            torch.randn(batch_size, generator=generator, dtype=torch.float64)
            if num_labels == 1
            else torch.randint(0, num_labels, (batch_size,), generator=generator)
        )
        batches.append(
            {
                "input_ids": torch.randint(1, 64, (batch_size, length), generator=generator),
                "attention_mask": torch.ones(batch_size, length, dtype=torch.long),
                "labels": labels,
            }
        )
    return batches


def llama_batches(count: int = 2, batch_size: int = 3, length: int = 9, seed: int = 1):
    generator = torch.Generator().manual_seed(seed)
    batches = []
    for _ in range(count):
        ids = torch.randint(1, 64, (batch_size, length), generator=generator)
        batches.append({"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": ids.clone()})
    return batches
