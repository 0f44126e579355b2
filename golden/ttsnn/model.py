"""Float model of one TT-SNN layer over T steps: the TT pipelines, the TT-SNN neuron, and BPTT
written out step by step (surrogate gradient, the transposed cores, the core gradients) -- the
order of work the hardware follows, checked against ``torch.autograd``.

Tensors are ``[..., C, H, W]`` (any leading dimensions: a batch, the steps). The 3x1 / 1x3 cores
are written as shifts along one axis with zero padding, as the line buffers compute them:
``kh(x, g)[b, y, x] = sum_{c,h} g[b, c, h] x[c, y + h - 1, x]``.

Neuron (TT-SNN's MS-ResNet LIF, hard reset, the reset's spike detached):
``u_t = lam * u_{t-1} * (1 - s_{t-1}) + y_t``, ``s_t = [u_t > theta]``; surrogate
``ds/du = [|u - theta| < a]`` (the paper: lam 0.25, theta 0.5, a 0.5).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .tt import TTCores, check_htt_full, check_mode

__all__ = ["NeuronParams", "g1_conv", "kh_conv", "kw_conv", "kh_conv_t", "kw_conv_t",
           "kh_grad", "kw_grad", "is_late", "tt_step", "layer_forward", "layer_backward",
           "Spike", "layer_autograd"]


@dataclass(frozen=True)
class NeuronParams:
    lam: float = 0.25
    theta: float = 0.5
    a: float = 0.5


# -- the cores as convolutions and their transposes ----------------------------------------------
def g1_conv(s, g1):
    """1x1: ``[..., Cin, H, W] -> [..., r, H, W]``."""
    return torch.einsum("rc,...chw->...rhw", g1, s)


def _shifted(x, axis, k):
    """``x`` shifted by ``k - 1`` along ``axis`` (-2: H, -1: W), zeros shifted in."""
    n = x.shape[axis]
    pad = (0, 0, 1, 1) if axis == -2 else (1, 1)
    return F.pad(x, pad).narrow(axis, k, n)


def _axis_conv(x, g, axis):
    return sum(torch.einsum("bc,...chw->...bhw", g[:, :, k], _shifted(x, axis, k))
               for k in range(3))


def _axis_conv_t(d, g, axis):
    # d[y] feeds x[y + k - 1] through tap k: x gets d shifted the other way.
    return sum(torch.einsum("bc,...bhw->...chw", g[:, :, k], _shifted(d, axis, 2 - k))
               for k in range(3))


def _axis_grad(d, x, axis):
    lead = "".join("ABDEFGIJKLMN"[:d.dim() - 3])
    return torch.stack([torch.einsum(f"{lead}bhw,{lead}chw->bc", d, _shifted(x, axis, k))
                        for k in range(3)], dim=-1)


def kh_conv(x, g2):
    """3x1 along H, zero padding (1, 0)."""
    return _axis_conv(x, g2, -2)


def kw_conv(x, g3):
    """1x3 along W, zero padding (0, 1)."""
    return _axis_conv(x, g3, -1)


def kh_conv_t(d, g2):
    """The transpose of :func:`kh_conv` (gradient with respect to its input)."""
    return _axis_conv_t(d, g2, -2)


def kw_conv_t(d, g3):
    return _axis_conv_t(d, g3, -1)


def kh_grad(d, x):
    """The gradient of :func:`kh_conv`'s core, summed over positions and leading dims."""
    return _axis_grad(d, x, -2)


def kw_grad(d, x):
    return _axis_grad(d, x, -1)


def is_late(mode: str, t: int, htt_full: int) -> bool:
    """HTT's steps from ``htt_full`` on skip G2 and G3."""
    return mode == "htt" and t >= htt_full


def tt_step(s, cores: TTCores, mode: str, *, late: bool = False):
    """One step's currents ``y`` and the intermediates BPTT needs: ``(y, o1, z2, z3)``."""
    o1 = g1_conv(s, cores.g1)
    z2 = z3 = None
    if late:
        mid = o1
    elif mode == "stt":
        z2 = kh_conv(o1, cores.g2)
        z3 = kw_conv(z2, cores.g3)
        mid = z3
    else:
        mid = (kh_conv(o1, cores.g2) + kw_conv(o1, cores.g3)) / 2
        z3 = mid
    return torch.einsum("oa,...ahw->...ohw", cores.g4, mid), o1, z2, z3


@dataclass
class LayerState:
    """What the forward keeps for BPTT: each step's input spikes, o1, z2 (STT), the G4 input,
    membrane and output spikes."""

    spikes_in: torch.Tensor
    o1: list
    z2: list
    mid: list
    u: torch.Tensor
    s: torch.Tensor


