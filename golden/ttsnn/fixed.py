"""The fixed-point TT-SNN layer: exactly the integer arithmetic the TT-SNN datapath is specified
to compute, forward and backward, every width, shift, rounding and saturation rule explicit.

Cores are signed ``w_width``-bit integers; input spikes 0/1. Per step ``t``:

* ``a1 = fit(G1 * s, shift_o1, act_width)``                                (AND + accumulate)
* STT: ``a2 = fit(G2 * a1, shift_z2, act_width)``, ``a3 = fit(G3 * a2, shift_z3, act_width)``
* PTT: ``a3 = fit(G2 * a1 + G3 * a1, shift_z3, act_width)`` -- the branches are *summed*; the
  paper's 1/2 is folded into G4's scale (so the integer PTT is twice the float average at equal
  scales, and stays exact)
* HTT: PTT for ``t < htt_full``, then ``a3 = a1`` (G2 and G3 skipped)
* ``y = fit(G4 * a3, shift_y, y_width)``

``fit(x, k, w) = saturate(round(x / 2**k), w)`` with round half up (``(x + 2**(k-1)) >> k``; k = 0
is exact). The neuron is the shared integer LIF (:func:`snnforge.golden.common.lif.lif_integer`):
multiplicative leak ``beta / 2**8`` (the paper's 0.25 is beta = 64), hard reset, spike where
``H > theta`` (the LIF's threshold register holds ``theta + 1``), saturating ``mem_width``
membrane; the per-step membrane ``H`` is traced for BPTT.

Backward from the output spikes' gradients ``gs [T, Cout, H, W]`` (signed ``grad_width``), for
``t = T-1 .. 0``:

* ``du_t = sat(gs_t * [|H_t - theta| < a] + c_t, grad_width)``, ``c_{t-1} = ((du_t * beta) >> 8) *
  (1 - s_{t-1})`` (floor, as the forward leak; the reset's spike detached)
* ``dG4 += du_t (x) a3_t``; ``d3 = fit(G4^T du_t, shift_b4, grad_width)``
* STT: ``dG3 += d3 (x) a2_t``; ``d2 = fit(G3^T d3, shift_b3, grad_width)``; ``dG2 += d2 (x) a1_t``;
  ``d1 = fit(G2^T d2, shift_b2, grad_width)``
* PTT: ``dG2 += d3 (x) a1_t``, ``dG3 += d3 (x) a1_t``; ``d1 = fit(G2^T d3 + G3^T d3, shift_b2,
  grad_width)``; HTT's late steps: ``d1 = d3``
* ``dG1 += d1 (x) s_t``; ``grad_in_t = fit(G1^T d1, shift_b1, grad_width)``

where ``(x)`` is the core's weight-gradient correlation over positions. Core gradients are exact
sums over steps and positions, saturated once to ``wgrad_width`` when read out. The optional SGD
update is ``G = sat(G - round(dG / 2**lr_shift), w_width)``.

The dense baseline (:func:`fixed_dense_forward`, the hardware's mode ``dense``): ``y = fit(W * s,
shift_y, y_width)`` with a dense 3x3 ``W [Cout, Cin, 3, 3]`` (zero padding), then the same neuron;
its backward (:func:`fixed_dense_backward`): the same ``du_t``, ``dW += du_t (x) s_t`` (the 3x3
correlation over positions, exact) and ``grad_in_t = fit(W^T du_t, shift_b1, grad_width)`` (the
transposed 3x3 conv); its update :func:`sgd_step`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..common.lif import lif_integer, saturate, signed_range
from .model import (g1_conv, is_late, kh_conv, kh_conv_t, kh_grad, kw_conv, kw_conv_t,
                    kw_grad)
from .params import LEAK_FRAC, TTFixedParams
from .tt import TTCores

__all__ = ["TTFixedParams", "round_shift", "fit", "FixedForward", "fixed_forward",
           "fixed_dense_forward", "fixed_backward", "fixed_dense_backward", "sgd_step",
           "sgd_update"]

def round_shift(x: torch.Tensor, k: int) -> torch.Tensor:
    """``x / 2**k`` rounded half up (arithmetic shift after adding half); exact for k = 0."""
    return x if k == 0 else (x + (1 << (k - 1))) >> k


def fit(x: torch.Tensor, k: int, width: int) -> torch.Tensor:
    return saturate(round_shift(x, k), width)


def _int(cores: TTCores, p: TTFixedParams) -> TTCores:
    lo, hi = signed_range(p.w_width)
    for name in ("g1", "g2", "g3", "g4"):
        c = getattr(cores, name)
        if c.dtype.is_floating_point or c.numel() and (c.min() < lo or c.max() > hi):
            raise ValueError(f"{name} must be integers in {lo}..{hi} (w_width={p.w_width})")
    return cores.map(lambda c: c.to(torch.int64))


@dataclass
class FixedForward:
    """Each step's ``y``, membrane ``H``, spikes, and the activations BPTT reads."""

    y: torch.Tensor          # [T, Cout, H, W]
    membrane: torch.Tensor   # [T, Cout, H, W]  H before the reset
    spikes: torch.Tensor     # [T, Cout, H, W]  0/1 (int64)
    a1: torch.Tensor         # [T, r, H, W]
    a2: torch.Tensor         # [T, r, H, W]  (STT; zeros otherwise)
    a3: torch.Tensor         # [T, r, H, W]  G4's input
    spikes_in: torch.Tensor


