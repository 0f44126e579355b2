"""cocotb regression of LIFArray: every output beat compared with golden.common.lif.lif_integer.

Options (``run_bench(..., options=...)``): ``n_random`` random neurons (default 2000), ``idle``
(input) and ``stall`` (output) patterns (default: every case under one pair of the crossed set,
each pair used at least once), ``golden_params`` (fields of LIFParams overridden in the golden
model only: the bench self-test).
"""

from __future__ import annotations

import cocotb
from cocotb.triggers import RisingEdge

from ..cocotb_streams import Scoreboard, StreamSink, StreamSource
from ..tb import bench_test
from ..patterns import scheduled
from .lif_vectors import expected_beats, lif_cases


async def run_cases(tb, select):
    dut, lif, p = tb.dut, tb.component, tb.cfg.lif
    # Option golden_params deliberately mis-configures the golden model: the self-test of the
    # bench (tests/common/test_lif_regression.py) checks that it then fails with a readable diff.
    golden = p.replace(**tb.option("golden_params", {}))
    cases = [c for c in lif_cases(p, seed=tb.seed, n_random=tb.option("n_random", 2000))
             if select(c.name)]
    dut.clear.value = 0
    await tb.reset()
    neurons = cycles = 0
    for case, (idle, stall) in scheduled(cases, tb.patterns()):
        src = StreamSource(dut, "i", tb.clk, layout=lif.i.payload.shape(), idle=idle,
                           seed=tb.seed + neurons)
        sink = StreamSink(dut, "o", tb.clk, layout=lif.o.payload.shape(), stall=stall,
                          seed=tb.seed + neurons + 1)
        dut.threshold.value = case.threshold
        dut.leak_amount.value = case.leak_amount
        dut.tmask.value = case.tmask
        dut.clear.value = 1
        await RisingEdge(tb.clk)
        dut.clear.value = 0
        expected = expected_beats(golden, case, membrane=tb.cfg.membrane)
        sender = cocotb.start_soon(src.send([{"current": c} for c in case.currents]))
        start = sink.cycles
        got = await sink.recv(len(expected), timeout_cycles=100 * len(expected) + 1000)
        await sender
        Scoreboard(f"{case.name} (T={p.T}, mask={case.tmask:0{p.T}b}, threshold={case.threshold}, "
                   f"leak_amount={case.leak_amount}, idle {idle}, stall {stall})").compare(
            expected, got, context=lambda i: f"currents={case.currents[i]}")
        await sink.expect_quiet(lif.latency + 2)
        evaluated = int(dut.evaluated.value)
        want = len(expected) * bin(case.tmask).count("1")
        assert evaluated == want, f"{case.name}: evaluated counter {evaluated}, expected {want}"
        neurons += len(expected)
        cycles += sink.cycles - start
    tb.record(items=neurons, unit="neurons", cycles=cycles)


@bench_test
async def edges(tb):
    """Zeros, max positive/negative currents, threshold +-1, masks all-0/all-1/random, extreme
    register values."""
    await run_cases(tb, lambda name: not name.startswith("random"))


@bench_test
async def random_neurons(tb):
    """Random currents under random masks, thresholds and leak amounts."""
    await run_cases(tb, lambda name: name.startswith("random"))
