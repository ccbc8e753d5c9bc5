"""``python -m lorasb.bench.on_paper``: the initialisation's peak GPU memory against a training
step's for each LLM preset, worked out from the model shapes, the preset's batch and the dtypes
(not measured).

Both peaks hold the bf16 weights, the activations autograd saves for backward and the logits;
they differ in what comes on top. Per token and decoder layer, backward keeps about
6·hidden + 2·kv + 4·intermediate values in bf16 (the normalised inputs, q, k, v, the attention
output, the residuals, the MLP's gate, up, activation and product; SDPA keeps no attention
matrix), and the logits take about 10 bytes per token and vocabulary entry (bf16 logits, their
float32 copy for the loss, its gradient). A training step adds LoRA-SB's trained cores, their
gradients and AdamW's two moments (float32); the initialisation adds the gradient sums as
:func:`lorasb.method.memory.needed_bytes` counts them, for each accumulator mode; a
reference-style estimate (every parameter requires grad) adds a bf16 gradient of every parameter.

On an nf4 base with gradient checkpointing (``quantized_peaks``) the projections take 4.127 bits
an entry (4-bit codes, an 8-bit scale per 64 entries and a float32 scale per 256 of those);
the embeddings, head and norms are float32 (QLoRA's preparation), so are the activations
between the layers. Backward keeps each block's float32 input per token and recomputes one
block at a time (its activations, float32, on top); the logits take 12 bytes per token and
vocabulary entry (float32 logits, the loss's copy, their gradient). The initialisation runs
the same passes at its batch with the leanest accumulator mode, the sums offloaded to CPU
memory: on the GPU only the largest layer's float32 gradient as it is summed.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

import torch

from lorasb.method.memory import AccumulatorOptions, needed_bytes

GIB = 2**30
BF16 = 2
LOGIT_BYTES = 10
GPU_BYTES = 80 * GIB
TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
MODES = {
    "float32": AccumulatorOptions(),
    "bfloat16": AccumulatorOptions(dtype="bfloat16"),
    "4 groups": AccumulatorOptions(layer_groups=4),
    "offload": AccumulatorOptions(offload=True),
}


@dataclass(frozen=True)
class Shape:
    """A decoder's shape, as its config.json gives it."""

    hidden: int
    intermediate: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    vocab: int
    tied: bool  # the output projection shares the input embedding
    norms: int = 2  # RMSNorm weights per layer (Gemma-2 has four)

    def target_weights(self) -> dict[str, torch.Tensor]:
        """Every adapted projection as an empty (meta) bf16 tensor of its shape."""
        q, kv, h, i = self.heads * self.head_dim, self.kv_heads * self.head_dim, self.hidden, self.intermediate
        shapes = {"q_proj": (q, h), "k_proj": (kv, h), "v_proj": (kv, h), "o_proj": (h, q), "gate_proj": (i, h), "up_proj": (i, h), "down_proj": (h, i)}
        return {
            f"layers.{n}.{name}": torch.empty(shapes[name], device="meta", dtype=torch.bfloat16) for n in range(self.layers) for name in TARGETS
        }

    def parameters(self) -> int:
        projections = sum(w.numel() for w in self.target_weights().values())
        return projections + self.vocab * self.hidden * (1 if self.tied else 2) + (self.norms * self.layers + 1) * self.hidden

    def activation_bytes(self, tokens: int) -> int:
        per_layer = 6 * self.hidden + 2 * self.kv_heads * self.head_dim + 4 * self.intermediate
        return tokens * (self.layers * per_layer * BF16 + self.vocab * LOGIT_BYTES)


SHAPES = {
    "mistral_7b": Shape(4096, 14336, 32, 32, 8, 128, 32000, tied=False),
    "llama3_1_8b": Shape(4096, 14336, 32, 32, 8, 128, 128256, tied=False),
    "llama3_2_3b": Shape(3072, 8192, 28, 24, 8, 128, 128256, tied=True),
    "llama3_2_1b": Shape(2048, 8192, 16, 32, 8, 64, 128256, tied=True),
    "gemma2_9b": Shape(3584, 14336, 42, 16, 8, 256, 256000, tied=True, norms=4),
}


@dataclass(frozen=True)
class Preset:
    """A training setting: its model, a training batch and an initialisation batch (sequences × tokens)."""

    name: str
    model: str
    batch: int
    init_batch: int
    tokens: int
    rank: int


