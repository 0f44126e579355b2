"""LIF array and LIF core in Amaranth's simulator: the same vectors and golden model as the
cocotb regression, small sizes, no Verilator build."""

import pytest
from amaranth.sim import Simulator

from snnforge.golden.common.lif import LIFParams
from snnforge.hw.common.lif import LIFArray
from snnforge.hw.common.lif_core import LIFCore
from snnforge.host import HostDriver
from snnforge.sim.amaranth_host import AmaranthTransport
from snnforge.sim.amaranth_sim import simulate_streams
from snnforge.sim.cocotb_streams import Scoreboard
from snnforge.sim.common.lif_vectors import expected_beats, lif_cases
from snnforge.sim.payload import pack, unpack

CONFIGS = [
    (LIFParams(), 1),
    (LIFParams(T=1, leak="none", reset="soft"), 2),
    (LIFParams(T=2, leak="mul", reset="soft", masked="leak_only", in_width=12, mem_width=10), 1),
    (LIFParams(T=3, leak="shift", saturate=False, masked="gate_reset", threshold=20), 3),
    (LIFParams(T=8, leak="shift", leak_shift=3, in_width=8, mem_width=12, threshold=100), 16),
]


@pytest.mark.parametrize("p, ops", CONFIGS, ids=lambda c: repr(c)[:60])
def test_lif_array_matches_golden(p, ops):
    layouts = LIFArray(p, ops_per_stage=ops)
    layouts._MustUse__silence = True
    in_layout, out_layout = layouts.i.payload.shape(), layouts.o.payload.shape()
    for case in lif_cases(p, seed=3, n_random=120):
        out, _ = simulate_streams(
            LIFArray(p, ops_per_stage=ops),
            feeds={"i": [pack(in_layout, {"current": c}) for c in case.currents]},
            drains={"o": len(case.currents)},
            setup={"threshold": case.threshold, "leak_amount": case.leak_amount,
                   "tmask": case.tmask},
            seed=5, idle=0.3, stall=0.3)
        Scoreboard(case.name).compare(expected_beats(p, case), [unpack(out_layout, x) for x in out["o"]])


@pytest.mark.parametrize("p, ops", CONFIGS, ids=lambda c: repr(c)[:60])
def test_lif_array_traces_every_step(p, ops):
    """``trace=True``: each step's membrane before its reset (leak_only masked steps: the leaked
    one), as ``lif_integer(..., trace=True)`` gives it for BPTT."""
    dut = LIFArray(p, ops_per_stage=ops, trace=True)
    in_layout, out_layout = dut.i.payload.shape(), dut.o.payload.shape()
    cases = lif_cases(p, seed=11, n_random=60)
    full = (1 << p.T) - 1
    for case in [cases[-1]] + [c for c in cases if c.tmask != full][:1]:   # one masked, if any
        out, _ = simulate_streams(
            dut, feeds={"i": [pack(in_layout, {"current": c}) for c in case.currents]},
            drains={"o": len(case.currents)},
            setup={"threshold": case.threshold, "leak_amount": case.leak_amount,
                   "tmask": case.tmask}, seed=4, idle=0.3, stall=0.3)
        Scoreboard(case.name).compare(expected_beats(p, case, trace=True),
                                      [unpack(out_layout, x) for x in out["o"]])


def test_lif_array_without_membrane_output():
    p = LIFParams(T=4, leak="shift", reset="soft")
    dut = LIFArray(p, membrane=False)
    out_layout = dut.o.payload.shape()
    assert set(dict(out_layout.members)) == {"spikes"} and out_layout.size == 4
    case = lif_cases(p, seed=7, n_random=100)[-1]
    out, _ = simulate_streams(dut, feeds={"i": [pack(dut.i.payload.shape(), {"current": c})
                                                for c in case.currents]},
                              drains={"o": len(case.currents)},
                              setup={"threshold": case.threshold, "leak_amount": case.leak_amount,
                                     "tmask": case.tmask}, seed=2)
    Scoreboard(case.name).compare(expected_beats(p, case, membrane=False),
                                  [unpack(out_layout, x) for x in out["o"]])


def test_lif_array_throughput_one_neuron_per_cycle():
    p = LIFParams(T=4)
    dut = LIFArray(p)
    n = 200
    _, cycles = simulate_streams(dut, feeds={"i": [0] * n}, drains={"o": n},
                                 setup={"tmask": 15}, idle=0.0, stall=0.0)
    assert cycles <= n + dut.latency + 3


def test_lif_array_bad_construction():
    with pytest.raises(ValueError, match="ops_per_stage"):
        LIFArray(LIFParams(T=2), ops_per_stage=5)
    with pytest.raises(TypeError, match="params"):
        LIFArray({"T": 2})
    with pytest.raises(ValueError, match="membrane"):
        LIFArray(LIFParams(T=2), membrane="yes")


