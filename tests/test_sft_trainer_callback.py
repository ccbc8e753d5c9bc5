"""LoRA-SB in TRL's SFTTrainer: SmolLM2-135M-Instruct on a small chat dataset the test writes."""

import json
import shutil

import pytest
import torch
from helpers.trainer_runs import RecordingCollator, Snapshot, assert_factors_are_initialize, probe_loss

from lorasb.integrations import LoraSBCallback, attach_for_trainer

TARGETS = ["q_proj", "v_proj"]
RANK = 8
SEED = 3
CAPITALS = {
    "France": "Paris", "Italy": "Rome", "Spain": "Madrid", "Germany": "Berlin", "Portugal": "Lisbon",
    "Austria": "Vienna", "Poland": "Warsaw", "Greece": "Athens", "Norway": "Oslo", "Sweden": "Stockholm",
    "Finland": "Helsinki", "Ireland": "Dublin", "Hungary": "Budapest", "Denmark": "Copenhagen",
    "Belgium": "Brussels", "Czechia": "Prague",
}


def write_chats(path):
    """One user question and one assistant answer per country, as JSON lines of ``messages``."""
    with open(path, "w") as file:
        for country, city in CAPITALS.items():
            messages = [
                {"role": "user", "content": f"Which city is the capital of {country}?"},
                {"role": "assistant", "content": f"The capital of {country} is {city}."},
            ]
            file.write(json.dumps({"messages": messages}) + "\n")
    return path


def smollm2(smollm2_dir):
    from transformers import AutoModelForCausalLM

    return attach_for_trainer(AutoModelForCausalLM.from_pretrained(smollm2_dir), TARGETS, rank=RANK)


def build(smollm2_dir, tokenizer, out):
    """An SFTTrainer of 4 steps (a checkpoint at step 2) with LoRA-SB's callback and a Snapshot after it."""
    from datasets import load_dataset
    from trl import SFTConfig, SFTTrainer
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

    data = load_dataset("json", data_files=str(write_chats(out / "chats.jsonl")), split="train")
    collator = RecordingCollator(DataCollatorForLanguageModeling(pad_token_id=tokenizer.pad_token_id))
    config = SFTConfig(
        output_dir=str(out),
        per_device_train_batch_size=4,
        max_steps=4,
        learning_rate=2e-3,
        max_length=64,
        logging_steps=1,
        save_steps=2,
        report_to=[],
        use_cpu=True,
        seed=SEED,
        activation_checkpointing=False,  # named: TRL turns it on by default, under a name transformers deprecates
        bf16=False,  # float32, as the reference estimate below computes
    )
    trainer = SFTTrainer(model=smollm2(smollm2_dir), args=config, train_dataset=data, processing_class=tokenizer, data_collator=collator)
    probe = collator.collate([trainer.train_dataset[i] for i in range(4)])
    callback, snapshot = LoraSBCallback(), Snapshot(probe)
    trainer.add_callback(callback)
    trainer.add_callback(snapshot)
    return trainer, callback, snapshot, collator, probe


@pytest.fixture(scope="module")
def trained(smollm2_dir, smollm2_tokenizer, tmp_path_factory):
    out = tmp_path_factory.mktemp("sft")
    trainer, callback, snapshot, collator, probe = build(smollm2_dir, smollm2_tokenizer, out)
    trainer.train()
    trainer.save_model(str(out / "final"))
    return {"trainer": trainer, "callback": callback, "snapshot": snapshot, "collator": collator, "probe": probe, "out": out}


@pytest.mark.slow
def test_the_factors_are_lorasb_initialize_on_the_trainers_first_batch(trained, smollm2_dir):
    callback, snapshot = trained["callback"], trained["snapshot"]
    assert callback.batches == 1
    assert callback.first_lr == snapshot.lrs[0] == pytest.approx(2e-3)  # linear decay, no warm-up: step 0 has the peak lr
    assert_factors_are_initialize(snapshot, smollm2(smollm2_dir), trained["collator"].batches[:1], callback.first_lr, SEED, layers=2 * 30)


@pytest.mark.slow
def test_training_lowers_the_loss_on_the_chats(trained):
    after = probe_loss(trained["trainer"].model, trained["probe"])
    assert after < trained["snapshot"].loss_at_start - 0.05, (trained["snapshot"].loss_at_start, after)


@pytest.mark.slow
def test_the_saved_adapter_loads_in_peft_with_the_same_outputs(trained, smollm2_dir):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    model = trained["trainer"].model.eval()
    batch = {k: v for k, v in trained["probe"].items() if k != "labels"}
    with torch.no_grad():
        expected = model(**batch).logits
        loaded = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(smollm2_dir), trained["out"] / "final").eval()
        assert torch.allclose(loaded(**batch).logits, expected, atol=1e-4)


@pytest.mark.slow
def test_a_resumed_run_starts_from_the_checkpoints_adapters(trained, smollm2_dir, smollm2_tokenizer, tmp_path):
    from safetensors.torch import load_file

    checkpoint = tmp_path / "checkpoint-2"
    shutil.copytree(trained["out"] / "checkpoint-2", checkpoint)
    trainer, callback, snapshot, _, _ = build(smollm2_dir, smollm2_tokenizer, tmp_path)
    trainer.train(resume_from_checkpoint=str(checkpoint))
    assert callback.batches is None  # the estimate did not run
    saved = load_file(checkpoint / "model.safetensors")
    assert set(snapshot.factors) <= set(saved)
    for name, tensor in snapshot.factors.items():
        assert torch.equal(tensor, saved[name]), name
    assert trainer.state.global_step == 4
