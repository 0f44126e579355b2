"""The synthesizable AXI4 memory (hw/common/axi_ram.py) in Amaranth's simulator: random INCR
bursts with byte strobes against a bytearray, reads and writes at once from two masters, gaps
and back-pressure on every channel, DECERR past the end, IDs echoed, the slave's side of the
handshakes checked on every cycle; the DMA engines of the host interface on it; and, under
cocotb, both storages (block RAM, and the SPRAM cells with Yosys's model of them) against
cocotbext-axi's master."""

import random

import pytest
from amaranth import Elaboratable, Module
from amaranth.back import verilog

from snnforge.hw.common.axi_ram import AXI4RAM, RESP_DECERR
from snnforge.hw.common.dma import DMAReader, DMAWriter
from snnforge.lint import lint_verilog
from snnforge.sim.common.axi_ram import simulate_axi_ram, spram_model
from snnforge.sim.amaranth_sim import run_testbenches
from snnforge.sim.patterns import Pattern

SIZE = 1 << 10


class Held:
    """A channel the slave drives: once valid without ready, valid and the payload hold."""

    def __init__(self, name):
        self.name, self.held = name, None

    def check(self, valid, ready, payload):
        if self.held is not None and (not valid or payload != self.held):
            raise AssertionError(f"{self.name}: {'valid fell' if not valid else 'payload changed'}"
                                 " before the handshake")
        self.held = payload if valid and not ready else None