def _spikes(spikes, p: TTFixedParams) -> torch.Tensor:
    s = torch.as_tensor(spikes)
    if s.dim() != 4 or s.shape[0] != p.T:
        raise ValueError(f"spikes must have shape [T={p.T}, Cin, H, W], not {list(s.shape)}")
    if s.numel() and ((s != 0) & (s != 1)).any():
        raise ValueError("spikes must be 0 or 1")
    return s


def _neurons(y: torch.Tensor, p: TTFixedParams):
    """The integer LIF over the steps of ``y [T, Cout, H, W]``: (membranes, spikes)."""
    T, cout, h, w = y.shape
    flat = y.permute(1, 2, 3, 0).reshape(-1, T)
    out, _, _, trace = lif_integer(flat, p.lif, trace=True)
    back = lambda x: x.reshape(cout, h, w, T).permute(3, 0, 1, 2).contiguous()
    return back(trace), back(out.to(torch.int64))


def fixed_forward(spikes, cores: TTCores, p: TTFixedParams) -> FixedForward:
    """Spikes ``[T, Cin, H, W]`` (0/1) through the integer layer (see the module docstring)."""
    s = _spikes(spikes, p)
    c = _int(cores, p)
    if s.shape[1] != c.cin:
        raise ValueError(f"spikes have {s.shape[1]} channels, G1 takes Cin={c.cin}")
    s = s.to(torch.int64)
    a1s, a2s, a3s, ys = [], [], [], []
    for t in range(p.T):
        a1 = fit(g1_conv(s[t], c.g1), p.shift_o1, p.act_width)
        a2 = torch.zeros_like(a1)
        if is_late(p.mode, t, p.htt_full):
            a3 = a1
        elif p.mode == "stt":
            a2 = fit(kh_conv(a1, c.g2), p.shift_z2, p.act_width)
            a3 = fit(kw_conv(a2, c.g3), p.shift_z3, p.act_width)
        else:
            a3 = fit(kh_conv(a1, c.g2) + kw_conv(a1, c.g3), p.shift_z3, p.act_width)
        ys.append(fit(torch.einsum("oa,ahw->ohw", c.g4, a3), p.shift_y, p.y_width))
        a1s.append(a1)
        a2s.append(a2)
        a3s.append(a3)
    y = torch.stack(ys)
    return FixedForward(y, *_neurons(y, p), torch.stack(a1s), torch.stack(a2s),
                        torch.stack(a3s), s)


