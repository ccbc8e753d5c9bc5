"""The benchmarked arms: each builds its model once, then ``run()`` is the measured call.

Training-step arms (one forward + backward + AdamW step on one batch):

    floor    the frozen model; only the input embeddings' output requires grad, so backward runs
             through every layer without any parameter gradient (forward + backward only)
    lora_sb  this package's B·R·A layer on the targets (the model's head trains in full)
    lora     PEFT's LoRA, same rank, targets and head
    full     every weight trains

Evaluation arms (a forward pass on one batch, no gradients):

    lora_sb  the B·R·A layers as trained
    merged   the same model with every adapter folded into its weight (``lorasb.merge``)

Generation arms (causal LMs; greedy, ``NEW_TOKENS`` tokens after each prompt of one batch):
``lora_sb`` and ``merged`` as above.

Quantized-base arms (causal LMs, ``--groups quantized``; bitsandbytes): the training step of
``lora_sb`` and ``lora`` on the float base and on its nf4 and int8 quantizations, ``<method>[<base>]``.

Initialisation arms (the gradient pass over the initialisation samples, then the SVD):

    passes           the same forward/backward passes (zero cores bypassed, as the estimate does)
                     with only the target weights requiring grad, ΣG left in their ``.grad`` by
                     autograd: the least any estimate costs
    lora_sb[<mode>]  this package's estimation and LoRA-SB's SVD; ``<mode>`` is a key of
                     INIT_MODES, the accumulator options (``init.accumulator_dtype``,
                     ``init.offload``, ``init.layer_groups``) given to ``accumulate_gradients``
    reference        the reference implementation's estimation (:mod:`lorasb.bench.reference`)
    lora_ga          PEFT's ``preprocess_loraga`` and LoRA-GA's initialisation in ``get_peft_model``
"""

from __future__ import annotations

import gc
import math
from collections.abc import Callable
from dataclasses import dataclass, replace

import torch
from peft import preprocess_loraga

from lorasb.bench.measure import seconds
from lorasb.bench.models import ModelSpec, load, random_batches
from lorasb.bench.reference import reference_style_gradient_sums
from lorasb.method.attach import adapters, bypassing_empty_adapters, merge
from lorasb.method.cache import GradientCache, Gradients
from lorasb.method.estimate import accumulate_gradients
from lorasb.method.memory import AccumulatorOptions
from lorasb.method.registry import build_method

INIT_MODES: dict[str, AccumulatorOptions] = {
    "default": AccumulatorOptions(),
    "bf16": AccumulatorOptions(dtype="bfloat16"),
    "offload": AccumulatorOptions(offload=True),
    "groups4": AccumulatorOptions(layer_groups=4),
}
FIRST_STEP_LR = 1e-4  # scales LoRA-SB's R; the time does not depend on it
NEW_TOKENS = 32  # generated after each prompt by the generation arms


@dataclass(frozen=True)
class Settings:
    """What every arm shares."""

    model: ModelSpec
    batch: int
    seq_len: int
    rank: int
    init_samples: int
    device: str
    seed: int = 0


def training_batch(settings: Settings, model) -> dict:
    s = settings
    return random_batches(s.model, model.config.vocab_size, 1, s.batch, s.seq_len, s.device, s.seed)[0]


def init_batches(settings: Settings, model) -> list[dict]:
    """``init_samples`` random samples in batches of ``batch`` (the last one possibly smaller)."""
    s = settings
    count = math.ceil(s.init_samples / s.batch)
    batches = random_batches(s.model, model.config.vocab_size, count, s.batch, s.seq_len, s.device, s.seed + 1)
    last = s.init_samples - (count - 1) * s.batch
    batches[-1] = {k: v[:last] for k, v in batches[-1].items()}
    return batches


