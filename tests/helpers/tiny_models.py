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


# --- one tiny model of each architecture the generic model entries (model=hf_encoder, hf_causal_lm) serve ---

SMALL = {"hidden_size": 16, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 24, "max_position_embeddings": 128}


def tiny_config(architecture: str, vocab_size: int = 64):
    """The config of a tiny ``architecture`` (``bert``, ``roberta``, ``deberta``, ``deberta_v2``,
    ``llama``, ``qwen2``, ``mistral``, ``phi3``): 2 blocks, hidden size 16, no dropout."""
    import transformers

    encoders = {
        "bert": transformers.BertConfig,
        "roberta": transformers.RobertaConfig,
        "deberta": transformers.DebertaConfig,
        "deberta_v2": transformers.DebertaV2Config,
    }
    decoders = {
        "llama": transformers.LlamaConfig,
        "qwen2": transformers.Qwen2Config,
        "mistral": transformers.MistralConfig,
        "phi3": transformers.Phi3Config,
    }
    if architecture in encoders:
        dropout = {"hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0}
        return encoders[architecture](vocab_size=vocab_size, num_labels=2, pad_token_id=0, **SMALL, **dropout)
    return decoders[architecture](vocab_size=vocab_size, num_key_value_heads=1, pad_token_id=0, bos_token_id=1, eos_token_id=2, **SMALL)


ENCODERS = ("bert", "roberta", "deberta", "deberta_v2")
DECODERS = ("llama", "qwen2", "mistral", "phi3")


def tiny_model(architecture: str, vocab_size: int = 64, seed: int = 0):
    """A randomly initialised sequence classifier (encoders) or causal language model (decoders)."""
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    torch.manual_seed(seed)
    auto = AutoModelForSequenceClassification if architecture in ENCODERS else AutoModelForCausalLM
    return auto.from_config(tiny_config(architecture, vocab_size))


def save_tiny_model(architecture: str, folder, tokenizer) -> str:
    """A tiny ``architecture`` with ``tokenizer``'s vocabulary saved with it into ``folder`` (loadable by path)."""
    model = tiny_model(architecture, vocab_size=len(tokenizer))
    model.config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)
