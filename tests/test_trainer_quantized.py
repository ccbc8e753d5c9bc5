"""LoRA-SB in transformers' Trainer on a quantized base: SmolLM2-135M-Instruct in nf4 (bitsandbytes
on the CPU), q_proj and v_proj at rank 4, 4 steps over 16 short sentences the test writes."""

import pytest
import torch
from helpers.trainer_runs import RecordingCollator, Snapshot, assert_factors_are_initialize, probe_loss

from lorasb.integrations import LoraSBCallback, attach_for_trainer

pytestmark = pytest.mark.slow  # SmolLM2 trains in nf4

TARGETS = ["q_proj", "v_proj"]
RANK = 4
SEED = 5
FACTS = [f"Fact {i}: {a} plus {b} is {a + b}." for i, (a, b) in enumerate(zip(range(2, 18), range(7, 23)))]


def nf4_smollm2(smollm2_dir):
    from transformers import AutoModelForCausalLM

    from lorasb.models.quantization import bnb_config

    model = AutoModelForCausalLM.from_pretrained(smollm2_dir, quantization_config=bnb_config("nf4", "float32", True), device_map="cpu")
    return attach_for_trainer(model, TARGETS, rank=RANK)


@pytest.fixture(scope="module")
def trained(smollm2_dir, smollm2_tokenizer, tmp_path_factory):
    from datasets import Dataset
    from transformers import DataCollatorForLanguageModeling, Trainer, TrainingArguments

    out = tmp_path_factory.mktemp("nf4_trainer")
    data = Dataset.from_dict({"text": FACTS}).map(lambda row: smollm2_tokenizer(row["text"]), remove_columns=["text"])
    collator = RecordingCollator(DataCollatorForLanguageModeling(smollm2_tokenizer, mlm=False))
    probe = collator.collate([data[i] for i in range(4)])
    callback, snapshot = LoraSBCallback(), Snapshot(probe)
    args = TrainingArguments(
        output_dir=str(out), per_device_train_batch_size=4, max_steps=4, learning_rate=3e-3, logging_steps=1,
        save_strategy="no", report_to=[], use_cpu=True, seed=SEED,
    )  # fmt: skip
    trainer = Trainer(model=nf4_smollm2(smollm2_dir), args=args, train_dataset=data, data_collator=collator, callbacks=[callback, snapshot])
    trainer.train()
    trainer.save_model(str(out / "final"))
    return {"trainer": trainer, "callback": callback, "snapshot": snapshot, "collator": collator, "probe": probe, "out": out}


def test_the_trainer_takes_the_quantized_model_with_its_lorasb_adapters(trained):
    model = trained["trainer"].model
    assert model.is_loaded_in_4bit and model.hf_quantizer is not None  # the weights stay 4-bit
    assert type(model.model.layers[0].self_attn.q_proj.base.weight).__name__ == "Params4bit"


def test_the_factors_are_lorasb_initialize_on_the_nf4_model(trained, smollm2_dir):
    callback, snapshot = trained["callback"], trained["snapshot"]
    assert callback.batches == 1
    assert_factors_are_initialize(snapshot, nf4_smollm2(smollm2_dir), trained["collator"].batches[:1], callback.first_lr, SEED, layers=2 * 30)


def test_training_lowers_the_loss(trained):
    after = probe_loss(trained["trainer"].model, trained["probe"])
    assert after < trained["snapshot"].loss_at_start - 0.05, (trained["snapshot"].loss_at_start, after)


def test_the_saved_adapter_loads_in_peft_on_the_nf4_base_with_the_same_outputs(trained, smollm2_dir):
    from peft import PeftModel

    from lorasb.models import load_causal_lm
    from lorasb.models.quantization import bnb_config

    model = trained["trainer"].model.eval()
    batch = {k: v for k, v in trained["probe"].items() if k != "labels"}
    # transformers' nf4 model on lorasb's kernel (bitsandbytes' CPU inference kernel computes in bfloat16)
    base = load_causal_lm(str(smollm2_dir), "float32", bnb_config("nf4", "float32", True))
    with torch.no_grad():
        expected = model(**batch).logits
        loaded = PeftModel.from_pretrained(base, trained["out"] / "final").eval()
        assert torch.allclose(loaded(**batch).logits, expected, atol=1e-3)
