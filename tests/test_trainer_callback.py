"""LoRA-SB in transformers' Trainer: all-MiniLM-L6-v2 on the first 64 SST-2 training sentences.

One run (8 optimizer steps of 2 micro-batches of 8, warm-up 2 steps, a checkpoint every 4 steps)
is shared by the checks of the initialisation, training, the checkpoints and the saved adapter;
a second run resumes it from its step-4 checkpoint.
"""

import pytest
import torch
from helpers.trainer_runs import RecordingCollator, Snapshot, assert_factors_are_initialize, factors, probe_loss
from safetensors.torch import load_file
from transformers import AutoModelForSequenceClassification, AutoTokenizer, DataCollatorWithPadding, Trainer, TrainingArguments

import lorasb
from lorasb.data.glue import read_glue_tsv
from lorasb.data.glue_tasks import glue_task
from lorasb.integrations import LoraSBCallback, attach_for_trainer

TARGETS = ["query", "value"]
RANK = 8
ACCUMULATION = 2
SEED = 7


def sst2_rows(shared_data, count=64):
    split = read_glue_tsv(glue_task("sst2"), shared_data / "glue" / "SST-2" / "train.tsv")
    return split.texts[0][:count], split.labels[:count]


def minilm(minilm_dir):
    torch.manual_seed(0)  # the classifier head starts the same in every model built here
    model = AutoModelForSequenceClassification.from_pretrained(minilm_dir, num_labels=2)
    return attach_for_trainer(model, TARGETS, rank=RANK)


def build(minilm_dir, shared_data, out_dir, **overrides):
    """A Trainer with LoRA-SB's callback and a Snapshot after it, its model and its data."""
    from datasets import Dataset

    tokenizer = AutoTokenizer.from_pretrained(minilm_dir)
    sentences, labels = sst2_rows(shared_data)
    data = Dataset.from_dict({"sentence": sentences, "label": labels})
    data = data.map(lambda row: tokenizer(row["sentence"], truncation=True, max_length=64), remove_columns=["sentence"])
    collator = RecordingCollator(DataCollatorWithPadding(tokenizer))
    probe = collator.collate([data[i] for i in range(32)])
    model = minilm(minilm_dir)
    callback, snapshot = LoraSBCallback(), Snapshot(probe)
    args = TrainingArguments(
        output_dir=str(out_dir),
        per_device_train_batch_size=8,
        gradient_accumulation_steps=ACCUMULATION,
        max_steps=8,
        learning_rate=1e-2,
        warmup_steps=2,
        lr_scheduler_type="linear",
        save_steps=4,
        logging_steps=1,
        report_to=[],
        use_cpu=True,
        seed=SEED,
        **overrides,
    )
    trainer = Trainer(model=model, args=args, train_dataset=data, data_collator=collator, callbacks=[callback, snapshot])
    return trainer, callback, snapshot, collator, probe


@pytest.fixture(scope="module")
def trained(minilm_dir, shared_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("trainer")
    trainer, callback, snapshot, collator, probe = build(minilm_dir, shared_data, out)
    trainer.train()
    trainer.save_model(str(out / "final"))
    return {"trainer": trainer, "callback": callback, "snapshot": snapshot, "collator": collator, "probe": probe, "out": out}


@pytest.mark.slow
def test_the_factors_are_lorasb_initialize_on_the_trainers_first_batches(trained, minilm_dir):
    callback, snapshot = trained["callback"], trained["snapshot"]
    assert callback.batches == ACCUMULATION  # the first optimizer step's micro-batches
    first_batches = trained["collator"].batches[:ACCUMULATION]

    assert_factors_are_initialize(snapshot, minilm(minilm_dir), first_batches, callback.first_lr, SEED, layers=2 * 6)


@pytest.mark.slow
def test_the_first_step_lr_is_the_first_moving_step_of_the_trainers_schedule(trained):
    lrs = trained["snapshot"].lrs
    assert lrs[0] == 0.0  # transformers' warm-up starts at 0
    assert trained["callback"].first_lr == lrs[1] == pytest.approx(1e-2 / 2)


@pytest.mark.slow
def test_training_lowers_the_loss_from_the_initialised_model(trained):
    snapshot, model = trained["snapshot"], trained["trainer"].model
    after = probe_loss(model, trained["probe"])
    assert after < snapshot.loss_at_start - 0.01, (snapshot.loss_at_start, after)


@pytest.mark.slow
def test_only_the_cores_and_the_head_train(trained):
    model = trained["trainer"].model
    final = factors(model)
    for name, tensor in trained["snapshot"].factors.items():
        changed = not torch.equal(final[name], tensor)
        assert changed == name.endswith("lora_R"), name


@pytest.mark.slow
def test_checkpoints_hold_what_trains(trained):
    model = trained["trainer"].model
    saved = load_file(trained["out"] / "checkpoint-4" / "model.safetensors")
    layers = lorasb.adapters(model)
    expected = {f"{name}.{f}" for name in layers for f in ("lora_A", "lora_B", "lora_R")} | {"classifier.weight", "classifier.bias"}
    assert set(saved) == expected


@pytest.mark.slow
def test_the_saved_model_is_an_adapter_peft_loads_with_the_same_outputs(trained, minilm_dir):
    from peft import PeftModel

    model = trained["trainer"].model.eval()
    batch = trained["probe"]
    with torch.no_grad():
        expected = model(**batch).logits
        base = AutoModelForSequenceClassification.from_pretrained(minilm_dir, num_labels=2)
        loaded = PeftModel.from_pretrained(base, trained["out"] / "final").eval()
        assert torch.allclose(loaded(**batch).logits, expected, atol=1e-5)


@pytest.mark.slow
def test_a_resumed_run_keeps_the_checkpoints_adapters(trained, minilm_dir, shared_data, tmp_path):
    import shutil

    checkpoint = tmp_path / "run" / "checkpoint-4"
    shutil.copytree(trained["out"] / "checkpoint-4", checkpoint)
    trainer, callback, snapshot, _, _ = build(minilm_dir, shared_data, tmp_path / "run")
    trainer.train(resume_from_checkpoint=str(checkpoint))

    assert callback.batches is None  # the estimate did not run
    saved = load_file(checkpoint / "model.safetensors")
    for name, tensor in snapshot.factors.items():
        assert torch.equal(tensor, saved[name]), name
    first_run = trained["snapshot"].factors
    for name in first_run:
        if not name.endswith("lora_R"):
            assert torch.equal(snapshot.factors[name], first_run[name]), name
    assert trainer.state.global_step == 8