class TrainingStep:
    """One optimizer step of the model as adapted by ``adapt``."""

    def __init__(self, settings: Settings, adapt: Callable):
        model = load(settings.model, settings.device)
        self.model = adapt(model, settings)
        self.batch = training_batch(settings, model)
        trained = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(trained) if trained else None

    def prepare(self) -> None:
        """Nothing to reset between steps."""

    def run(self) -> dict[str, float]:
        self.model(**self.batch).loss.backward()
        if self.optimizer is not None:
            self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)
        return {}


def frozen(model, settings: Settings):
    model.requires_grad_(False)
    model.enable_input_require_grads()
    return model


def adapted_by(method: str) -> Callable:
    def adapt(model, settings: Settings):
        spec = settings.model
        return build_method(method, settings.rank).attach(model, spec.targets, spec.head)

    return adapt


class EvalForward:
    """A no-grad forward of a LoRA-SB model in eval mode, its adapters merged or not."""

    def __init__(self, settings: Settings, merged: bool):
        model = load(settings.model, settings.device)
        self.model = adapted_by("lora_sb")(model, settings).eval()
        if merged:
            merge(self.model)
        self.batch = training_batch(settings, model)

    def prepare(self) -> None:
        """Nothing changes between forwards."""

    @torch.no_grad()
    def run(self) -> dict[str, float]:
        self.model(**self.batch)
        return {}


class Generation(EvalForward):
    """Greedy generation of ``NEW_TOKENS`` tokens after each prompt of one batch (a causal LM)."""

    @torch.no_grad()
    def run(self) -> dict[str, float]:
        ids, mask = self.batch["input_ids"], self.batch["attention_mask"]
        self.model.generate(
            input_ids=ids, attention_mask=mask, max_new_tokens=NEW_TOKENS, min_new_tokens=NEW_TOKENS, do_sample=False, pad_token_id=0
        )
        return {}


class LoraSBInit:
    """This package's gradient pass (``options`` go to ``accumulate_gradients``), then LoRA-SB's SVD."""

    def __init__(self, settings: Settings, options: AccumulatorOptions):
        self.settings, self.options = settings, options
        self.method = build_method("lora_sb", settings.rank)
        model = load(settings.model, settings.device)
        self.model = self.method.attach(model, settings.model.targets, settings.model.head)
        self.batches = init_batches(settings, model)

    def prepare(self) -> None:
        """Zero cores, as before a run's initialisation (which then overwrites the factors)."""
        for layer in adapters(self.model).values():
            layer.lora_R.data.zero_()

    def run(self) -> dict[str, float]:
        """As a run does it: each group of layers decomposed as soon as its signs are final."""
        device, svd = self.settings.device, []
        memo = GradientCache(None, {}).memo  # in memory only, new for every run
        weights = self.method.target_weights(self.model)

        def prepare(group):
            kept = {}
            svd.append(seconds(lambda: kept.update(self.method.digest_group(self.model, group, memo)), device))
            return kept

        signs = {}
        form = self.method.gradient_form
        passes = seconds(lambda: signs.update(accumulate_gradients(self.model, self.batches, weights, form=form, options=self.options, on_group=prepare)), device)
        gradients = Gradients(signs, batches=len(self.batches), samples=self.settings.init_samples)
        svd.append(seconds(lambda: self.method.initialize(self.model, gradients, FIRST_STEP_LR, memo), device))
        return {"gradients": passes - sum(svd[:-1]), "svd": sum(svd)}


class PlainPasses:
    """The forward/backward passes of the initialisation with autograd summing the target
    weights' gradients into ``.grad``: no hooks, no sums of our own, no SVD."""

    def __init__(self, settings: Settings):
        self.device = settings.device
        method = build_method("lora_sb", settings.rank)
        model = load(settings.model, settings.device)
        self.model = method.attach(model, settings.model.targets, settings.model.head).requires_grad_(False)
        self.weights = list(method.target_weights(self.model).values())
        self.batches = init_batches(settings, model)

    def prepare(self) -> None:
        for weight in self.weights:
            weight.grad = None
            weight.requires_grad_(True)

    def run(self) -> dict[str, float]:
        def passes():
            with bypassing_empty_adapters(self.model):  # as the estimate runs the zero cores
                for batch in self.batches:
                    self.model(**batch).loss.backward()

        return {"gradients": seconds(passes, self.device)}


