"""The LoRA-SB initialisation as a transformers ``TrainerCallback``.

``on_train_begin`` is where a ``Trainer`` (or TRL's ``SFTTrainer``) has built everything the
initialisation needs and taken no step: the model on its device, wrapped for data parallel;
the optimizer holding the cores; the scheduler; the training dataloader with its collator,
sampler, per-process sharding and device placement. The callback reads the first batches of
that dataloader (by default the micro-batches of the first optimizer step:
``gradient_accumulation_steps`` on each process), estimates ΔW = −lr₁·sign(ΣG) with ΣG summed over
every process before the sign (:func:`lorasb.estimate_update`), and writes B, R, A in place
(:func:`lorasb.initialize`) into the tensors the optimizer holds; every process ends with rank 0's. The pass draws
its dropout masks from the trainer's ``seed``.
A run resumed from a checkpoint (``global_step`` > 0) or a model whose cores are already set
keeps them.
"""

from __future__ import annotations

import logging
from itertools import islice

from transformers import TrainerCallback

from lorasb.integrations.distributed import broadcast_factors, sum_across_processes
from lorasb.integrations.first_lr import first_step_lr
from lorasb.method.attach import adapters
from lorasb.method.estimate import estimate_update
from lorasb.method.initialize import SVDConfig, initialize
from lorasb.method.memory import AccumulatorOptions

log = logging.getLogger(__name__)


class LoraSBCallback(TrainerCallback):
    """Initialise a model's LoRA-SB adapters (:func:`lorasb.integrations.attach_for_trainer`) when training begins.

    Args:
        num_batches: batches of the training dataloader each process sums over (default: the
            trainer's ``gradient_accumulation_steps``, the first optimizer step's micro-batches).
        first_lr: lr₁ (default: the first moving step's lr from the trainer's optimizer and
            scheduler, :func:`lorasb.integrations.first_lr.first_step_lr`).
        svd: the truncated SVD's settings.
        accumulator: how the gradient sums are held (dtype, CPU offload, layer groups).

    After initialising it holds ``first_lr`` (the lr₁ used), ``batches`` (how many batches this
    process read) and ``stats`` (per layer: relative error and singular values).
    """

    def __init__(
        self,
        num_batches: int | None = None,
        first_lr: float | None = None,
        svd: SVDConfig = SVDConfig(),
        accumulator: AccumulatorOptions = AccumulatorOptions(),
    ):
        if num_batches is not None and num_batches < 1:
            raise ValueError(f"num_batches must be at least 1, got {num_batches}")
        self.num_batches = num_batches
        self.first_lr = first_lr
        self.svd = svd
        self.accumulator = accumulator
        self.batches: int | None = None
        self.stats: dict = {}

    def on_train_begin(self, args, state, control, model=None, optimizer=None, lr_scheduler=None, train_dataloader=None, **kwargs):
        layers = adapters(model)
        if not layers:
            raise ValueError("the model has no LoRA-SB layers: call lorasb.integrations.attach_for_trainer before building the trainer")
        if state.global_step > 0:
            log.info("LoRA-SB: resumed at step %d, the adapters as the checkpoint holds them", state.global_step)
            return
        if any(bool(layer.lora_R.any()) for layer in layers.values()):
            log.info("LoRA-SB: the adapters are initialised already; kept")
            return
        if train_dataloader is None:
            raise ValueError("LoraSBCallback needs the trainer's training dataloader (transformers passes it to on_train_begin)")
        lr = self.first_lr or first_step_lr(optimizer, lr_scheduler, [layer.lora_R for layer in layers.values()])
        batches = list(islice(train_dataloader, self.num_batches or args.gradient_accumulation_steps))
        reduce = sum_across_processes(args.device)
        updates = estimate_update(model, batches, lr, reduce=reduce, options=self.accumulator, seed=args.seed)
        self.stats = initialize(model, updates, self.svd)
        broadcast_factors(model)
        self.first_lr, self.batches = lr, len(batches)
        mean_error = sum(s.relative_error for s in self.stats.values()) / len(self.stats)
        log.info(
            "LoRA-SB initialised %d layers from %d batches on each process (first-step lr %.3g), mean relative error %.3f",
            len(layers), len(batches), lr, mean_error,
        )
