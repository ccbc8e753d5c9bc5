"""``python -m lorasb.bench``: time and peak memory of a training step and of the initialisation,
LoRA-SB against the frozen-model floor, PEFT's LoRA, full fine-tuning, a reference-style
gradient estimation and PEFT's LoRA-GA preprocessing, measured interleaved in one run."""
