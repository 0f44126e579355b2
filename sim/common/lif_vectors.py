"""Stimulus and expected results for the LIF array, shared by both back ends.

The same cases run under cocotb + Verilator (the regression of record,
``snnforge.sim.common.lif_array``) and in Amaranth's simulator (``tests/common/test_lif.py``).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import torch

from ...golden.common.lif import LIFParams, lif_integer, signed_range

__all__ = ["LIFCase", "lif_cases", "expected_beats"]


@dataclass
class LIFCase:
    """One batch of neurons sharing register values (threshold, leak amount, mask)."""
    name: str
    currents: list          # [N][T] ints
    tmask: int
    threshold: int
    leak_amount: int

    def params(self, base: LIFParams) -> LIFParams:
        return base.replace(threshold=self.threshold).with_leak_amount(self.leak_amount)


def expected_beats(base: LIFParams, case: LIFCase, membrane: bool = True,
                   trace: bool = False) -> list[dict]:
    """The output beats: spike word, (``membrane``) final membrane and (``trace``) each step's
    membrane before its reset, of each neuron."""
    spikes, V, _, H = lif_integer(
        torch.tensor(case.currents, dtype=torch.int64).reshape(-1, base.T), case.params(base),
        case.tmask, trace=True)
    weights = 1 << torch.arange(base.T)
    words = (spikes.to(torch.int64) * weights).sum(1)
    return [{"spikes": int(w), **({"membrane": int(v)} if membrane else {}),
             **({"trace": h.tolist()} if trace else {})}
            for w, v, h in zip(words, V, H)]


def lif_cases(p: LIFParams, *, seed: int = 1, n_random: int = 1000) -> list[LIFCase]:
    """Structured edge cases plus ``n_random`` random neurons (several register settings)."""
    rng = random.Random(seed)
    T = p.T
    ilo, ihi = signed_range(p.in_width)
    full = (1 << T) - 1
    thr_max = signed_range(p.mem_width)[1]
    base_thr = min(p.threshold, thr_max) or 1
    amount_max = p.leak_amount_max
    default_amount = p.leak_amount

    def rand_current(scale):
        return max(ilo, min(ihi, rng.randint(-scale, scale)))

    cases = []
    # Edge stimuli, under all-ones, all-zeros and a random mask.
    for mask in sorted({full, 0, rng.randint(0, full)}):
        edge = [
            [0] * T,                           # zeros
            [ihi] * T,                         # max positive every step
            [ilo] * T,                         # max negative every step
            [ihi if t % 2 == 0 else ilo for t in range(T)],
        ]
        for delta in (-1, 0, 1):             # threshold - 1, threshold, threshold + 1 at step 0
            c = max(ilo, min(ihi, base_thr + delta))
            edge.append([c] + [0] * (T - 1))
            edge.append([c] * T)
        cases.append(LIFCase(f"edges_mask{mask:0{T}b}", edge, mask, base_thr, default_amount))
    # Extreme register values.
    cases.append(LIFCase("threshold_zero", [[rand_current(3)] * T for _ in range(16)], full, 0,
                         default_amount))
    cases.append(LIFCase("threshold_max", [[ihi] * T, [ihi // 2] * T, [0] * T], full, thr_max,
                         default_amount))
    if p.leak != "none":
        for amount in (0, amount_max):
            cases.append(LIFCase(f"leak_{amount}",
                                 [[rand_current(2 * base_thr) for _ in range(T)] for _ in range(64)],
                                 full, base_thr, amount))
    # Random neurons in a few batches: random masks, thresholds, leak amounts, current scales.
    batches = 4
    for b in range(batches):
        scale = [base_thr // 2 + 1, base_thr * 2, ihi, max(1, base_thr)][b % 4]
        mask = full if b == 0 else rng.randint(0, full)
        thr = base_thr if b < 2 else rng.randint(1, min(thr_max, 4 * base_thr))
        amount = default_amount if b < 2 else rng.randint(0, amount_max)
        count = n_random // batches + (1 if b < n_random % batches else 0)
        cases.append(LIFCase(f"random{b}", [[rand_current(scale) for _ in range(T)]
                                            for _ in range(count)], mask, thr, amount))
    return cases
