"""init.head_bias=prior: the classifier starts at the training labels' prior."""

import math
from types import SimpleNamespace

import pytest
import torch
from peft import LoraConfig, get_peft_model
from transformers import RobertaConfig, RobertaForSequenceClassification

from lorasb.lightning.head_bias import output_layer, prior_bias, set_prior_bias
from lorasb.method.attach import unfreeze
from helpers.tiny_models import tiny_bert


def test_the_prior_is_the_add_one_smoothed_log_frequency_of_each_class():
    bias = prior_bias(torch.tensor([0, 0, 0, 2]), 3)
    assert torch.allclose(bias, torch.tensor([4 / 7, 1 / 7, 2 / 7], dtype=torch.float64).log())


def test_the_prior_of_a_regression_is_the_mean_label():
    assert prior_bias(torch.tensor([1.0, 2.0, 4.5]), 1).tolist() == [2.5]


def test_the_output_layer_is_the_trained_linear_layer_with_one_output_per_label():
    bert = tiny_bert(num_labels=3)
    assert output_layer(bert.requires_grad_(False), 3) is None  # nothing trains
    unfreeze(bert, ["classifier"])
    assert output_layer(bert, 3) is bert.classifier

    torch.manual_seed(0)
    config = RobertaConfig(vocab_size=64, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=24, num_labels=2)
    roberta = RobertaForSequenceClassification(config)  # classifier: dense (16 → 16), then out_proj (16 → 2)
    assert output_layer(roberta, 2) is roberta.classifier.out_proj

    peft_model = get_peft_model(tiny_bert(), LoraConfig(r=2, target_modules=["query"], modules_to_save=["classifier"]))
    trained_copy = peft_model.base_model.model.classifier.modules_to_save["default"]
    assert output_layer(peft_model, 2) is trained_copy


def test_a_model_without_such_a_layer_keeps_its_head_and_says_so(caplog):
    bert = tiny_bert()
    before = bert.classifier.bias.clone()
    assert set_prior_bias(bert.requires_grad_(False), torch.tensor([0, 1]), 2) is None
    assert torch.equal(bert.classifier.bias, before)
    assert "init.head_bias=prior: no trainable linear layer with 2 outputs" in caplog.text


def _minilm_cola(minilm_dir, shared_data, head_bias, monkeypatch):
    from lorasb.data import GlueDataModule
    from lorasb.lightning.classification import ClassificationModule

    data = GlueDataModule("cola", tokenizer=str(minilm_dir), dir=str(shared_data), train_limit=512, batch_size=64, seed=0)
    data.setup("fit")
    model = {"name_or_path": str(minilm_dir), "target_modules": ["query", "value"], "head": ["classifier"]}
    module = ClassificationModule(task="cola", model=model, rank=4, method={"name": "lora_sb"}, init={"head_bias": head_bias}, optim={"lr": 1e-3})
    trainer = SimpleNamespace(datamodule=data)  # what prepare_head reads
    monkeypatch.setattr(ClassificationModule, "trainer", property(lambda self: trainer))
    module.prepare_head()
    return module, data


@pytest.mark.slow
@pytest.mark.parametrize("head_bias", ["prior", "zero"])
def test_minilm_on_cola_starts_at_the_label_prior(head_bias, minilm_dir, shared_data, monkeypatch):
    module, data = _minilm_cola(minilm_dir, shared_data, head_bias, monkeypatch)
    labels = torch.tensor(data.train_dataset["labels"])
    frequency = labels.float().mean().item()  # CoLA: about 70% acceptable
    bias = module.model.classifier.bias.detach().double()
    if head_bias == "zero":
        assert bias.tolist() == [0.0, 0.0]  # the fresh head's own
        return
    assert bias.tolist() == pytest.approx([math.log((len(labels) - labels.sum().item() + 1) / (len(labels) + 2)), math.log((labels.sum().item() + 1) / (len(labels) + 2))])
    # the starting loss on the training rows is the entropy of the prior, up to what the
    # untrained weights add
    module.model.eval()
    with torch.no_grad():
        losses = [float(module.model(**batch).loss) for batch in data.init_dataloader(256, 64)]
    entropy = -(frequency * math.log(frequency) + (1 - frequency) * math.log(1 - frequency))
    assert frequency > 0.6
    assert sum(losses) / len(losses) == pytest.approx(entropy, abs=0.05)


def test_the_gradient_cache_tells_the_head_biases_apart(compose):
    from omegaconf import OmegaConf

    from lorasb.method.cache import cache_key

    prior, zero = compose("task=glue/cola"), compose("task=glue/cola", "init.head_bias=zero")
    assert prior.init.head_bias == "prior" and prior.gradient_cache.depends_on.init.head_bias == "prior"
    key = lambda cfg: cache_key(OmegaConf.to_container(cfg.gradient_cache.depends_on, resolve=True))  # noqa: E731
    assert key(prior) != key(zero)
    assert compose("experiment=paper/glue", "task=glue/cola").init.head_bias == "zero"  # as the reference
