"""One process of a data-parallel transformers Trainer run with LoRA-SB (launched by torch.distributed.run).

    python -m torch.distributed.run --nproc_per_node 2 trainer_ddp.py <out dir> <MiniLM folder> <SST-2 train.tsv>

Each process writes ``<out dir>/rank<r>.pt``: its factors as LoRA-SB's callback left them, the
batch it read for the estimate and the lr₁ used.
"""

import sys
from pathlib import Path

import torch
import torch.distributed as dist
from datasets import Dataset
from transformers import AutoModelForSequenceClassification, AutoTokenizer, DataCollatorWithPadding, Trainer, TrainerCallback, TrainingArguments

import lorasb
from lorasb.data.glue import read_glue_tsv
from lorasb.data.glue_tasks import glue_task
from lorasb.integrations import LoraSBCallback, attach_for_trainer


class Dump(TrainerCallback):
    def __init__(self, out: Path, callback: LoraSBCallback, collator):
        self.out, self.callback, self.collator = out, callback, collator

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        layers = lorasb.adapters(model)
        found = {f"{n}.{f}": getattr(layer, f).detach().clone() for n, layer in layers.items() for f in ("lora_A", "lora_B", "lora_R")}
        record = {"factors": found, "batches": self.collator.batches[: self.callback.batches], "first_lr": self.callback.first_lr}
        torch.save(record, self.out / f"rank{dist.get_rank()}.pt")


class Recording:
    def __init__(self, collate):
        self.collate, self.batches = collate, []

    def __call__(self, features):
        batch = self.collate(features)
        self.batches.append({k: v.clone() for k, v in batch.items()})
        return batch


def main(out: Path, minilm: str, tsv: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(minilm)
    split = read_glue_tsv(glue_task("sst2"), tsv)
    data = Dataset.from_dict({"sentence": split.texts[0][:32], "label": split.labels[:32]})
    data = data.map(lambda row: tokenizer(row["sentence"], truncation=True, max_length=64), remove_columns=["sentence"])
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(minilm, num_labels=2, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    attach_for_trainer(model, ["query", "value"], rank=4)
    collator = Recording(DataCollatorWithPadding(tokenizer))
    callback = LoraSBCallback()
    args = TrainingArguments(
        output_dir=str(out / "run"), per_device_train_batch_size=4, max_steps=1, learning_rate=1e-3,
        save_strategy="no", report_to=[], use_cpu=True, ddp_backend="gloo", seed=5,
    )
    trainer = Trainer(model=model, args=args, train_dataset=data, data_collator=collator, callbacks=[callback, Dump(out, callback, collator)])
    trainer.train()


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3]))
