"""The attention unit in Amaranth's simulator against ``golden.trex.attention.attention_head``:
random and extreme heads, fewer tokens than the unit holds, several score scales and output
shifts, idle and back-pressure patterns, every output row compared; the integer softmax against
float."""

import math
import random

import pytest
import torch

from snnforge.golden.trex.attention import attention_head, int_softmax, softmax_error
from snnforge.golden.trex.params import AttentionParams, score_scale
from snnforge.hw.trex.attention import AttentionUnit
from snnforge.sim.amaranth_sim import simulate_streams
from snnforge.sim.payload import pack, unpack


def head(rng, N, d, kind="random"):
    if kind in ("max", "min"):
        value = 127 if kind == "max" else -128
        return [torch.full((N, d), value) for _ in range(3)]
    return [torch.tensor([[rng.randint(-128, 127) for _ in range(d)] for _ in range(N)])
            for _ in range(3)]


def run_unit(dut, q, k, v, *, mult, shift, out_shift, idle, stall, seed):
    kv_layout, row = dut.kv.payload.shape(), dut.q.payload.shape()
    kv = [pack(kv_layout, {"index": j, "k": k[j].tolist(), "v": v[j].tolist()})
          for j in range(len(k))]
    out, cycles = simulate_streams(
        dut, preload={"kv": kv}, feeds={"q": [pack(row, r.tolist()) for r in q]},
        drains={"o": len(q)}, seed=seed, idle=idle, stall=stall,
        setup={"tokens": len(k), "score_mult": mult, "score_shift": shift,
               "out_shift": out_shift})
    return [unpack(row, beat) for beat in out["o"]], cycles


@pytest.mark.parametrize("params", [dict(max_tokens=6, d_head=4),
                                    dict(max_tokens=5, d_head=3, frac_bits=2, lut_bits=6,
                                         prob_bits=6)], ids=["default-precision", "narrow"])
@pytest.mark.parametrize("idle, stall", [("none", "none"), ("random:0.4", "random:0.5")])
def test_unit_equals_the_golden_model(params, idle, stall):
    p = AttentionParams(**params)
    dut = AttentionUnit(p)
    rng = random.Random(str(params) + idle)
    cases = [("random", p.max_tokens, score_scale(p, 1 / (64 * math.sqrt(p.d_head)))),
             ("random", 1, (1000, 9)),
             ("random", p.max_tokens - 1, (65535, 0)),          # sharp: one-hot rows
             ("max", p.max_tokens, (3, 12)), ("min", 2, (0, 0))]   # uniform rows
    for kind, N, (mult, shift) in cases:
        q, k, v = head(rng, N, p.d_head, kind)
        for out_shift in (p.prob_bits, 3):
            got, _ = run_unit(dut, q, k, v, mult=mult, shift=shift, out_shift=out_shift,
                              idle=idle, stall=stall, seed=rng.randrange(1 << 16))
            want, _ = attention_head(q, k, v, p, score_mult=mult, score_shift=shift,
                                     out_shift=out_shift)
            assert got == want.tolist(), (kind, N, mult, shift, out_shift)


def test_cycles_per_row():
    p = AttentionParams(max_tokens=6, d_head=4)
    dut = AttentionUnit(p)
    q, k, v = head(random.Random(1), 5, 4)
    _, cycles = run_unit(dut, q, k, v, mult=1, shift=8, out_shift=8, idle="none",
                         stall="none", seed=0)
    # After the 5 kv writes; the last row's output is received a cycle before its period ends.
    assert cycles - 5 == 5 * dut.cycles_per_row(5) - 1, cycles


def test_integer_softmax_is_close_to_float():
    p = AttentionParams()
    err = softmax_error(p, 1 / (128 * math.sqrt(p.d_head)), trials=50)
    assert err["max_abs_error"] < 0.03 and err["mean_abs_error"] < 0.002


def test_softmax_rows_sum_to_at_most_one_and_keep_the_order():
    p = AttentionParams()
    s = torch.randint(-5000, 5000, (20, 16), generator=torch.Generator().manual_seed(3))
    a = int_softmax(s, p, *score_scale(p, 0.002))
    assert bool((a.sum(-1) <= 1 << p.prob_bits).all())
    assert bool((a.sum(-1) >= (1 << p.prob_bits) - 16).all())
    order = s.argsort(-1)
    assert bool((a.gather(-1, order).diff(dim=-1) >= 0).all())


def test_bad_heads_are_refused():
    p = AttentionParams(max_tokens=4, d_head=2)
    with pytest.raises(ValueError, match="q, k, v must be"):
        attention_head(torch.zeros(5, 2), torch.zeros(5, 2), torch.zeros(5, 2), p)
    with pytest.raises(ValueError, match="k must hold int8"):
        attention_head(torch.zeros(2, 2), torch.full((2, 2), 200), torch.zeros(2, 2), p)