def _dense_weight(w, c_in: int, p: TTFixedParams) -> torch.Tensor:
    k = torch.as_tensor(w)
    lo, hi = signed_range(p.w_width)
    if k.dim() != 4 or tuple(k.shape[1:]) != (c_in, 3, 3):
        raise ValueError(f"w must have shape [Cout, Cin={c_in}, 3, 3], not {list(k.shape)}")
    if k.dtype.is_floating_point or k.numel() and (k.min() < lo or k.max() > hi):
        raise ValueError(f"w must be integers in {lo}..{hi} (w_width={p.w_width})")
    return k.to(torch.int64)


def fixed_dense_forward(spikes, w, p: TTFixedParams) -> FixedForward:
    """The dense baseline: spikes ``[T, Cin, H, W]`` through ``y = fit(W * s, shift_y,
    y_width)`` with the dense 3x3 kernel ``w [Cout, Cin, 3, 3]`` (signed ``w_width`` bits, zero
    padding), then the layer's neuron. The activations ``a1 .. a3`` are empty (``[T, 0, H,
    W]``): the dense layer has none."""
    s = _spikes(spikes, p).to(torch.int64)
    k = _dense_weight(w, s.shape[1], p)
    T, _, H, W = s.shape
    padded = torch.nn.functional.pad(s, (1, 1, 1, 1))
    sums = sum(torch.einsum("oi,tihw->tohw", k[:, :, kh, kw],
                            padded[:, :, kh:kh + H, kw:kw + W])
               for kh in range(3) for kw in range(3))
    y = fit(sums, p.shift_y, p.y_width)
    none = torch.zeros(T, 0, H, W, dtype=torch.int64)
    return FixedForward(y, *_neurons(y, p), none, none, none, s)


def _surrogate(grad_s, fwd: FixedForward, p: TTFixedParams):
    """The neuron's BPTT, step by step from ``t = T - 1``: yields ``(t, du_t)`` (``du`` the
    output gradients of the step's currents); the carry leaks into ``t - 1``."""
    g = torch.as_tensor(grad_s)
    if tuple(g.shape) != tuple(fwd.y.shape):
        raise ValueError(f"grad must have shape {list(fwd.y.shape)}, not {list(g.shape)}")
    lo, hi = signed_range(p.grad_width)
    if g.dtype.is_floating_point or g.numel() and (g.min() < lo or g.max() > hi):
        raise ValueError(f"grad must be integers in {lo}..{hi} (grad_width={p.grad_width})")
    g = g.to(torch.int64)
    carry = torch.zeros_like(g[0])
    for t in reversed(range(p.T)):
        window = ((fwd.membrane[t] - p.theta).abs() < p.surrogate).to(torch.int64)
        du = saturate(g[t] * window + carry, p.grad_width)
        if t:
            carry = ((du * p.beta) >> LEAK_FRAC) * (1 - fwd.spikes[t - 1])
        yield t, du


