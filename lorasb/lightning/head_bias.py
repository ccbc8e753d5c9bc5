"""``init.head_bias=prior``: a new classifier head starts by predicting the training labels' prior.

A freshly initialised head has a zero output bias, so it starts at the uniform prediction. On
an imbalanced task (CoLA is 70% acceptable) the first optimizer steps then mostly learn the
label prior, which the bias alone could hold: the first-step gradient ΣG that LoRA-SB's
initialisation decomposes, and the short range test of ``optim.lr=auto``, both measure how fast
the prior is learnt (the largest lr learns it fastest), not the task. Starting the bias at the
log class frequencies of the training rows (regression: their mean) makes the starting loss the
entropy of the prior, so both see only what the encoder's features add to it.
"""

from __future__ import annotations

import logging

import torch
from torch import nn

log = logging.getLogger(__name__)


def prior_bias(labels: torch.Tensor, num_labels: int) -> torch.Tensor:
    """The log frequency of each class among ``labels`` (add-one smoothed, so never -inf), or for
    a regression (``num_labels`` 1) the mean label."""
    if num_labels == 1:
        return labels.double().mean().reshape(1)
    counts = torch.bincount(labels.long(), minlength=num_labels).double() + 1
    return (counts / counts.sum()).log()


def output_layer(model: nn.Module, num_labels: int) -> nn.Linear | None:
    """The trained layer that produces the logits: the last linear layer with ``num_labels``
    outputs and a trainable bias (under PEFT, the trained copy of the head)."""
    layers = [
        module
        for module in model.modules()
        if isinstance(module, nn.Linear)
        and module.out_features == num_labels
        and module.bias is not None
        and module.bias.requires_grad
    ]
    return layers[-1] if layers else None


@torch.no_grad()
def set_prior_bias(model: nn.Module, labels: torch.Tensor, num_labels: int) -> torch.Tensor | None:
    """Write :func:`prior_bias` into the output layer's bias; the bias written, or None (with a
    warning) where the model has no such layer."""
    layer = output_layer(model, num_labels)
    if layer is None:
        log.warning("init.head_bias=prior: no trainable linear layer with %d outputs and a bias; the head keeps its own", num_labels)
        return None
    bias = prior_bias(labels, num_labels)
    layer.bias.copy_(bias.to(layer.bias.dtype))
    return bias
