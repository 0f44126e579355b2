"""cocotb benches of the example family."""

from __future__ import annotations

from snnforge.host import HostDriver
from snnforge.sim.cocotb_streams import CocotbTransport, StreamSink
from snnforge.sim.patterns import scheduled
from snnforge.sim.tb import bench_test

from .generator import AccDriver


@bench_test
async def regression(tb):
    core = tb.component
    transport = CocotbTransport(tb.dut, tb.clk, core.cmd.payload.shape(), seed=tb.seed)
    driver = AccDriver(HostDriver(core.regmap, transport), tb.cfg)
    await tb.reset()
    top = (1 << tb.cfg.width) - 1
    cases = [([0, 1, 2, top], 0), ([top] * 9, 1), (list(range(20)), top)]
    checked = 0
    for (x, offset), (idle, stall) in scheduled(cases, tb.patterns()):
        transport.set_patterns(idle, stall)
        job = AccDriver.validate(tb.cfg, {"x": x}, {"offset": offset})
        result = await driver.run(job)
        want = [(v + offset) & top for v in x]
        assert result.outputs["y"].tolist() == want, (x, offset, result.outputs["y"])
        checked += len(x)
    tb.record(items=checked, unit="sums")


MODES = ("hold", "drop", "change")


@bench_test
async def pulse(tb):
    mode = tb.option("mode", "hold")
    tb.dut.mode.value = MODES.index(mode)
    await tb.reset()
    sink = StreamSink(tb.dut, "o", tb.clk, stall="periodic:100")
    got = await sink.recv(12, timeout_cycles=200)
    assert got == list(range(12)) or mode != "hold", got
    tb.record(items=len(got), unit="beats")
