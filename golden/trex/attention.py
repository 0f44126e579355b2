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

import torch

from .params import AttentionParams, exp2_lut, score_scale

__all__ = ["int_softmax", "attention_head", "softmax_error"]


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
