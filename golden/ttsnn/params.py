"""The parameters of the fixed-point TT layer (:class:`TTFixedParams`) and the pipelines'
names, apart from the models: the hardware configures itself from them without torch."""

from __future__ import annotations

from dataclasses import dataclass

from ...params import Config, param
from ..common.lif_params import LIFParams, signed_range

__all__ = ["MODES", "LEAK_FRAC", "TTFixedParams"]

#: The pipelines: sequential, parallel, and hybrid (parallel for the first steps).
MODES = ("stt", "ptt", "htt")

LEAK_FRAC = 8


@dataclass(frozen=True)
class TTFixedParams(Config):
    """Widths (structure) and shifts/neuron values (registers) of the fixed-point TT layer."""

    T: int = param(4, "time steps", lo=1, hi=16)
    w_width: int = param(8, "core weight width (signed)", lo=2, hi=16)
    act_width: int = param(16, "width of o1 and the inter-core activations (signed)", lo=2, hi=32)
    y_width: int = param(16, "width of the currents into the neuron (signed)", lo=2, hi=32)
    mem_width: int = param(16, "membrane width (signed)", lo=2, hi=32)
    grad_width: int = param(16, "width of the membrane and activation gradients (signed)",
                            lo=2, hi=32)
    wgrad_width: int = param(32, "width of the core gradients read out (signed)", lo=2, hi=48)
    mode: str = param("ptt", "pipeline: stt, ptt or htt", choices=MODES)
    htt_full: int = param(2, "HTT: steps that run the full PTT path (mode htt)", lo=1, hi=16,
                          check=lambda p, v: v <= p.T or p.mode != "htt",
                          what=lambda p: f"an integer in 1..{p.T}")
    shift_o1: int = param(0, "right shift of G1's sums", lo=0, hi=31)
    shift_z2: int = param(0, "right shift of G2's sums (STT)", lo=0, hi=31)
    shift_z3: int = param(0, "right shift of G3's (PTT: G2 + G3) sums", lo=0, hi=31)
    shift_y: int = param(0, "right shift of G4's sums", lo=0, hi=31)
    shift_b4: int = param(0, "right shift of G4^T's sums (backward)", lo=0, hi=31)
    shift_b3: int = param(0, "right shift of G3^T's sums (backward, STT)", lo=0, hi=31)
    shift_b2: int = param(0, "right shift of G2^T's (PTT: G2^T + G3^T) sums (backward)",
                          lo=0, hi=31)
    shift_b1: int = param(0, "right shift of G1^T's sums (input gradients)", lo=0, hi=31)
    beta: int = param(64, "leak factor beta / 256 (the paper's 0.25)", lo=0, hi=255)
    theta: int = param(32, "threshold: spike where H > theta", lo=0, hi=2**31 - 2,
                       check=lambda p, v: v < signed_range(p.mem_width)[1],
                       what=lambda p: f"an integer in 0..{signed_range(p.mem_width)[1] - 1}")
    surrogate: int = param(32, "surrogate half-width a: ds/du = [|H - theta| < a]", lo=0,
                           hi=2**31 - 1)

    @property
    def lif(self) -> LIFParams:
        return LIFParams(T=self.T, in_width=self.y_width, mem_width=self.mem_width, leak="mul",
                         leak_frac=LEAK_FRAC, leak_mul=self.beta, threshold=self.theta + 1,
                         reset="hard", saturate=True)
