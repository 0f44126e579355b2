"""Golden models of the leaky integrate-and-fire neuron shared by every snnforge core.

Two models live here:

* :func:`lif_integer` -- the bit-exact integer model of :class:`snnforge.hw.common.lif.LIFArray`.
  Every width, shift, saturation and reset rule of the RTL is written out here, vectorised over
  neurons with ``torch``; the RTL regression compares against it beat by beat.
* :func:`lif_float` -- the same neuron in floating point (used for training), checked in the test
  suite against snntorch's ``Leaky`` neuron.

Integer semantics, per neuron, ``V`` starting at 0, for ``t = 0 .. T-1``::

    L = V                          leak "none"
    L = V - (V >> k)               leak "shift"  (arithmetic shift, i.e. floor division by 2**k)
    L = (V * beta) >> frac         leak "mul"    (beta an unsigned frac-bit fraction, floor)
    H = clamp_or_wrap(L + I[t])    to a signed ``mem_width``-bit membrane
    S = H >= threshold
    out[t] = S and mask[t]         a masked time step never emits a spike
    V = 0 (hard) or H - threshold (soft)   where the reset spike fires, else H

The dynamic time-step mask (``mask``, one bit per step, see ``shared/papers/dtsnn.md``) has three
policies for a masked step, a generator parameter of the hardware:

* ``"integrate"``  (default) the neuron runs as if unmasked (reset by its ungated spike); only the
  output spike is suppressed, so the membrane trace equals the unmasked one;
* ``"gate_reset"`` the neuron integrates, but the reset uses the gated spike (no reset when masked);
* ``"leak_only"``  the input of a masked step is not integrated: ``V = L`` and no spike, no reset.
"""

from __future__ import annotations

import torch

from .lif_params import LEAKS, MASKED, RESETS, LIFParams, signed_range

__all__ = ["LEAKS", "RESETS", "MASKED", "LIFParams", "lif_integer", "lif_float",
           "saturate", "wrap", "signed_range"]


def saturate(x: torch.Tensor, width: int) -> torch.Tensor:
    lo, hi = signed_range(width)
    return x.clamp(lo, hi)


def wrap(x: torch.Tensor, width: int) -> torch.Tensor:
    """Two's-complement truncation to ``width`` bits (what a plain adder does)."""
    mod = 1 << width
    half = 1 << (width - 1)
    return ((x + half) % mod) - half


def _leak(V: torch.Tensor, p: LIFParams) -> torch.Tensor:
    if p.leak == "none":
        return V
    if p.leak == "shift":
        return V - (V >> p.leak_shift)
    return (V * p.leak_mul) >> p.leak_frac


def lif_integer(currents, p: LIFParams, tmask: int | None = None, *, trace: bool = False):
    """Run ``N`` neurons over ``T`` time steps, bit-exactly as the RTL does.

    Parameters
    ----------
    currents : int tensor ``[N, T]``
        Input current of each neuron at each step, within ``in_width`` signed bits.
    p : LIFParams
    tmask : int, optional
        ``T``-bit dynamic time-step mask (bit ``t`` set: step ``t`` is evaluated). All ones if omitted.

    Returns
    -------
    spikes : uint8 tensor ``[N, T]``
    membrane : int64 tensor ``[N]``, the membrane after the last step
    evaluated : int, neuron-steps whose output was evaluated (``N * popcount(tmask)``)
    trace : int64 tensor ``[N, T]``, only with ``trace=True``
        Each step's membrane before its reset (``H``; ``L`` on a ``leak_only`` masked step):
        what BPTT's surrogate gradient reads.
    """
    I = torch.as_tensor(currents, dtype=torch.int64)
    if I.dim() != 2 or I.shape[1] != p.T:
        raise ValueError(f"currents must have shape [N, {p.T}], not {list(I.shape)}")
    lo, hi = signed_range(p.in_width)
    if I.numel() and (I.min() < lo or I.max() > hi):
        raise ValueError(f"currents must lie in {lo}..{hi} (in_width={p.in_width})")
    full = (1 << p.T) - 1
    tmask = full if tmask is None else int(tmask)
    if not 0 <= tmask <= full:
        raise ValueError(f"tmask must be a {p.T}-bit mask, not {tmask}")
    fit = (lambda x: saturate(x, p.mem_width)) if p.saturate else (lambda x: wrap(x, p.mem_width))

    N = I.shape[0]
    V = torch.zeros(N, dtype=torch.int64)
    spikes = torch.zeros(N, p.T, dtype=torch.uint8)
    membranes = torch.zeros(N, p.T, dtype=torch.int64)
    for t in range(p.T):
        gate = bool((tmask >> t) & 1)
        L = _leak(V, p)
        if not gate and p.masked == "leak_only":
            V = membranes[:, t] = L
            continue
        H = membranes[:, t] = fit(L + I[:, t])
        fire = H >= p.threshold
        if gate:
            spikes[:, t] = fire.to(torch.uint8)
        reset = fire if (gate or p.masked == "integrate") else torch.zeros_like(fire)
        after = torch.zeros_like(H) if p.reset == "hard" else H - p.threshold
        V = torch.where(reset, after, H)
    evaluated = N * bin(tmask).count("1")
    return (spikes, V, evaluated, membranes) if trace else (spikes, V, evaluated)


def lif_float(currents, *, beta: float, threshold: float, reset: str = "hard",
              tmask: int | None = None):
    """Floating-point LIF with the integer model's structure (for training).

    ``H = beta * V + I[t]``, spike ``H >= threshold``, then hard (``V = 0``) or soft
    (``V = H - threshold``) reset; masked steps behave as policy ``"integrate"``. Differentiable
    except for the spike itself (wrap it with a surrogate for training).

    Returns ``(spikes [N, T], pre-reset membrane H [N, T], post-reset membrane V [N, T])``.
    """
    I = torch.as_tensor(currents, dtype=torch.float32)
    N, T = I.shape
    if reset not in RESETS:
        raise ValueError(f"reset must be one of {', '.join(RESETS)}, not {reset!r}")
    mask = (1 << T) - 1 if tmask is None else int(tmask)
    V = torch.zeros(N, dtype=I.dtype)
    S_all, H_all, V_all = [], [], []
    for t in range(T):
        H = beta * V + I[:, t]
        S = (H >= threshold).to(I.dtype)
        V = H * (1 - S) if reset == "hard" else H - S * threshold
        S_all.append(S * ((mask >> t) & 1))
        H_all.append(H)
        V_all.append(V)
    return torch.stack(S_all, 1), torch.stack(H_all, 1), torch.stack(V_all, 1)
