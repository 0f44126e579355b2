"""cocotb regression of the bare crossbar tile: every output beat against
``golden.trex.xbar.xbar_mvm``.

Per case the cells are written on ``cells``, the settings (``planes``, ``spiking``,
``adc_bits``, ``shift``) set, and the vectors sent on ``i`` under an idle pattern while ``o``
is drained under a back-pressure pattern; every beat is compared and nothing more may come out.
Cases: extreme inputs and weights, all-zero inputs, exact and clipping ADC settings, the
narrowest settings, spiking, and ``cases`` random ones. Option ``golden_shift`` gives the golden
model another ADC shift (the self-test: it must fail).
"""

from __future__ import annotations

import random

import cocotb
from cocotb.triggers import RisingEdge

from ...golden.trex.params import cell_levels, round_words
from ...golden.trex.xbar import xbar_mvm
from ..cocotb_streams import Scoreboard, StreamSink, StreamSource
from ..patterns import scheduled
from ..tb import bench_test


def cases(p, seed: int, n_random: int) -> list[dict]:
    rng = random.Random(seed)
    top = (1 << (p.in_bits - 1)) - 1

    def vectors(B, lo, hi):
        return [[rng.randint(lo, hi) for _ in range(p.rows)] for _ in range(B)]

    def weights(kind):
        if kind in ("max", "min"):
            return [[p.w_max if kind == "max" else -p.w_max] * p.n_out for _ in range(p.rows)]
        return [[rng.randint(-p.w_max, p.w_max) for _ in range(p.n_out)] for _ in range(p.rows)]

    out = [dict(name="extremes", x=[[-top - 1] * p.rows, [top] * p.rows, [0] * p.rows],
                w=weights("max"), planes=p.in_bits, spiking=0, adc_bits=p.adc_bits, shift=0),
           dict(name="min-weights", x=vectors(3, -top - 1, top), w=weights("min"),
                planes=p.in_bits, spiking=0, adc_bits=p.adc_bits, shift=p.shift),
           dict(name="narrowest", x=vectors(3, -2, 1), w=weights("random"), planes=2,
                spiking=0, adc_bits=1, shift=p.max_shift),
           dict(name="spiking", x=vectors(4, 0, 1), w=weights("random"), planes=p.in_bits,
                spiking=1, adc_bits=p.adc_bits, shift=0)]
    for k in range(n_random):
        planes = rng.randint(2, p.in_bits)
        half = 1 << (planes - 1)
        spiking = rng.random() < 0.3
        out.append(dict(name=f"random-{k}", x=vectors(rng.randint(1, 6), 0 if spiking else -half,
                                                      1 if spiking else half - 1),
                        w=weights("random"), planes=planes, spiking=int(spiking),
                        adc_bits=rng.randint(1, p.adc_bits), shift=rng.randint(0, p.max_shift)))
    return out


@bench_test
async def regression(tb):
    dut, tile, p = tb.dut, tb.component, tb.cfg.tile
    await tb.reset()
    wrong = tb.option("golden_shift", None)
    vectors = 0
    for case, (idle, stall) in scheduled(cases(p, tb.seed, tb.option("cases", 4)), tb.patterns()):
        words = round_words(cell_levels(case["w"], p), p)
        mask = (1 << tile.chunk_width) - 1
        chunks = [{"round": c, "chunk": k, "data": (word >> (k * tile.chunk_width)) & mask}
                  for c, word in enumerate(words) for k in range(tile.chunks)]
        cells = StreamSource(dut, "cells", tb.clk, layout=tile.cells.payload.shape(),
                             idle=idle, seed=tb.seed + vectors)
        await cells.send(chunks)
        for name in ("planes", "spiking", "adc_bits", "shift"):
            getattr(dut, name).value = case[name]
        await RisingEdge(tb.clk)
        src = StreamSource(dut, "i", tb.clk, layout=tile.i.payload.shape(), idle=idle,
                           seed=tb.seed + vectors + 1)
        sink = StreamSink(dut, "o", tb.clk, layout=tile.o.payload.shape(), stall=stall,
                          seed=tb.seed + vectors + 2)
        sender = cocotb.start_soon(src.send(case["x"]))
        got = await sink.recv(len(case["x"]), timeout_cycles=2000 * len(case["x"]) + 1000)
        await sender
        shift = case["shift"] if wrong is None else wrong
        y = xbar_mvm(case["x"] if not case["spiking"] else [case["x"]], case["w"], p,
                     in_bits=case["planes"], adc_bits=case["adc_bits"], adc_shift=shift,
                     spiking=bool(case["spiking"])).y
        expected = (y[0] if case["spiking"] else y).tolist()
        Scoreboard(f"{case['name']} (planes {case['planes']}, spiking {case['spiking']}, "
                   f"adc_bits {case['adc_bits']}, shift {case['shift']}, idle {idle}, stall "
                   f"{stall})").compare(expected, got)
        await sink.expect_quiet(tile.FIXED_LATENCY + 4)
        vectors += len(expected)
    tb.record(items=vectors, unit="matrix-vector products")
