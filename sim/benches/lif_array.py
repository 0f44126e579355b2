"""cocotb regression of LIFArray: every output beat compared with golden.lif.lif_integer.

Options (``run_bench(..., options=...)``): ``n_random`` random neurons (default 2000), ``idle``
probability of an idle input cycle and ``stall`` probability of output back-pressure (0.3 each),
``golden_params`` (fields of LIFParams overridden in the golden model only: the bench self-test).
"""

from __future__ import annotations

import cocotb
from cocotb.triggers import RisingEdge

from ...golden.lif import LIFParams
from ...generators import lif_params_from
from ..cocotb_streams import Scoreboard, StreamSink, StreamSource
from ..lif_vectors import expected_beats, lif_cases
from ..runner import record_stats
from .common import TB


async def run_cases(dut, select):
    tb = TB(dut)
    p: LIFParams = lif_params_from(tb.params)
    # Option golden_params deliberately mis-configures the golden model: the self-test of the
    # bench (tests/test_lif_regression.py) checks that it then fails with a readable diff.
    golden = p.replace(**tb.option("golden_params", {}))
    lif = tb.component
    idle, stall = tb.option("idle", 0.3), tb.option("stall", 0.3)
    cases = [c for c in lif_cases(p, seed=tb.seed, n_random=tb.option("n_random", 2000))
             if select(c.name)]
    src = StreamSource(dut, "i", tb.clk, layout=lif.i.payload.shape(), idle=idle, seed=tb.seed)
    sink = StreamSink(dut, "o", tb.clk, layout=lif.o.payload.shape(), stall=stall, seed=tb.seed + 1)
    dut.clear.value = 0
    await tb.reset()
    neurons = cycles = 0
    for case in cases:
        dut.threshold.value = case.threshold
        dut.leak_amount.value = case.leak_amount
        dut.tmask.value = case.tmask
        dut.clear.value = 1
        await RisingEdge(tb.clk)
        dut.clear.value = 0
        expected = expected_beats(golden, case, membrane=tb.params["membrane"])
        sender = cocotb.start_soon(src.send([{"current": c} for c in case.currents]))
        start = sink.cycles
        got = await sink.recv(len(expected), timeout_cycles=100 * len(expected) + 1000)
        await sender
        Scoreboard(f"{case.name} (T={p.T}, mask={case.tmask:0{p.T}b}, threshold={case.threshold}, "
                   f"leak_amount={case.leak_amount})").compare(
            expected, got, context=lambda i: f"currents={case.currents[i]}")
        await sink.expect_quiet(lif.latency + 2)
        evaluated = int(dut.evaluated.value)
        want = len(expected) * bin(case.tmask).count("1")
        assert evaluated == want, f"{case.name}: evaluated counter {evaluated}, expected {want}"
        neurons += len(expected)
        cycles += sink.cycles - start
    record_stats(tb.config, neurons=neurons, cycles=cycles)


@cocotb.test()
async def edges(dut):
    """Zeros, max positive/negative currents, threshold +-1, masks all-0/all-1/random, extreme
    register values."""
    await run_cases(dut, lambda name: not name.startswith("random"))


@cocotb.test()
async def random_neurons(dut):
    """Random currents under random masks, thresholds and leak amounts."""
    await run_cases(dut, lambda name: name.startswith("random"))