class ReferenceInit:
    """The reference implementation's gradient pass (every parameter, summed on the CPU)."""

    def __init__(self, settings: Settings):
        self.device = settings.device
        self.model = load(settings.model, settings.device)
        self.batches = init_batches(settings, self.model)

    def prepare(self) -> None:
        """Nothing to reset: the gradients are cleared batch by batch."""

    def run(self) -> dict[str, float]:
        return {"gradients": seconds(lambda: reference_style_gradient_sums(self.model, self.batches), self.device)}


class LoraGAInit:
    """PEFT's LoRA-GA: ``preprocess_loraga``'s gradient pass, then ``get_peft_model``'s SVD
    initialisation (which changes the model, so each run gets a freshly loaded one)."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.method = build_method("lora_ga", settings.rank)
        self.model = None
        self.batches = None

    def prepare(self) -> None:
        self.model = None
        gc.collect()
        self.model = load(self.settings.model, self.settings.device)
        self.batches = self.batches or init_batches(self.settings, self.model)

    def train_step(self) -> None:
        for batch in self.batches:
            self.model(**batch).loss.backward()

    def run(self) -> dict[str, float]:
        spec, device = self.settings.model, self.settings.device
        config = self.method.lora_config(spec.targets, spec.head)
        gradients = seconds(lambda: preprocess_loraga(self.model, config, self.train_step), device)
        svd = seconds(lambda: self.method.attach(self.model, spec.targets, spec.head), device)
        return {"gradients": gradients, "svd": svd}


TRAINING: dict[str, Callable[[Settings], object]] = {
    "floor": lambda s: TrainingStep(s, frozen),
    "lora_sb": lambda s: TrainingStep(s, adapted_by("lora_sb")),
    "lora": lambda s: TrainingStep(s, adapted_by("lora")),
    "full": lambda s: TrainingStep(s, adapted_by("full")),
}
EVALUATION: dict[str, Callable[[Settings], object]] = {
    "lora_sb": lambda s: EvalForward(s, merged=False),
    "merged": lambda s: EvalForward(s, merged=True),
}
GENERATION: dict[str, Callable[[Settings], object]] = {
    "lora_sb": lambda s: Generation(s, merged=False),
    "merged": lambda s: Generation(s, merged=True),
}
INITIALISATION: dict[str, Callable[[Settings], object]] = {
    "passes": PlainPasses,
    **{f"lora_sb[{mode}]": (lambda s, options=options: LoraSBInit(s, options)) for mode, options in INIT_MODES.items()},
    "reference": ReferenceInit,
    "lora_ga": LoraGAInit,
}
BASES = {"float": None, "nf4": "nf4", "int8": "int8"}


def on_base(settings: Settings, quantization: str | None) -> Settings:
    return replace(settings, model=replace(settings.model, quantization=quantization))


QUANTIZED: dict[str, Callable[[Settings], object]] = {
    f"{method}[{base}]": (lambda s, method=method, q=q: TrainingStep(on_base(s, q), adapted_by(method)))
    for method in ("lora_sb", "lora")
    for base, q in BASES.items()
}
GROUPS = {"training": TRAINING, "evaluation": EVALUATION, "generation": GENERATION, "initialisation": INITIALISATION, "quantized": QUANTIZED}
DEFAULT_GROUPS = ("training", "evaluation", "generation", "initialisation")


def groups_of(kind: str, chosen: list[str] | None = None) -> list[str]:
    """The groups a model of ``kind`` is measured in (``chosen``, else the default ones): generation
    and quantized bases only for a causal LM."""
    causal_only = ("generation", "quantized")
    return [group for group in (chosen or DEFAULT_GROUPS) if group not in causal_only or kind == "causal_lm"]
