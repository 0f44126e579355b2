"""The DMA engines against an AXI4 memory in Amaranth's simulator: whole requests cut into
bursts that respect max_burst and the 4 KiB rule, several in flight, every byte where it
belongs, error responses reported -- under back-pressure on every channel."""

import random

import pytest
from amaranth import *
from amaranth.lib import wiring
from amaranth.lib.wiring import Out, connect, flipped
from amaranth.sim import Simulator

from snnforge.hw.common.axi import AXI4Signature
from snnforge.hw.common.dma import DMAReader, DMAWriter
from snnforge.sim.amaranth_axi import AxiMemory
from snnforge.sim.patterns import Pattern


class Harness(wiring.Component):
    def __init__(self, dw, burst, outstanding):
        self.reader = DMAReader(data_width=dw, max_burst=burst, outstanding=outstanding,
                                max_beats=4096)
        self.writer = DMAWriter(data_width=dw, max_burst=burst, outstanding=outstanding,
                                max_beats=4096)
        rd, wr = self.reader.signature.members, self.writer.signature.members
        super().__init__({
            "m_axi": Out(AXI4Signature(data_width=dw)),
            "rd_req": rd["req"], "rd_data": rd["data"],
            "wr_req": wr["req"], "wr_data": wr["data"], "wr_done": wr["done"],
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.reader, m.submodules.writer = self.reader, self.writer
        connect(m, flipped(self.rd_req), self.reader.req)
        connect(m, self.reader.data, flipped(self.rd_data))
        connect(m, flipped(self.wr_req), self.writer.req)
        connect(m, flipped(self.wr_data), self.writer.data)
        connect(m, self.writer.done, flipped(self.wr_done))
        for name, member in self.m_axi.signature.members.items():
            owner = self.reader.bus if name.startswith(("ar", "r")) else self.writer.bus
            if member.flow == Out:
                m.d.comb += getattr(self.m_axi, name).eq(getattr(owner, name))
            else:
                m.d.comb += getattr(owner, name).eq(getattr(self.m_axi, name))
        return m


def run(dut, memory, benches, monitor=None):
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    memory.add_to(sim)
    if monitor is not None:
        sim.add_testbench(monitor, background=True)
    for bench in benches if isinstance(benches, list) else [benches]:
        sim.add_testbench(bench)
    sim.run()


def burst_monitor(dut, bursts, bpb):
    """Records every accepted AR/AW burst (kind, byte address, beats)."""
    async def monitor(ctx):
        async for _, _, arv, arr, ara, arl, awv, awr, awa, awl in ctx.tick().sample(
                dut.m_axi.arvalid, dut.m_axi.arready, dut.m_axi.araddr, dut.m_axi.arlen,
                dut.m_axi.awvalid, dut.m_axi.awready, dut.m_axi.awaddr, dut.m_axi.awlen):
            if arv and arr:
                bursts.append(("r", ara, arl + 1))
            if awv and awr:
                bursts.append(("w", awa, awl + 1))
    return monitor


@pytest.mark.parametrize("dw, burst, outstanding, stall", [
    (32, 16, 4, "random:0.3"), (128, 16, 4, "periodic:1101"), (128, 256, 2, "burst:6:0.1"),
    (256, 8, 1, "none"), (64, 3, 8, "random:0.5")])
def test_requests_round_trip_in_legal_bursts(dw, burst, outstanding, stall):
    bpb = dw // 8
    dut = Harness(dw, burst, outstanding)
    memory = AxiMemory(dut.m_axi, 1 << 16, latency=5, stall=stall, seed=dw)
    rng = random.Random(dw + burst)
    # Requests that start just below a 4 KiB boundary, span several, or are a single beat.
    requests = [(4096 - 3 * bpb, 7), (0, 1), (8192 + 5 * bpb, 300 if dw <= 64 else 130),
                (5 * 4096 - bpb, 2), (24000 // bpb * bpb, rng.randrange(1, 90))]
    spans = sorted((a, a + n * bpb) for a, n in requests)
    assert all(end <= start for (_, end), (start, _) in zip(spans, spans[1:]))
    payload = {r: [rng.getrandbits(dw) for _ in range(r[1])] for r in requests}
    got, bursts = {}, []

    async def bench(ctx):
        for (addr, beats), beats_data in payload.items():
            ctx.set(dut.wr_req.payload, {"addr": addr, "beats": beats})
            ctx.set(dut.wr_req.valid, 1)
            await ctx.tick().until(dut.wr_req.ready)
            ctx.set(dut.wr_req.valid, 0)
            ctx.set(dut.wr_done.ready, 1)
            for value in beats_data:
                ctx.set(dut.wr_data.payload, {"data": value, "strb": (1 << bpb) - 1})
                ctx.set(dut.wr_data.valid, 1)
                await ctx.tick().until(dut.wr_data.ready)
            ctx.set(dut.wr_data.valid, 0)
            done, = await ctx.tick().sample(dut.wr_done.payload).until(dut.wr_done.valid)
            assert done.error == 0
        # All reads queued back to back (several requests in flight) while `drain` takes them.
        for tag, (addr, beats) in enumerate(order):
            ctx.set(dut.rd_req.payload, {"addr": addr, "beats": beats, "tag": tag % 4})
            ctx.set(dut.rd_req.valid, 1)
            await ctx.tick().until(dut.rd_req.ready)
        ctx.set(dut.rd_req.valid, 0)

    order = list(payload)

    async def drain(ctx):
        # Starts after the writes: reads are issued only then.
        await ctx.tick().until(dut.rd_req.valid)
        ready = Pattern("random:0.3", 7)
        for tag, key in enumerate(order):
            beats = []
            while True:
                go = ready.go()
                ctx.set(dut.rd_data.ready, go)
                _, _, valid, beat = await ctx.tick().sample(dut.rd_data.valid, dut.rd_data.payload)
                if valid and go:
                    assert beat.tag == tag % 4 and beat.error == 0
                    beats.append(int(beat.data))
                    if beat.last:
                        break
            got[key] = beats

    run(dut, memory, [bench, drain], burst_monitor(dut, bursts, bpb))
    assert got == payload
    for (addr, beats), values in payload.items():
        stored = memory.read(addr, beats * bpb)
        assert stored == b"".join(v.to_bytes(bpb, "little") for v in values)
    assert bursts, "no burst seen"
    for kind, addr, beats in bursts:
        assert 1 <= beats <= burst and addr % bpb == 0
        assert addr // 4096 == (addr + beats * bpb - 1) // 4096, (kind, hex(addr), beats)
    # Whole requests are covered by their bursts, in order.
    for kind in "rw":
        covered = [(a, n) for k, a, n in bursts if k == kind]
        assert sum(n for _, n in covered) == sum(b for _, b in payload)


def test_error_responses_are_reported():
    dut = Harness(128, 16, 4)
    memory = AxiMemory(dut.m_axi, 4096, latency=2)
    seen = {}

    async def bench(ctx):
        ctx.set(dut.rd_data.ready, 1)
        ctx.set(dut.rd_req.payload, {"addr": 4096 - 32, "beats": 4, "tag": 1})
        ctx.set(dut.rd_req.valid, 1)
        await ctx.tick().until(dut.rd_req.ready)
        ctx.set(dut.rd_req.valid, 0)
        errors = []
        while len(errors) < 4:
            _, _, valid, beat = await ctx.tick().sample(dut.rd_data.valid, dut.rd_data.payload)
            if valid:
                errors.append(int(beat.error))
        seen["read"] = errors
        ctx.set(dut.wr_req.payload, {"addr": 4096, "beats": 1})
        ctx.set(dut.wr_req.valid, 1)
        await ctx.tick().until(dut.wr_req.ready)
        ctx.set(dut.wr_req.valid, 0)
        ctx.set(dut.wr_data.payload, {"data": 1, "strb": 0xFFFF})
        ctx.set(dut.wr_data.valid, 1)
        await ctx.tick().until(dut.wr_data.ready)
        ctx.set(dut.wr_data.valid, 0)
        ctx.set(dut.wr_done.ready, 1)
        done, = await ctx.tick().sample(dut.wr_done.payload).until(dut.wr_done.valid)
        seen["write"] = int(done.error)

    run(dut, memory, bench)
    assert seen == {"read": [0, 0, 1, 1], "write": 1}


def test_engines_validate_their_parameters():
    with pytest.raises(ValueError, match="max_burst"):
        DMAReader(max_burst=0)
    with pytest.raises(ValueError, match="outstanding"):
        DMAWriter(outstanding=0)
    with pytest.raises(ValueError, match="data_width"):
        AXI4Signature(data_width=48)
