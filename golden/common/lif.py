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

from dataclasses import dataclass

import torch

from ...params import Config, param

__all__ = ["LEAKS", "RESETS", "MASKED", "LIFParams", "lif_integer", "lif_float",
           "saturate", "wrap", "signed_range"]

LEAKS = ("none", "shift", "mul")
RESETS = ("hard", "soft")
MASKED = ("integrate", "gate_reset", "leak_only")


def signed_range(width: int) -> tuple[int, int]:
    """Inclusive range of a ``width``-bit two's-complement value."""
    return -(1 << (width - 1)), (1 << (width - 1)) - 1


def saturate(x: torch.Tensor, width: int) -> torch.Tensor:
    lo, hi = signed_range(width)
    return x.clamp(lo, hi)


def wrap(x: torch.Tensor, width: int) -> torch.Tensor:
    """Two's-complement truncation to ``width`` bits (what a plain adder does)."""
    mod = 1 << width
    half = 1 << (width - 1)
    return ((x + half) % mod) - half


def _leak_shift_max(p) -> int:
    return (1 << p.shift_bits) - 1


@dataclass(frozen=True)
class LIFParams(Config):
    """Every knob of the integer LIF neuron, hardware structure and register values alike.

    Structure (generator parameters): ``T``, ``in_width``, ``mem_width``, ``leak``, ``leak_frac``,
    ``reset``, ``saturate``, ``masked``. Register values: ``threshold``, ``leak_shift``,
    ``leak_mul`` (the one a leak kind uses is its *leak amount*, :attr:`leak_amount`).
    """

    T: int = param(4, "time steps per neuron (all evaluated in one pass)", lo=1, hi=32)
    in_width: int = param(16, "input current width (signed)", lo=2, hi=32)
    mem_width: int = param(16, "membrane width (signed)", lo=2, hi=32)
    leak: str = param("shift", "leak: none, shift (V - (V >> k)) or mul ((V * beta) >> leak_frac)",
                      choices=LEAKS)
    leak_shift: int = param(
        2, "reset value of the leak shift register k (leak=shift)", lo=0, hi=31,
        check=lambda p, v: v <= _leak_shift_max(p),
        what=lambda p: f"an integer in 0..{_leak_shift_max(p)}")
    leak_frac: int = param(8, "fraction bits of the leak factor beta (leak=mul)", lo=1, hi=16)
    leak_mul: int = param(
        192, "reset value of the leak factor register beta (leak=mul)", lo=0, hi=65535,
        check=lambda p, v: v < (1 << p.leak_frac),
        what=lambda p: f"an integer in 0..{(1 << p.leak_frac) - 1}")
    threshold: int = param(
        64, "reset value of the threshold register", lo=0, hi=2**31 - 1,
        check=lambda p, v: v <= signed_range(p.mem_width)[1],
        what=lambda p: f"an integer in 0..{signed_range(p.mem_width)[1]}")
    reset: str = param("hard", "reset after a spike: hard (to 0) or soft (subtract threshold)",
                       choices=RESETS)
    saturate: bool = param(True, "saturating membrane arithmetic (else two's-complement wrap)")
    masked: str = param("integrate", "masked time step: integrate (output gated only), "
                        "gate_reset (no reset either) or leak_only (input ignored)",
                        choices=MASKED)

    @property
    def shift_bits(self) -> int:
        """Width of the ``leak_shift`` register: enough to shift a membrane fully away."""
        return max(1, (self.mem_width - 1).bit_length())

    @property
    def threshold_bits(self) -> int:
        return self.mem_width - 1

    # -- the leak amount: the one register value the leak kind uses ----------------------------
    @property
    def leak_amount(self) -> int:
        """The leak register's value: ``leak_shift`` (shift), ``leak_mul`` (mul), 0 (none)."""
        return {"none": 0, "shift": self.leak_shift, "mul": self.leak_mul}[self.leak]

    @property
    def leak_amount_bits(self) -> int:
        """Width of the leak register: the shift k, the fraction beta, or 1 (unused)."""
        return {"none": 1, "shift": self.shift_bits, "mul": self.leak_frac}[self.leak]

    @property
    def leak_amount_max(self) -> int:
        """Largest valid leak amount (0 for leak ``none``)."""
        return {"none": 0, "shift": _leak_shift_max(self),
                "mul": (1 << self.leak_frac) - 1}[self.leak]

    @property
    def leak_amount_doc(self) -> str:
        return {"none": "unused (leak none)", "shift": "leak shift k: V - (V >> k)",
                "mul": f"leak factor beta: (V * beta) >> {self.leak_frac}"}[self.leak]

    def with_leak_amount(self, amount: int) -> "LIFParams":
        """These parameters with the leak register set to ``amount`` (ignored for leak none)."""
        field = {"shift": "leak_shift", "mul": "leak_mul"}.get(self.leak)
        return self.replace(**({field: amount} if field else {}))


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