class Master:
    """One AXI4 master of random bursts inside a region, checking against ``model``."""

    def __init__(self, bus, model, region, *, seed, gaps="random:0.3", stalls="random:0.3"):
        self.bus, self.model, self.region = bus, model, region
        self.rng = random.Random(seed)
        self.gap, self.stall = Pattern(gaps, seed), Pattern(stalls, seed + 1)
        self.bpb = len(bus.wdata) // 8
        self.r_check, self.b_check = Held("R"), Held("B")

    def burst(self):
        lo, hi = self.region
        beats = min((hi - lo) // self.bpb, self.rng.choice([1, 2, 3, 16,
                                                             self.rng.randrange(1, 40)]))
        first = self.rng.randrange(lo // self.bpb, hi // self.bpb - beats + 1)
        return first * self.bpb, beats

    async def handshake(self, ctx, valid, ready, values):
        while not self.gap.go():
            await ctx.tick()
        for signal, value in values:
            ctx.set(signal, value)
        ctx.set(valid, 1)
        await ctx.tick().until(ready)
        ctx.set(valid, 0)

    async def write(self, ctx, addr, beats, *, strobes=True, ident=0):
        bus = self.bus
        await self.handshake(ctx, bus.awvalid, bus.awready,
                             [(bus.awaddr, addr), (bus.awlen, beats - 1), (bus.awid, ident),
                              (bus.awburst, 1), (bus.awsize, (self.bpb - 1).bit_length())])
        for k in range(beats):
            data = self.rng.randrange(1 << (8 * self.bpb))
            strb = self.rng.randrange(1 << self.bpb) if strobes else (1 << self.bpb) - 1
            at = addr + k * self.bpb
            if at + self.bpb <= SIZE:
                for i in range(self.bpb):
                    if strb >> i & 1:
                        self.model[at + i] = data >> (8 * i) & 0xFF
            await self.handshake(ctx, bus.wvalid, bus.wready,
                                 [(bus.wdata, data), (bus.wstrb, strb),
                                  (bus.wlast, k == beats - 1)])
        while True:
            ready = self.stall.go()
            ctx.set(bus.bready, ready)
            _, _, valid, resp, bid = await ctx.tick().sample(bus.bvalid, bus.bresp, bus.bid)
            self.b_check.check(valid, ready, (resp, bid))
            if valid and ready:
                break
        ctx.set(bus.bready, 0)
        return resp, bid

    async def read(self, ctx, addr, beats, *, ident=0):
        bus = self.bus
        await self.handshake(ctx, bus.arvalid, bus.arready,
                             [(bus.araddr, addr), (bus.arlen, beats - 1), (bus.arid, ident),
                              (bus.arburst, 1), (bus.arsize, (self.bpb - 1).bit_length())])
        got = []
        while len(got) < beats:
            ready = self.stall.go()
            ctx.set(bus.rready, ready)
            _, _, valid, data, resp, last, rid = await ctx.tick().sample(
                bus.rvalid, bus.rdata, bus.rresp, bus.rlast, bus.rid)
            self.r_check.check(valid, ready, (data, resp, last, rid))
            if valid and ready:
                assert rid == ident, f"rid {rid}, expected {ident}"
                assert last == (len(got) == beats - 1), f"rlast on beat {len(got)} of {beats}"
                got.append((data, resp))
        ctx.set(bus.rready, 0)
        return got

    def expected(self, addr, k):
        at = addr + k * self.bpb
        if at + self.bpb > SIZE:
            return 0, RESP_DECERR
        return int.from_bytes(bytes(self.model[at:at + self.bpb]), "little"), 0


def run(dut, *benches, deadline=300_000):
    run_testbenches(dut, *benches, deadline=deadline)


@pytest.mark.parametrize("data_width", [32, 128])
def test_random_bursts_two_masters_and_decerr(data_width):
    dut = AXI4RAM(data_width=data_width, size=SIZE, id_width=4)
    model = bytearray(SIZE)
    half = SIZE // 2
    writer = Master(dut.axi, model, (0, half), seed=1)
    reader = Master(dut.axi, model, (half, SIZE), seed=2, gaps="periodic:1101",
                    stalls="burst:5:0.2")
    bpb = data_width // 8
    phase = {"upper_written": False, "checked": 0}

    async def first_writer(ctx):
        # The upper half whole, then random bursts into the lower half while the other master
        # reads the upper half.
        for addr in range(half, SIZE, 16 * bpb):
            assert await writer.write(ctx, addr, 16, strobes=False, ident=3) == (0, 3)
        phase["upper_written"] = True
        for n in range(30):
            addr, beats = writer.burst()
            assert await writer.write(ctx, addr, beats, ident=n % 16) == (0, n % 16)
        while phase["checked"] < 30:
            await ctx.tick()
        for addr in range(0, half, 8 * bpb):
            got = await writer.read(ctx, addr, 8, ident=5)
            assert got == [writer.expected(addr, k) for k in range(8)], addr
        # Past the end: DECERR, reads give 0, nothing written.
        assert (await writer.write(ctx, SIZE - bpb, 3, ident=1))[0] == RESP_DECERR
        got = await writer.read(ctx, SIZE - 2 * bpb, 4, ident=2)
        assert got == [writer.expected(SIZE - 2 * bpb, k) for k in range(4)]
        assert [resp for _, resp in got] == [0, 0, RESP_DECERR, RESP_DECERR]

    async def second_reader(ctx):
        while not phase["upper_written"]:
            await ctx.tick()
        for n in range(30):
            addr, beats = reader.burst()
            got = await reader.read(ctx, addr, beats, ident=n % 16)
            assert got == [reader.expected(addr, k) for k in range(beats)], (addr, beats)
            phase["checked"] += 1

    run(dut, first_writer, second_reader)


def test_dma_engines_on_the_memory():
    """The host interface's DMA writer and reader (the masters of every core) through it:
    long requests cut into bursts, every byte back as written."""
    class Pair(Elaboratable):
        def __init__(self):
            opts = dict(addr_width=32, data_width=64, max_burst=8, outstanding=2,
                        max_beats=1 << 10)
            self.reader, self.writer = DMAReader(**opts, tag_bits=2), DMAWriter(**opts)
            self.ram = AXI4RAM(data_width=64, size=SIZE)

        def elaborate(self, platform):
            m = Module()
            m.submodules.reader, m.submodules.writer = self.reader, self.writer
            m.submodules.ram = self.ram
            for name, member in self.ram.axi.signature.members.items():
                owner = self.reader.bus if name.startswith(("ar", "r")) else self.writer.bus
                if member.flow.name == "In":        # driven by the master
                    m.d.comb += getattr(self.ram.axi, name).eq(getattr(owner, name))
                else:
                    m.d.comb += getattr(owner, name).eq(getattr(self.ram.axi, name))
            return m

    dut = Pair()
    rng = random.Random(4)
    words = [rng.randrange(1 << 64) for _ in range(100)]
    got = []

    async def bench(ctx):
        w = dut.writer
        ctx.set(w.req.payload.addr, 8 * 20)
        ctx.set(w.req.payload.beats, len(words))
        ctx.set(w.req.valid, 1)
        await ctx.tick().until(w.req.ready)
        ctx.set(w.req.valid, 0)
        for word in words:
            ctx.set(w.data.valid, 1)
            ctx.set(w.data.payload.data, word)
            ctx.set(w.data.payload.strb, 0xFF)
            await ctx.tick().until(w.data.ready)
        ctx.set(w.data.valid, 0)
        ctx.set(w.done.ready, 1)
        error, = await ctx.tick().sample(w.done.payload.error).until(w.done.valid)
        assert not error
        ctx.set(w.done.ready, 0)
        r = dut.reader
        ctx.set(r.req.payload.addr, 8 * 20)
        ctx.set(r.req.payload.beats, len(words))
        ctx.set(r.req.valid, 1)
        await ctx.tick().until(r.req.ready)
        ctx.set(r.req.valid, 0)
        stall = Pattern("random:0.3", 7)
        while len(got) < len(words):
            ready = stall.go()
            ctx.set(r.data.ready, ready)
            _, _, valid, data, error = await ctx.tick().sample(
                r.data.valid, r.data.payload.data, r.data.payload.error)
            if valid and ready:
                assert not error
                got.append(data)

    run(dut, bench)
    assert got == words


@pytest.mark.parametrize("kwargs, message", [
    ({"storage": "flash"}, "storage must be one of bram, spram"),
    ({"size": 1000}, "size must be a power of two of bytes, from two beats"),
    ({"size": 4}, "size must be a power of two of bytes, from two beats"),
    ({"storage": "spram", "data_width": 128, "size": 1 << 17}, "data_width must be at most 64"),
    ({"storage": "spram", "size": 1 << 18}, "size must be 65536..131072 bytes on SPRAM"),
    ({"data_width": 24}, "data_width must be one of 32, 64"),
])
def test_parameters_are_validated(kwargs, message):
    args = {"data_width": 32, "size": 1 << 16, **kwargs}
    with pytest.raises(ValueError, match=message):
        AXI4RAM(**args)


def test_both_storages_against_cocotbext_axi():
    result = simulate_axi_ram()
    assert result.ok, result.summary()
    assert result.stats["spram_bytes"] > 10_000 and result.stats["bram_bytes"] > 10_000


@pytest.mark.parametrize("storage", ["bram", "spram"])
def test_verilog_is_lint_clean(storage, tmp_path):
    ram = AXI4RAM(data_width=64, size=1 << 17, storage=storage)
    text = verilog.convert(ram, name="axi_ram", emit_src=False)
    path = tmp_path / "axi_ram.v"
    # The SPRAM cell's model is Yosys's, not ours: it is there to be instantiated, and its
    # power-off loop (a blocking assignment in a clocked process) is its own business.
    model = f"/* verilator lint_off BLKSEQ */\n{spram_model()}\n/* verilator lint_on BLKSEQ */\n"
    path.write_text(text + (model if storage == "spram" else ""))
    result = lint_verilog(path, "axi_ram")
    assert result.ok, result.summary()
