"""The crossbar tile in Amaranth's simulator against ``golden.trex.xbar.xbar_mvm``: exact and
quantizing ADCs, bit-serial and spiking inputs, structured and random vectors, crossed
idle/back-pressure patterns, every output beat compared; its cycles per vector against the
analytic bound."""

import random

import pytest
import torch

from snnforge.golden.trex.params import XbarParams, cell_levels, round_words
from snnforge.golden.trex.xbar import xbar_mvm
from snnforge.hw.trex.xbar import CrossbarTile
from snnforge.sim.amaranth_sim import simulate_streams
from snnforge.sim.payload import pack, unpack
from snnforge.sim.runner import run_bench

#: Small tiles: (params, chunk_width)
TILES = [
    (dict(rows=20, cols=16, cell_bits=1, w_bits=4, in_bits=4, cols_per_adc=4, adc_bits=3), 32),
    (dict(rows=9, cols=12, cell_bits=2, w_bits=6, in_bits=3, cols_per_adc=3, adc_bits=4), 8),
    (dict(rows=17, cols=8, cell_bits=1, w_bits=3, in_bits=2, cols_per_adc=1, adc_bits=5), 64),
]


def cell_chunks(dut, w):
    """The ``cells`` stream's beats for weights ``w``: every round's word, chunk by chunk."""
    p, layout = dut.p, dut.cells.payload.shape()
    words = round_words(cell_levels(w, p), p)
    mask = (1 << dut.chunk_width) - 1
    return [pack(layout, {"round": c, "chunk": k, "data": (word >> (k * dut.chunk_width)) & mask})
            for c, word in enumerate(words) for k in range(dut.chunks)]


def vectors(rng, p, count, in_bits, spiking):
    lo, hi = (0, 1) if spiking else (-(1 << (in_bits - 1)), (1 << (in_bits - 1)) - 1)
    structured = [[lo] * p.rows, [hi] * p.rows, [0] * p.rows,
                  [lo if r % 2 else hi for r in range(p.rows)]]
    return structured + [[rng.randint(lo, hi) for _ in range(p.rows)] for _ in range(count)]


def weights(rng, p, kind):
    if kind == "max":
        return torch.full((p.rows, p.n_out), p.w_max)
    if kind == "min":
        return torch.full((p.rows, p.n_out), -p.w_max)
    return torch.tensor([[rng.randint(-p.w_max, p.w_max) for _ in range(p.n_out)]
                         for _ in range(p.rows)])


def run_tile(dut, w, xs, *, in_bits, adc_bits, shift, spiking, seed, idle, stall):
    layout_i, layout_o = dut.i.payload.shape(), dut.o.payload.shape()
    out, cycles = simulate_streams(
        dut, preload={"cells": cell_chunks(dut, w)},
        feeds={"i": [pack(layout_i, x) for x in xs]}, drains={"o": len(xs)},
        setup={"planes": in_bits, "spiking": int(spiking), "adc_bits": adc_bits, "shift": shift},
        seed=seed, idle=idle, stall=stall)
    return [unpack(layout_o, beat) for beat in out["o"]], cycles


@pytest.mark.parametrize("tile, chunk", TILES, ids=["1b-cells", "2b-cells", "one-round"])
@pytest.mark.parametrize("idle, stall", [("none", "none"), ("random:0.4", "random:0.5"),
                                         ("periodic:110", "burst:4:0.3")])
def test_tile_equals_the_golden_model(tile, chunk, idle, stall):
    p = XbarParams(**tile)
    dut = CrossbarTile(p, chunk_width=chunk)
    rng = random.Random(hash((idle, stall, chunk)) & 0xFFFF)
    settings = [  # (in_bits, adc_bits, shift, spiking, weights)
        (p.in_bits, p.adc_bits, p.shift, False, "random"),
        (p.in_bits, p.adc_bits, 0, False, "max"),                 # clips
        (2, 1, p.max_shift, False, "min"),
        (p.in_bits, p.adc_bits, 1, True, "random"),
    ]
    for in_bits, adc_bits, shift, spiking, kind in settings:
        w = weights(rng, p, kind)
        xs = vectors(rng, p, 6, in_bits, spiking)
        got, _ = run_tile(dut, w, xs, in_bits=in_bits, adc_bits=adc_bits, shift=shift,
                          spiking=spiking, seed=rng.randrange(1 << 16), idle=idle, stall=stall)
        x = torch.tensor(xs)
        want = xbar_mvm(x.unsqueeze(0) if spiking else x, w, p, in_bits=in_bits,
                        adc_bits=adc_bits, adc_shift=shift, spiking=spiking).y
        want = (want[0] if spiking else want).tolist()
        for b, (g, e) in enumerate(zip(got, want)):
            assert g == e, (f"{kind} weights, in_bits {in_bits}, adc_bits {adc_bits}, shift "
                            f"{shift}, spiking {spiking}: vector {b}: expected {e}, got {g}")


def test_an_exact_adc_gives_the_integer_matmul():
    p = XbarParams(rows=12, cols=28, w_bits=8, in_bits=5, cols_per_adc=4, adc_bits=4)
    rng = random.Random(3)
    w = weights(rng, p, "random")
    xs = vectors(rng, p, 5, p.in_bits, False)
    got, _ = run_tile(CrossbarTile(p, chunk_width=32), w, xs, in_bits=p.in_bits,
                      adc_bits=p.adc_bits, shift=0, spiking=False, seed=1, idle="none",
                      stall="none")
    assert got == (torch.tensor(xs) @ w).tolist()


@pytest.mark.parametrize("spiking", [False, True])
def test_cycles_per_vector_meet_the_bound(spiking):
    """Back to back, with no idle input or back-pressure: ``planes * cols_per_adc`` cycles per
    vector plus the fixed latency, exactly."""
    p = XbarParams(**TILES[0][0])
    dut = CrossbarTile(p, chunk_width=32)
    xs = vectors(random.Random(1), p, 12, p.in_bits, spiking)
    w = weights(random.Random(2), p, "random")
    _, cycles = run_tile(dut, w, xs, in_bits=p.in_bits, adc_bits=p.adc_bits, shift=p.shift,
                         spiking=spiking, seed=0, idle="none", stall="none")
    per = dut.cycles_per_vector(1 if spiking else p.in_bits)
    preload = p.cols_per_adc * dut.chunks
    assert cycles - preload == len(xs) * per + dut.FIXED_LATENCY, cycles


TILE_SMALL = {"rows": 16, "cols": 16, "w_bits": 4, "in_bits": 4, "cols_per_adc": 4,
              "adc_bits": 4, "chunk_width": 32}


def test_tile_regression_under_verilator():
    result = run_bench("xbar_tile", TILE_SMALL, seed=3, testcase="regression",
                       options={"cases": 4})
    assert result.ok, result.summary()
    assert result.stats["items"] > 0


def test_tile_regression_catches_a_wrong_golden_model():
    result = run_bench("xbar_tile", TILE_SMALL, seed=3, testcase="regression",
                       options={"cases": 0, "golden_shift": 2})
    assert not result.ok and "expected" in result.failed[0][1]