def test_lif_core_through_host_driver():
    p = LIFParams(T=4, in_width=16, leak="mul", reset="soft")
    dut = LIFCore(p, fifo_depth=8)
    case = lif_cases(p, seed=2, n_random=40)[-1]
    dw, in_mask, mem_mask = dut.regmap.data_width, (1 << p.in_width) - 1, (1 << p.mem_width) - 1
    got = []

    async def bench(ctx):
        host = HostDriver(dut.regmap, AmaranthTransport(ctx, dut, idle=0.3, stall=0.3, seed=4))
        await host.write_many({"threshold": case.threshold, "leak_amount": case.leak_amount,
                               "tmask": case.tmask})
        assert await host.read("threshold") == case.threshold
        for currents in case.currents:
            value = sum((c & in_mask) << (p.in_width * t) for t, c in enumerate(currents))
            words = [(value >> (dw * k)) & ((1 << dw) - 1) for k in range(dut.words_per_neuron)]
            await host.write_window("currents", words)
            got.append((await host.read_window("results", 1))[0])
        counts = await host.read_many(["neurons", "evaluated"])
        assert counts == {"neurons": len(case.currents),
                          "evaluated": len(case.currents) * bin(case.tmask).count("1")}
        await host.write("control", clear=1)
        assert await host.read("neurons") == 0

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    expected = [e["spikes"] | ((e["membrane"] & mem_mask) << p.T) for e in expected_beats(p, case)]
    Scoreboard("lif_core").compare(expected, got)


@pytest.mark.parametrize("p, ops", [(LIFParams(T=4, in_width=16), 1),
                                    (LIFParams(T=3, in_width=8, mem_width=10), 2),
                                    (LIFParams(T=8, in_width=12), 3)])
def test_lif_core_latency_and_throughput_as_documented(p, ops):
    """LIFCore.latency: cycles from the accepted command writing a neuron's last current word to
    the response of a ``results`` read issued right after it; throughput: measured with the
    host writing a few neurons ahead of its reads, as LIFCore.throughput says."""
    dut = LIFCore(p, ops_per_stage=ops, fifo_depth=8)
    layout = dut.cmd.payload.shape()
    measured = []
    ahead, neurons, settle = 4, 24, 8

    def command(write, name):
        return layout.const({"write": write, "addr": dut.regmap[name].address, "data": 0})

    async def bench(ctx):
        ctx.set(dut.rsp.ready, 1)
        ctx.set(dut.cmd.valid, 1)
        ctx.set(dut.cmd.payload, command(1, "currents"))
        for _ in range(dut.words_per_neuron):
            await ctx.tick().until(dut.cmd.ready)
        ctx.set(dut.cmd.payload, command(0, "results"))
        await ctx.tick().until(dut.cmd.ready)
        ctx.set(dut.cmd.valid, 0)
        cycles = 1
        while not ctx.get(dut.rsp.valid):
            await ctx.tick()
            cycles += 1
        measured.append(cycles)
        await ctx.tick()
        # Throughput: neuron n's currents, then neuron n - ahead's result.
        cycle = 0
        for n in range(neurons):
            ctx.set(dut.cmd.valid, 1)
            for _ in range(dut.words_per_neuron):
                ctx.set(dut.cmd.payload, command(1, "currents"))
                cycle += 1 + len([_ async for _ in _until_ready(ctx, dut)])
            if n >= ahead:
                for _ in range(dut.words_per_result):
                    ctx.set(dut.cmd.payload, command(0, "results"))
                    cycle += 1 + len([_ async for _ in _until_ready(ctx, dut)])
            if n == settle:
                start = cycle
        ctx.set(dut.cmd.valid, 0)
        measured.append((neurons - 1 - settle) / (cycle - start))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert measured[0] == dut.latency, (measured, dut.lif.latency)
    assert measured[1] == pytest.approx(dut.throughput), measured


async def _until_ready(ctx, dut):
    """Ticks until the command offered is taken; yields once per extra cycle it waited."""
    _, _, ready = await ctx.tick().sample(dut.cmd.ready)
    while not ready:
        yield
        _, _, ready = await ctx.tick().sample(dut.cmd.ready)


@pytest.mark.parametrize("dw, membrane", [(128, True), (32, False), (256, True)])
def test_lif_core_through_its_dma(dw, membrane):
    """A command list loads the currents from memory a FIFO's worth at a time and stores the
    results; every result equals the golden model's, under memory back-pressure."""
    from snnforge.hw.common.lif_core import LIFCoreConfig
    from snnforge.hw.common.lif_driver import LIFDriver
    from snnforge.sim.amaranth_axi import AxiMemory
    import numpy as np
    cfg = LIFCoreConfig(T=4, in_width=12, leak="mul", reset="soft", membrane=membrane,
                        fifo_depth=8, dma_width=dw)
    p = cfg.lif
    dut = LIFCore(p, fifo_depth=8, membrane=membrane, dma_width=dw)
    case = lif_cases(p, seed=9, n_random=37)[-1]
    memory = AxiMemory(dut.m_axi, 1 << 16, latency=4, stall="random:0.3", seed=2)
    got = []

    async def bench(ctx):
        host = HostDriver(dut.regmap, AmaranthTransport(ctx, dut, memory=memory, idle=0.2,
                                                        stall=0.2))
        driver = LIFDriver(host, cfg, memory_size=1 << 16)
        job = LIFDriver.validate(cfg, {"currents": np.array(case.currents)},
                                 {"threshold": case.threshold, "leak_amount": case.leak_amount,
                                  "tmask": case.tmask})
        got.append(await driver.run(job))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    memory.add_to(sim)
    sim.add_testbench(bench)
    sim.run()
    result, = got
    want = expected_beats(p, case, membrane=membrane)
    spikes = [sum(int(b) << t for t, b in enumerate(row)) for row in result.outputs["spikes"]]
    assert spikes == [w["spikes"] for w in want]
    if membrane:
        assert result.outputs["membrane"].tolist() == [w["membrane"] for w in want]
    assert result.counters["neurons"] == len(want)
    assert result.counters["dma_write_bytes"] > 0