def fixed_backward(grad_s, fwd: FixedForward, cores: TTCores, p: TTFixedParams):
    """BPTT of the integer layer: ``(grad_in [T, Cin, H, W], core gradients (TTCores of int64,
    saturated to wgrad_width), du [T, Cout, H, W])``."""
    c = _int(cores, p)
    d1s, d2s, d3s, d4s = (torch.zeros_like(x) for x in (c.g1, c.g2, c.g3, c.g4))
    grad_in = torch.zeros_like(fwd.spikes_in)
    du_all = torch.zeros_like(fwd.y)
    for t, du in _surrogate(grad_s, fwd, p):
        du_all[t] = du
        d4s += torch.einsum("ohw,ahw->oa", du, fwd.a3[t])
        d3 = fit(torch.einsum("oa,ohw->ahw", c.g4, du), p.shift_b4, p.grad_width)
        if is_late(p.mode, t, p.htt_full):
            d1 = d3
        elif p.mode == "stt":
            d3s += kw_grad(d3, fwd.a2[t])
            d2 = fit(kw_conv_t(d3, c.g3), p.shift_b3, p.grad_width)
            d2s += kh_grad(d2, fwd.a1[t])
            d1 = fit(kh_conv_t(d2, c.g2), p.shift_b2, p.grad_width)
        else:
            d2s += kh_grad(d3, fwd.a1[t])
            d3s += kw_grad(d3, fwd.a1[t])
            d1 = fit(kh_conv_t(d3, c.g2) + kw_conv_t(d3, c.g3), p.shift_b2, p.grad_width)
        d1s += torch.einsum("rhw,ihw->ri", d1, fwd.spikes_in[t])
        grad_in[t] = fit(torch.einsum("ri,rhw->ihw", c.g1, d1), p.shift_b1, p.grad_width)
    grads = TTCores(d1s, d2s, d3s, d4s).map(lambda x: saturate(x, p.wgrad_width))
    return grad_in, grads, du_all


def fixed_dense_backward(grad_s, fwd: FixedForward, w, p: TTFixedParams):
    """BPTT of the dense baseline (``fwd`` from :func:`fixed_dense_forward` with ``w``):
    ``(grad_in [T, Cin, H, W], dW [Cout, Cin, 3, 3] (int64, saturated to wgrad_width),
    du [T, Cout, H, W])``."""
    k = _dense_weight(w, fwd.spikes_in.shape[1], p)
    T, _, H, W = fwd.spikes_in.shape
    padded = torch.nn.functional.pad(fwd.spikes_in, (1, 1, 1, 1))
    dw = torch.zeros_like(k)
    grad_in = torch.zeros_like(fwd.spikes_in)
    du_all = torch.zeros_like(fwd.y)
    for t, du in _surrogate(grad_s, fwd, p):
        du_all[t] = du
        # dW[o, i, kh, kw] = sum du[o, y, x] * s[i, y + kh - 1, x + kw - 1]
        for kh in range(3):
            for kw in range(3):
                dw[:, :, kh, kw] += torch.einsum("ohw,ihw->oi", du,
                                                 padded[t, :, kh:kh + H, kw:kw + W])
        # grad_in[i, y, x] = sum W[o, i, kh, kw] * du[o, y + 1 - kh, x + 1 - kw]
        du_pad = torch.nn.functional.pad(du, (1, 1, 1, 1))
        sums = sum(torch.einsum("oi,ohw->ihw", k[:, :, kh, kw],
                                du_pad[:, 2 - kh:2 - kh + H, 2 - kw:2 - kw + W])
                   for kh in range(3) for kw in range(3))
        grad_in[t] = fit(sums, p.shift_b1, p.grad_width)
    return grad_in, saturate(dw, p.wgrad_width), du_all


def _lr(lr_shift):
    if isinstance(lr_shift, bool) or not isinstance(lr_shift, int) or not 0 <= lr_shift <= 47:
        raise ValueError(f"lr_shift must be an integer in 0..47, not {lr_shift!r}")


def sgd_step(w: torch.Tensor, dw: torch.Tensor, lr_shift: int, p: TTFixedParams):
    """One weight tensor's update: ``w - round(dw / 2**lr_shift)``, saturated to ``w_width``."""
    _lr(lr_shift)
    return saturate(torch.as_tensor(w).to(torch.int64) - round_shift(dw, lr_shift), p.w_width)


def sgd_update(cores: TTCores, grads: TTCores, lr_shift: int, p: TTFixedParams) -> TTCores:
    """:func:`sgd_step` on each core."""
    c = _int(cores, p)
    return TTCores(*(sgd_step(w, d, lr_shift, p)
                     for w, d in zip((c.g1, c.g2, c.g3, c.g4),
                                     (grads.g1, grads.g2, grads.g3, grads.g4))))
