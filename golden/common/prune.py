"""Gradual magnitude pruning, shared by the example networks' trainings (sparse weights are what
the LoAS core thrives on)."""

from __future__ import annotations

import torch

__all__ = ["prune_step"]


def prune_step(weights, masks, epoch: int, epochs: int, sparsity: float) -> None:
    """The pruning of one epoch: the target sparsity follows Zhu & Gupta's cubic schedule over
    the middle of training (from 10 % to 60 % of the epochs); each weight tensor keeps its
    largest-magnitude entries, its mask (same shape, 0/1) records them. In place."""
    progress = min(1.0, max(0.0, (epoch - 0.1 * epochs) / (0.5 * epochs)))
    target = sparsity * (1 - (1 - progress) ** 3)
    if target <= 0:
        return
    with torch.no_grad():
        for w, mask in zip(weights, masks):
            keep = max(1, int(round(w.numel() * (1 - target))))
            if keep < w.numel():
                cut = w.abs().flatten().kthvalue(w.numel() - keep).values
                mask.copy_((w.abs() > cut).float())
                w.mul_(mask)