PRESETS = (
    Preset("experiment=paper/metamath", "mistral_7b", 1, 3, 512, 96),
    Preset("experiment=paper/commonsense", "llama3_2_3b", 6, 10, 256, 96),
    *(Preset(f"task=metamath model={m} (paper/metamath's batch)", m, 1, 3, 512, 96) for m in ("llama3_1_8b", "llama3_2_1b", "gemma2_9b")),
)


def peaks(preset: Preset) -> dict[str, int]:
    """Peak bytes of a training step and of each initialisation mode for ``preset``."""
    shape = SHAPES[preset.model]
    weights = shape.parameters() * BF16
    trained = len(shape.target_weights()) * preset.rank**2 * 4 * 4  # float32 cores, gradients, two moments
    found = {"training step": weights + shape.activation_bytes(preset.batch * preset.tokens) + trained}
    base = weights + shape.activation_bytes(preset.init_batch * preset.tokens)
    targets = shape.target_weights()
    for mode, options in MODES.items():
        found[f"init, {mode}"] = base + needed_bytes(targets, options, "sign", on_device=not options.offload)
    found["init, reference-style"] = base + shape.parameters() * BF16
    return found


NF4_BITS = 4 + 8 / 64 + 32 / (64 * 256)
FLOAT32 = 4
QUANTIZED_LOGIT_BYTES = 12
LEANEST = AccumulatorOptions(offload=True)
GPUS = {"24 GiB": 24 * GIB, "16 GiB": 16 * GIB}


def quantized_peaks(preset: Preset) -> dict[str, int]:
    """Peak bytes of the nf4 weights, of a training step and of the initialisation (nf4 base,
    gradient checkpointing, sums offloaded) for ``preset``."""
    shape = SHAPES[preset.model]
    targets = {name: torch.empty(w.shape, device="meta", dtype=torch.float32) for name, w in shape.target_weights().items()}
    projections = sum(w.numel() for w in targets.values())
    weights = int(projections * NF4_BITS / 8) + (shape.parameters() - projections) * FLOAT32
    block = 6 * shape.hidden + 2 * shape.kv_heads * shape.head_dim + 4 * shape.intermediate

    def activations(tokens: int) -> int:
        return tokens * ((shape.layers * shape.hidden + block) * FLOAT32 + shape.vocab * QUANTIZED_LOGIT_BYTES)

    trained = len(targets) * preset.rank**2 * 4 * 4
    return {
        "nf4 weights": weights,
        "training step": weights + activations(preset.batch * preset.tokens) + trained,
        "init": weights + activations(preset.init_batch * preset.tokens) + needed_bytes(targets, LEANEST, "sign", on_device=False),
    }


def quantized_markdown() -> str:
    lines = [
        "| preset | batch × tokens (init) | nf4 weights | training step | init (offload) | fits " + " | fits ".join(GPUS) + " |",
        "| --- | --- | --- | --- | --- | " + " | ".join("---" for _ in GPUS) + " |",
    ]
    for preset in PRESETS:
        found = quantized_peaks(preset)
        peak = max(found["training step"], found["init"])
        fits = ["yes" if peak <= size else "no" for size in GPUS.values()]
        cells = [f"{found[c] / GIB:.1f}" for c in ("nf4 weights", "training step", "init")]
        lines.append(f"| `{preset.name}` | {preset.batch} × {preset.tokens} ({preset.init_batch}) | " + " | ".join(cells + fits) + " |")
    return "\n".join(lines)


def markdown() -> str:
    columns = list(peaks(PRESETS[0]))
    lines = [
        "| preset | batch × tokens (init) | " + " | ".join(columns) + " |",
        "| --- | --- | " + " | ".join("---" for _ in columns) + " |",
    ]
    for preset in PRESETS:
        found = peaks(preset)
        step = found["training step"]
        cells = [f"{found[c] / GIB:.1f}" + ("" if c == "training step" else f" ({found[c] / step:.2f}×)") for c in columns]
        cells = [c + ("" if found[name] <= GPU_BYTES else " ✗") for c, name in zip(cells, columns)]
        lines.append(f"| `{preset.name}` | {preset.batch} × {preset.tokens} ({preset.init_batch}) | " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    argparse.ArgumentParser(prog="python -m lorasb.bench.on_paper", description=__doc__.split("\n\n")[0]).parse_args()
    print(f"GiB; ✗: more than one {GPU_BYTES // GIB} GiB GPU; (×): the training step's peak")
    print(markdown())
    print()
    print("nf4 base, gradient checkpointing, init sums offloaded (GiB); fits: the larger of the two peaks")
    print(quantized_markdown())
