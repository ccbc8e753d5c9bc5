"""``optim.lr=auto``: the peak learning rate chosen by a short range test before training.

Every candidate lr starts from the same state: the method's initialisation for that lr, the
same training batches, the same dropout draws. It takes ``steps`` AdamW steps at that constant
lr and is scored by its mean loss on other training rows, held out of those steps (the
validation set is never used; training afterwards uses every row, from the restored state, so a
run that chose lr x trains exactly as one started with lr x).

Candidates are tried from the largest down, and the walk stops at the first one that scores
clearly worse than the best so far, once that best has clearly improved on the model before any
step: the held-out loss against the lr falls as the lr grows until the steps start to overshoot,
so once a smaller lr does worse than one that made progress, still smaller ones only make less.
While no candidate has beaten the untrained model, the larger ones are all overshooting (their
loss can even rise as the lr falls, when a very large lr lands somewhere merely bad) and the walk
goes on. "Clearly" is measured, because neighbouring candidates often differ by less than the
noise of a few hundred scored rows: every loss is taken on the same batches, and one is clearly
above another when their mean difference exceeds ``stop_z`` standard errors, paired over those
batches (on MiniLM with 256 scored rows the standard error is 0.005 to 0.03 nats, as large as
the gaps between neighbours). The lowest score wins, and every tensor is put back before
training starts. Starting at the top also meets a diverging lr first (a non-finite loss, scored
inf, never stops the walk).

When no candidate clearly beats the untrained model, the test cannot tell the candidates apart
(a task slow to learn, such as CoLA on a small encoder, moves no candidate beyond the noise in
a few steps): the lowest score is then noise, and the middle candidate (the lower of two) is
taken instead, the lr whose distance, in orders of magnitude, to the farthest candidate of the
range the method declares plausible is smallest.

Why it is cheap for LoRA-SB: B and A come from the SVD of sign(ΣG), which does not depend on
the lr, and R = lr₁·S_r/s scales with it; the SVD is memoised, so a candidate costs one
rewrite of R and a few optimizer steps, never a new estimate or SVD.

Why it works: Adam moves every trained entry by about lr per step whatever the gradient's
scale, so the lr sets how far the few trained directions travel. Too small and the held-out
loss barely moves in the first steps; too large and the steps overshoot, which shows in the
loss of rows the steps never saw once there have been enough steps (8 steps of 8 rows were too
few: the scores bunched together and favoured the largest candidate; 16 steps of 16 rows
separate them). The first steps at the peak lr are where a fine-tuning run is decided (it warms
up to that lr and then only decays), so the lr that makes the best progress there without
overshooting is the one to train with.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass

import torch
from torch import nn
from tqdm.auto import tqdm

Batch = dict[str, torch.Tensor]


@dataclass(frozen=True)
class SearchResult:
    """The chosen lr, the held-out loss of each candidate tried (inf where it diverged), largest
    first, that of the model before any step, whether a candidate clearly beat it (else the
    middle candidate is chosen), and the seconds spent."""

    lr: float
    scores: dict[float, float]
    untrained: float
    conclusive: bool
    seconds: float


@torch.no_grad()
def held_out_losses(model: nn.Module, batches: Iterable[Batch]) -> list[float]:
    """The mean loss of each of ``batches``, in eval mode."""
    model.eval()
    return [float(model(**batch).loss) for batch in batches]


def _mean(losses: Sequence[float], sizes: Sequence[int]) -> float:
    """The mean loss per row of batches of ``sizes`` rows with mean ``losses``."""
    return sum(size * value for size, value in zip(sizes, losses)) / sum(sizes)


def clearly_worse(losses: Sequence[float], best: Sequence[float], sizes: Sequence[int], z: float) -> bool:
    """Whether per-batch ``losses`` exceed ``best`` (the same batches, of ``sizes`` rows) on average
    by more than ``z`` standard errors of the mean difference, the batches taken as the units."""
    weights = torch.tensor(sizes, dtype=torch.float64) / sum(sizes)
    difference = torch.tensor(losses, dtype=torch.float64) - torch.tensor(best, dtype=torch.float64)
    mean = float(weights @ difference)
    n = len(sizes)
    error = math.sqrt(float((weights**2) @ (difference - mean) ** 2) * n / (n - 1)) if n > 1 else 0.0
    return mean > z * error


def take_steps(
    model: nn.Module,
    lr: float,
    batches: Iterable[Batch],
    optimizer_options: dict,
    clip_norm: float | None = None,
) -> None:
    """AdamW steps at a constant ``lr`` on the trainable parameters, one per batch."""
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=lr, **optimizer_options)
    model.train()
    for batch in batches:
        model(**batch).loss.backward()
        if clip_norm:
            nn.utils.clip_grad_norm_(params, clip_norm)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)


def search_lr(
    model: nn.Module,
    candidates: Sequence[float],
    initialize: Callable[[float], object],
    state_names: Iterable[str],
    train_batches: Sequence[Batch],
    holdout_batches: Sequence[Batch],
    optimizer_options: dict,
    clip_norm: float | None = None,
    seed: int = 0,
    stop_z: float = 2.0,
    forward_context: Callable[[], AbstractContextManager] = nullcontext,
    progress: bool = False,
) -> SearchResult:
    """The candidate lr with the lowest held-out loss after a few steps, walking down from the
    largest until a candidate scores worse than the best by more than ``stop_z`` standard errors,
    where the best has beaten the model before any step by as much; the middle candidate where
    none has (module docstring).

    ``initialize(lr)`` writes the method's initialisation for peak lr ``lr``; ``state_names``
    are the parameters it writes or training changes, restored after every candidate.
    ``progress`` shows a bar over the candidates with the last one's score.
    """
    if not candidates:
        raise ValueError("optim.auto_lr.candidates is empty: give the learning rates to try")
    start = time.perf_counter()
    parameters = dict(model.named_parameters())
    saved = {name: parameters[name].detach().clone() for name in state_names}
    devices = [p.device for p in saved.values() if p.device.type == "cuda"][:1]
    sizes = [len(batch["input_ids"]) for batch in holdout_batches]
    with forward_context():
        untrained = held_out_losses(model, holdout_batches)
    scores, losses = {}, {}

    def beats_untrained(lr: float) -> bool:
        return math.isfinite(scores[lr]) and clearly_worse(untrained, losses[lr], sizes, stop_z)

    walk = tqdm(total=len(candidates), desc="optim.lr=auto: trying learning rates", disable=not progress)
    for lr in sorted(candidates, reverse=True):
        with torch.random.fork_rng(devices=devices), forward_context():
            torch.manual_seed(seed)
            initialize(lr)
            take_steps(model, lr, train_batches, optimizer_options, clip_norm)
            losses[lr] = held_out_losses(model, holdout_batches)
        loss = _mean(losses[lr], sizes)
        scores[lr] = loss if math.isfinite(loss) else math.inf
        walk.set_postfix_str(f"held-out loss at {lr:g}: {scores[lr]:.4f}", refresh=False)
        walk.update()
        with torch.no_grad():
            for name, tensor in saved.items():
                parameters[name].copy_(tensor)
        best = min(scores, key=scores.get)
        if beats_untrained(best) and math.isfinite(scores[lr]) and clearly_worse(losses[lr], losses[best], sizes, stop_z):
            break
    walk.close()
    model.train()
    best = min(scores, key=scores.get)
    if math.isinf(scores[best]):
        raise FloatingPointError(
            f"optim.lr=auto: every candidate lr ({', '.join(f'{lr:g}' for lr in candidates)}) gave a non-finite "
            "loss; try smaller ones (optim.auto_lr.candidates) or set optim.lr to a number"
        )
    conclusive = beats_untrained(best)
    middle = sorted(candidates)[(len(candidates) - 1) // 2]
    chosen = best if conclusive or math.isinf(scores[middle]) else middle
    return SearchResult(chosen, scores, _mean(untrained, sizes), conclusive, time.perf_counter() - start)
