"""Integer self-attention of one head, exactly as :class:`snnforge.hw.trex.attention.
AttentionUnit` computes it (``torch``), and its base-2 integer softmax.

For int8 ``q, k, v [N, d]`` (``N`` tokens, ``d`` per head) and the registers ``score_mult``,
``score_shift``, ``out_shift``:

1. scores ``s[i, j] = sum_c q[i, c] k[j, c]`` (exact);
2. into the base-2 log domain with ``F = frac_bits`` fraction bits: ``u = (s * score_mult) >>
   score_shift`` (floor) -- ``score_mult / 2^score_shift`` is ``log2(e) / sqrt(d)`` times the
   scales of ``q`` and ``k``, times ``2^F``;
3. per row, ``m = max_j u``, ``delta = m - u >= 0``, ``e = LUT[delta & (2^F - 1)] >> (delta >>
   F)`` with ``LUT[f] = round(2^P * 2^(-f / 2^F))`` (``P = lut_bits``): ``e ~ 2^P *
   2^((u - m) / 2^F)``, the row's largest is ``2^P``;
4. ``r = floor(2^R / sum_j e)`` with ``R = P + A + L`` (``A = prob_bits``, ``L`` the bits of
   ``max_tokens``), ``a = (e * r) >> (P + L)``: the probabilities in units of ``2^-A`` (a row
   sums to at most ``2^A``);
5. ``o[i, c] = sum_j a[i, j] v[j, c]``, ``out = sat8((o + 2^(out_shift-1)) >> out_shift)``
   (round half up; ``out_shift = A`` gives the weighted mean of ``v``).

Against float ``softmax(s * scale)`` the probabilities err by the LUT's rounding (at most
``2^-P`` relative per entry), the floor of ``u`` (at most ``2^-F`` in the exponent, a factor
``2^(2^-F)``), the reciprocal's and the product's floors; :func:`softmax_error` measures it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ...params import Config, param

__all__ = ["AttentionParams", "exp2_lut", "int_softmax", "attention_head", "softmax_error",
           "score_scale"]


@dataclass(frozen=True)
class AttentionParams(Config):
    """One head's integer attention: sizes, the softmax's precisions and the registers'
    reset values."""

    max_tokens: int = param(16, "tokens per head, at most", lo=1, hi=256)
    d_head: int = param(8, "dimensions per head", lo=1, hi=64)
    frac_bits: int = param(4, "fraction bits F of the base-2 exponent", lo=0, hi=8)
    lut_bits: int = param(8, "bits P of the exp2 table's entries (2^P = 1)", lo=2, hi=14)
    prob_bits: int = param(8, "bits A of a probability (2^A = 1)", lo=2, hi=12)
    score_mult: int = param(1, "reset value of score_mult (u = s * score_mult >> score_shift)",
                            lo=0, hi=65535)
    score_shift: int = param(0, "reset value of score_shift", lo=0, hi=31)
    out_shift: int = param(-1, "reset value of out_shift (-1: prob_bits)", lo=-1, hi=31)

    @property
    def token_bits(self) -> int:
        """``L``: bits of the largest token count."""
        return max(1, self.max_tokens.bit_length())

    @property
    def recip_bits(self) -> int:
        """``R = P + A + L``."""
        return self.lut_bits + self.prob_bits + self.token_bits

    @property
    def shift_out(self) -> int:
        return self.prob_bits if self.out_shift < 0 else self.out_shift

    @property
    def score_bits(self) -> int:
        """Width of a score ``s`` (signed)."""
        return (self.d_head * 128 * 128).bit_length() + 1

    @property
    def sum_bits(self) -> int:
        """Width of a row's ``sum_j e``."""
        return (self.max_tokens << self.lut_bits).bit_length()


def score_scale(p: AttentionParams, scale: float, *, shift: int = 16) -> tuple[int, int]:
    """``(score_mult, score_shift)`` for a float score scale (``softmax(s * scale)``): the
    base-2 domain's ``scale * log2(e) * 2^F`` as a 16-bit fraction."""
    factor = scale * math.log2(math.e) * (1 << p.frac_bits)
    while shift > 0 and round(factor * (1 << shift)) > 65535:
        shift -= 1
    return round(factor * (1 << shift)), shift


def exp2_lut(p: AttentionParams) -> list[int]:
    """``LUT[f] = round(2^P * 2^(-f / 2^F))``, ``f = 0 .. 2^F - 1``."""
    return [int(math.floor((1 << p.lut_bits) * 2.0 ** (-f / (1 << p.frac_bits)) + 0.5))
            for f in range(1 << p.frac_bits)]


def int_softmax(s: torch.Tensor, p: AttentionParams, score_mult: int, score_shift: int):
    """Probabilities ``a [..., N]`` (units of ``2^-A``) of integer scores ``s [..., N]``."""
    s = torch.as_tensor(s, dtype=torch.int64)
    u = (s * score_mult) >> score_shift
    delta = u.max(dim=-1, keepdim=True).values - u
    lut = torch.tensor(exp2_lut(p), dtype=torch.int64)
    whole = (delta >> p.frac_bits).clamp(max=p.lut_bits + 1)
    e = lut[delta & ((1 << p.frac_bits) - 1)] >> whole
    r = (1 << p.recip_bits) // e.sum(dim=-1, keepdim=True)
    return (e * r) >> (p.lut_bits + p.token_bits)


def attention_head(q, k, v, p: AttentionParams, *, score_mult: int | None = None,
                   score_shift: int | None = None, out_shift: int | None = None):
    """``out [N, d]`` (int8) of one head, and its probabilities ``a [N, N]``."""
    q, k, v = (torch.as_tensor(t, dtype=torch.int64) for t in (q, k, v))
    N, d = q.shape
    if not (1 <= N <= p.max_tokens and d == p.d_head and k.shape == v.shape == q.shape):
        raise ValueError(f"q, k, v must be [N, {p.d_head}] with N <= {p.max_tokens}, not "
                         f"{list(q.shape)}, {list(k.shape)}, {list(v.shape)}")
    for name, t in (("q", q), ("k", k), ("v", v)):
        if t.numel() and (int(t.min()) < -128 or int(t.max()) > 127):
            raise ValueError(f"{name} must hold int8 values")
    mult = p.score_mult if score_mult is None else score_mult
    shift = p.score_shift if score_shift is None else score_shift
    out_shift = p.shift_out if out_shift is None else out_shift
    a = int_softmax(q @ k.T, p, mult, shift)
    o = a @ v
    half = (1 << out_shift) >> 1
    return ((o + half) >> out_shift).clamp(-128, 127), a


def softmax_error(p: AttentionParams, scale: float, *, trials: int = 200, N: int | None = None,
                  seed: int = 0) -> dict:
    """The integer softmax against float ``softmax(s * scale)`` on random int8 ``q, k``: the
    largest and mean absolute error of a probability."""
    g = torch.Generator().manual_seed(seed)
    N = N or p.max_tokens
    mult, shift = score_scale(p, scale)
    worst, total = 0.0, 0.0
    for _ in range(trials):
        q = torch.randint(-128, 128, (N, p.d_head), generator=g)
        k = torch.randint(-128, 128, (N, p.d_head), generator=g)
        s = q @ k.T
        exact = torch.softmax(s.double() * scale, dim=-1)
        got = int_softmax(s, p, mult, shift).double() / (1 << p.prob_bits)
        err = (got - exact).abs()
        worst, total = max(worst, float(err.max())), total + float(err.mean())
    return {"max_abs_error": worst, "mean_abs_error": total / trials}
