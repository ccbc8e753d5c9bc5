"""How far LoRA-SB's initialisation alone moves a model, as lr₁ grows: SmolLM2-135M-Instruct,
LoRA-SB r=8 on all linear layers, ΣG over one batch of 4 GSM8K chats; the held-out loss on 8
other chats right after the initialisation (no training step), against the same model after the
full first Adam step W0 − lr₁·sign(ΣG) that the initialisation approximates at rank 8.

    python outputs/measured/first_step_lr/measure.py [data root, default ../shared/data]
"""

import copy
import json
import sys
import tempfile
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

import lorasb
from lorasb.config import register_resolvers, register_settings
from lorasb.method.targets import resolve_targets
from lorasb.models import load_causal_lm

REPO = Path(__file__).resolve().parents[3]
LRS = (1e-6, 1e-5, 3e-5, 1e-4, 5e-4)


def chat_file(rows: list[dict], path: Path) -> str:
    """GSM8K rows as one-exchange chats with a system turn, one JSON object a line."""
    system = "Solve the problem step by step; end with the answer after ####."
    lines = [{"messages": [{"role": "system", "content": system}, {"role": "user", "content": r["question"]}, {"role": "assistant", "content": r["answer"]}]} for r in rows]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return str(path)


def held_out_loss(model: torch.nn.Module, batches: list[dict]) -> float:
    """Mean loss per response token over the batches."""
    model.eval()
    total = tokens = 0
    with torch.no_grad():
        for batch in batches:
            count = int((batch["labels"] != -100).sum())
            total, tokens = total + model(**batch).loss.item() * count, tokens + count
    return total / tokens


def main(root: Path) -> None:
    lines = (root / "gsm8k" / "train.jsonl").read_text().splitlines()[:400]
    rows = [row for row in map(json.loads, lines) if len(row["question"]) + len(row["answer"]) < 400][:12]
    folder = Path(tempfile.mkdtemp())
    register_resolvers()
    register_settings()
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=[
            f"run_dir={folder}", "task=custom/instruction", "model=smollm2_135m", f"data.train_file={chat_file(rows[:4], folder / 'train.jsonl')}",
            f"data.validation_file={chat_file(rows[4:], folder / 'held_out.jsonl')}", "data.max_length=320", "data.batch_size=4",
        ])  # fmt: skip
    data = instantiate(cfg.data)
    data.setup("fit")
    first_batch, held_out = next(iter(data.train_dataloader())), list(data.val_dataloader())
    base = load_causal_lm(cfg.model.name_or_path)
    model = copy.deepcopy(base)
    lorasb.attach(model, resolve_targets(model, "all-linear"), rank=8)
    direction = lorasb.estimate_update(model, [first_batch], lr=1.0, seed=0)  # −sign(ΣG)
    print(f"held-out loss of the base model: {held_out_loss(base, held_out):.4f}")
    print("lr₁      LoRA-SB init (r=8)   full first Adam step")
    for lr in LRS:
        initialised = copy.deepcopy(model)
        lorasb.initialize(initialised, {name: lr * d for name, d in direction.items()})
        stepped = copy.deepcopy(base)
        weights = dict(stepped.named_parameters())
        with torch.no_grad():
            for name, d in direction.items():
                weights[f"{name}.weight"].add_(lr * d)
        print(f"{lr:<8g} {held_out_loss(initialised, held_out):<20.4f} {held_out_loss(stepped, held_out):.4f}")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else REPO.parent / "shared" / "data"))
