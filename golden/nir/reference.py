"""The float reference of a NIR chain: the graph's own semantics (:mod:`.graph`'s discretisation),
in float64 torch, the yardstick the integer mapping is measured against."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .graph import Stage

__all__ = ["float_forward", "apply_stage"]


def _t(a):
    return torch.as_tensor(a, dtype=torch.float64)


def apply_stage(stage: Stage, x: torch.Tensor) -> torch.Tensor:
    """A stateless stage on a batch ``x [N, *in_shape]``."""
    p = stage.params
    if stage.op in ("Linear", "Affine"):
        return x @ _t(p["weight"]).t() + _t(p["bias"])
    if stage.op == "Conv2d":
        return F.conv2d(x, _t(p["weight"]), _t(p["bias"]), stride=p["stride"],
                        padding=p["padding"])
    if stage.op == "Flatten":
        return x.reshape(x.shape[0], *stage.out_shape)
    pooled = F.avg_pool2d(x, p["kernel"], p["stride"])
    return pooled * (p["kernel"][0] * p["kernel"][1]) if stage.op == "SumPool2d" else pooled


def float_forward(stages: list[Stage], spikes) -> tuple[torch.Tensor, torch.Tensor]:
    """Run the chain on ``spikes [T, N, *input shape]`` (0/1), one step after another.

    Returns the chain's outputs ``[T, N, *output shape]`` (float64; the last neuron layer's
    spikes, through any reshape after it) and that layer's membranes after the last step
    ``[N, *its shape]``."""
    x_all = _t(spikes)
    T, N = x_all.shape[:2]
    state = {}
    outputs, membrane = [], None
    for t in range(T):
        x = x_all[t]
        for stage in stages:
            if not stage.is_neuron:
                x = apply_stage(stage, x)
                continue
            n = stage.params["neuron"]
            v, i = state.get(stage.name, (torch.zeros_like(x), torch.zeros_like(x)))
            i = _t(n.alpha) * i + _t(n.syn_gain) * x
            v = _t(n.beta) * v + _t(n.gain) * i + _t(n.drive)
            z = v > _t(n.threshold)
            v = torch.where(z, _t(n.v_reset).expand_as(v), v)
            state[stage.name] = (v, i)
            x, membrane = z.to(torch.float64), v
        outputs.append(x)
    return torch.stack(outputs), membrane