def layer_forward(spikes, cores: TTCores, mode: str, *, htt_full: int | None = None,
                  neuron: NeuronParams = NeuronParams()):
    """Spikes ``[T, ..., Cin, H, W]`` -> ``(y, u, s, state)`` each ``[T, ..., Cout, H, W]``."""
    check_mode(mode)
    T = spikes.shape[0]
    htt_full = check_htt_full(T if htt_full is None else htt_full, T)
    ys, o1s, z2s, mids = [], [], [], []
    for t in range(T):
        late = is_late(mode, t, htt_full)
        y, o1, z2, z3 = tt_step(spikes[t], cores, mode, late=late)
        ys.append(y)
        o1s.append(o1)
        z2s.append(z2)
        mids.append(o1 if late else z3)
    y = torch.stack(ys)
    u, s = torch.zeros_like(y), torch.zeros_like(y)
    for t in range(T):
        prev = neuron.lam * u[t - 1] * (1 - s[t - 1]) if t else 0
        u[t] = prev + y[t]
        s[t] = (u[t] > neuron.theta).to(y.dtype)
    return y, u, s, LayerState(spikes, o1s, z2s, mids, u, s)


def layer_backward(grad_s, state: LayerState, cores: TTCores, mode: str, *,
                   htt_full: int | None = None, neuron: NeuronParams = NeuronParams()):
    """BPTT from the output spikes' gradients ``[T, ..., Cout, H, W]``: ``(grad_in, grad_cores,
    grad_u)`` -- the input spikes' gradients, the four core gradients (summed over steps,
    positions and leading dims) and each step's membrane gradient."""
    T = grad_s.shape[0]
    htt_full = check_htt_full(T if htt_full is None else htt_full, T)
    g1, g2, g3, g4 = cores.g1, cores.g2, cores.g3, cores.g4
    d1, d2, d3, d4 = (torch.zeros_like(c) for c in (g1, g2, g3, g4))
    grad_in = torch.zeros_like(state.spikes_in)
    grad_u = torch.zeros_like(state.u)
    carry = torch.zeros_like(state.u[0])
    lead = "".join("ABDEFGIJKLMN"[:grad_s.dim() - 4])
    for t in reversed(range(T)):
        surrogate = ((state.u[t] - neuron.theta).abs() < neuron.a).to(grad_s.dtype)
        du = grad_s[t] * surrogate + carry
        grad_u[t] = du
        if t:           # u_t = lam u_{t-1} (1 - s_{t-1}) + y_t
            carry = du * neuron.lam * (1 - state.s[t - 1])
        dy = du
        d4 += torch.einsum(f"{lead}ohw,{lead}ahw->oa", dy, state.mid[t])
        dmid = torch.einsum("oa,...ohw->...ahw", g4, dy)
        if is_late(mode, t, htt_full):
            do1 = dmid
        elif mode == "stt":
            d3 += kw_grad(dmid, state.z2[t])
            dz2 = kw_conv_t(dmid, g3)
            d2 += kh_grad(dz2, state.o1[t])
            do1 = kh_conv_t(dz2, g2)
        else:
            dz = dmid / 2
            d2 += kh_grad(dz, state.o1[t])
            d3 += kw_grad(dz, state.o1[t])
            do1 = kh_conv_t(dz, g2) + kw_conv_t(dz, g3)
        d1 += torch.einsum(f"{lead}rhw,{lead}ihw->ri", do1, state.spikes_in[t])
        grad_in[t] = torch.einsum("ri,...rhw->...ihw", g1, do1)
    return grad_in, TTCores(d1, d2, d3, d4), grad_u


class Spike(torch.autograd.Function):
    """``[u > theta]`` forward, the rectangular surrogate ``[|u - theta| < a]`` backward."""

    @staticmethod
    def forward(ctx, u, theta, a):
        ctx.save_for_backward(u)
        ctx.theta, ctx.a = theta, a
        return (u > theta).to(u.dtype)

    @staticmethod
    def backward(ctx, grad):
        (u,) = ctx.saved_tensors
        return grad * ((u - ctx.theta).abs() < ctx.a).to(grad.dtype), None, None


def layer_autograd(spikes, cores: TTCores, mode: str, *, htt_full: int | None = None,
                   neuron: NeuronParams = NeuronParams()):
    """The same layer as differentiable torch ops (for ``torch.autograd`` and training):
    ``(y, u, s)``."""
    check_mode(mode)
    T = spikes.shape[0]
    htt_full = check_htt_full(T if htt_full is None else htt_full, T)
    ys, us, ss = [], [], []
    u = s = None
    for t in range(T):
        y = tt_step(spikes[t], cores, mode, late=is_late(mode, t, htt_full))[0]
        u = y if t == 0 else neuron.lam * u * (1 - s.detach()) + y
        s = Spike.apply(u, neuron.theta, neuron.a)
        ys.append(y)
        us.append(u)
        ss.append(s)
    return torch.stack(ys), torch.stack(us), torch.stack(ss)
