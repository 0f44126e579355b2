"""Shared blocks of hw/common in Amaranth's simulator: counters, stream converters, FIFO, host
port, SRAM window, serial I/O wrapper."""

import random

import pytest
from amaranth import *
from amaranth.lib import memory, stream, wiring
from amaranth.lib.wiring import In, Out, connect
from amaranth.sim import Simulator

from snnforge.hw.common.counters import PerfCounters
from snnforge.hw.common.hostport import (HostPort, RegisterMap, SramWindow, host_port_members)
from snnforge.hw.common.bits import at_most, at_most_one, popcount, sum_tree
from snnforge.hw.common.streams import BeatToWords, SkidBuffer, StreamFIFO, WordsToBeat
from snnforge.host import HostDriver
from snnforge.sim.amaranth_host import AmaranthTransport
from snnforge.sim.amaranth_sim import simulate_streams
from snnforge.synth.wrap import SerialWrapper


def run(dut, bench):
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()


def test_perf_counters_count_saturate_and_clear():
    dut = PerfCounters({"cycles": 1, "matches": 3}, width=4)

    async def bench(ctx):
        ctx.set(dut.inc.cycles, 1)
        ctx.set(dut.inc.matches, 5)
        await ctx.tick()
        assert ctx.get(dut.count.cycles) == 0           # increments are registered first
        await ctx.tick().repeat(2)
        assert ctx.get(dut.count.cycles) == 2 and ctx.get(dut.count.matches) == 10
        await ctx.tick().repeat(5)
        assert ctx.get(dut.count.cycles) == 7 and ctx.get(dut.count.matches) == 15  # saturated
        ctx.set(dut.clear, 1)       # increments in the cycle of a clear, or the one before, vanish
        await ctx.tick()
        ctx.set(dut.clear, 0)
        ctx.set(dut.inc.cycles, 0)
        ctx.set(dut.inc.matches, 0)
        await ctx.tick().repeat(3)
        assert ctx.get(dut.count.cycles) == 0 and ctx.get(dut.count.matches) == 0
    run(dut, bench)


def test_perf_counters_validate():
    with pytest.raises(ValueError, match="width"):
        PerfCounters({"a": 1}, width=0)
    with pytest.raises(ValueError, match="events"):
        PerfCounters({})
    with pytest.raises(ValueError, match="increment width"):
        PerfCounters({"a": 9}, width=8)


@pytest.mark.parametrize("beat_width, word", [(40, 16), (32, 32), (7, 8), (100, 32)])
def test_gearboxes_round_trip(beat_width, word):
    rng = random.Random(beat_width)
    beats = [rng.getrandbits(beat_width) for _ in range(60)]

    class Loop(wiring.Component):
        i: In(__import__("amaranth.lib.stream", fromlist=["Signature"]).Signature(beat_width))
        o: Out(__import__("amaranth.lib.stream", fromlist=["Signature"]).Signature(beat_width))

        def elaborate(self, platform):
            m = Module()
            m.submodules.split = split = BeatToWords(beat_width, word)
            m.submodules.fifo = fifo = StreamFIFO(word, 3)
            m.submodules.join = join = WordsToBeat(word, beat_width)
            connect(m, wiring.flipped(self.i), split.i)
            connect(m, split.o, fifo.i)
            connect(m, fifo.o, join.i)
            connect(m, join.o, wiring.flipped(self.o))
            return m

    out, _ = simulate_streams(Loop(), feeds={"i": beats}, drains={"o": len(beats)}, seed=1)
    assert out["o"] == beats


FIFO_KINDS = {"lut": {}, "buffered": {"buffered": True}, "block": {"block_ram": True},
              "head": {"head_register": True}}


@pytest.mark.parametrize("depth, kind", [(1, "lut"), (2, "lut"), (5, "lut"), (2, "buffered"),
                                         (5, "buffered"), (2, "block"), (5, "block"),
                                         (16, "block"), (2, "head"), (3, "head"), (5, "head")])
def test_stream_fifo_keeps_order_and_its_level(depth, kind):
    rng = random.Random(depth)
    beats = [rng.getrandbits(9) for _ in range(200)]
    beats[:4] = [0, 511, 0, 511]
    out, _ = simulate_streams(StreamFIFO(9, depth, **FIFO_KINDS[kind]), feeds={"i": beats},
                              drains={"o": len(beats)}, seed=depth, idle=0.3, stall=0.4)
    assert out["o"] == beats
    dut = StreamFIFO(9, depth, **FIFO_KINDS[kind])
    levels = []

    async def bench(ctx):
        ctx.set(dut.i.valid, 1)
        for k in range(depth + 3):          # nothing drains: it fills to depth, then refuses
            levels.append((ctx.get(dut.level), ctx.get(dut.i.ready)))
            ctx.set(dut.i.payload, k)
            await ctx.tick()
    run(dut, bench)
    if kind != "buffered":
        assert levels == [(min(k, depth), int(k < depth)) for k in range(depth + 3)]
    else:
        # The head register fills a cycle late: it may refuse a cycle early, but takes exactly
        # `depth` beats and counts each.
        assert sum(ready for _, ready in levels) == depth and levels[-1] == (depth, 0)
        assert all(level <= depth for level, _ in levels)


@pytest.mark.parametrize("kind, latency", [("lut", 1), ("buffered", 2), ("block", 3),
                                           ("head", 1)])
def test_stream_fifo_latency_and_throughput(kind, latency):
    """A beat written at cycle 0 is at the head at cycle ``latency``; with both sides always
    willing, one beat passes per cycle."""
    dut = StreamFIFO(8, 4, **FIFO_KINDS[kind])
    seen = []

    async def bench(ctx):
        ctx.set(dut.o.ready, 1)
        for cycle in range(40):
            ctx.set(dut.i.valid, cycle < 30)
            ctx.set(dut.i.payload, cycle)
            if ctx.get(dut.o.valid):
                seen.append((cycle, ctx.get(dut.o.payload)))
            await ctx.tick()
    run(dut, bench)
    assert seen == [(cycle + latency, cycle) for cycle in range(30)]


def _fifo_trace(dut, stimulus):
    """Per cycle: i.ready, level, o.valid and (while valid) the head, under ``stimulus``'s
    (i.valid, payload, o.ready) per cycle."""
    trace = []

    async def bench(ctx):
        for valid, payload, ready in stimulus:
            ctx.set(dut.i.valid, valid)
            ctx.set(dut.i.payload, payload)
            ctx.set(dut.o.ready, ready)
            head = ctx.get(dut.o.payload) if ctx.get(dut.o.valid) else None
            trace.append((ctx.get(dut.i.ready), ctx.get(dut.level), head))
            await ctx.tick()
    run(dut, bench)
    return trace


@pytest.mark.parametrize("depth", [2, 3, 4, 7])
def test_stream_fifo_head_register_is_the_lut_fifo_cycle_for_cycle(depth):
    """Full, empty and both at once, under bursts and stalls: every cycle's ready, level and
    head are those of the default FIFO; a corrupted trace is told apart (the check can fail)."""
    rng = random.Random(depth)
    stimulus = []
    for phase in range(12):                  # fill, drain, and mixed phases
        p_in, p_out = [(0.9, 0.1), (0.1, 0.9), (0.5, 0.5), (1.0, 1.0)][phase % 4]
        stimulus += [(int(rng.random() < p_in), rng.getrandbits(9), int(rng.random() < p_out))
                     for _ in range(25)]
    lut = _fifo_trace(StreamFIFO(9, depth), stimulus)
    head = _fifo_trace(StreamFIFO(9, depth, head_register=True), stimulus)
    assert head == lut
    assert {level for _, level, _ in lut} == set(range(depth + 1))   # both ends were reached
    assert _fifo_trace(_Swapped(depth), stimulus) != lut


class _Swapped(wiring.Component):
    """A head-register FIFO whose payload bits come out swapped: the self-test's wrong FIFO."""

    def __init__(self, depth):
        self._depth = depth
        super().__init__({"i": In(stream.Signature(9)), "o": Out(stream.Signature(9)),
                          "level": Out(range(depth + 1))})

    def elaborate(self, platform):
        m = Module()
        m.submodules.fifo = fifo = StreamFIFO(9, self._depth, head_register=True)
        m.d.comb += [fifo.i.valid.eq(self.i.valid), self.i.ready.eq(fifo.i.ready),
                     fifo.i.payload.eq(self.i.payload[::-1]), self.level.eq(fifo.level),
                     self.o.valid.eq(fifo.o.valid), self.o.payload.eq(fifo.o.payload),
                     fifo.o.ready.eq(self.o.ready)]
        return m


def test_stream_fifo_block_ram_is_marked_for_block_ram():
    from amaranth.back import rtlil
    assert 'attribute \\ram_style "block"' in rtlil.convert(StreamFIFO(64, 16, block_ram=True))
    with pytest.raises(ValueError, match="block_ram"):
        StreamFIFO(8, 4, buffered=True, block_ram=True)
    with pytest.raises(ValueError, match="head_register"):
        StreamFIFO(8, 4, block_ram=True, head_register=True)


@pytest.mark.parametrize("registered", [True, False])
@pytest.mark.parametrize("seed", range(3))
def test_skid_buffer_keeps_order_under_backpressure(seed, registered):
    rng = random.Random(seed)
    beats = [rng.getrandbits(12) for _ in range(300)]
    out, _ = simulate_streams(SkidBuffer(12, registered=registered), feeds={"i": beats},
                              drains={"o": len(beats)}, seed=seed, idle=0.3, stall=0.4)
    assert out["o"] == beats
    out, cycles = simulate_streams(SkidBuffer(12, registered=registered), feeds={"i": beats},
                                   drains={"o": len(beats)}, idle=0, stall=0)
    assert out["o"] == beats and cycles <= len(beats) + 3      # one beat per cycle


@pytest.mark.parametrize("registered", [True, False])
def test_skid_buffer_ready_is_registered(registered):
    dut = SkidBuffer(4, registered=registered)
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    seen = []

    async def bench(ctx):
        ctx.set(dut.i.valid, 1)
        for _ in range(3):                    # o stalls: the skid register fills
            await ctx.tick()
        for ready in (0, 1, 0):               # within one cycle: i.ready must not follow o.ready
            ctx.set(dut.o.ready, ready)
            seen.append(ctx.get(dut.i.ready))

    sim.add_testbench(bench)
    sim.run()
    assert seen == [0, 0, 0]


@pytest.mark.parametrize("registered, latency", [(True, 1), (False, 0)])
def test_skid_buffer_latency(registered, latency):
    """A beat offered to an idle, ready buffer leaves ``latency`` cycles later."""
    dut = SkidBuffer(8, registered=registered)
    seen = []

    async def bench(ctx):
        ctx.set(dut.o.ready, 1)
        for cycle in range(6):
            ctx.set(dut.i.valid, cycle == 2)
            ctx.set(dut.i.payload, 0x5A)
            if ctx.get(dut.o.valid):
                seen.append((cycle, ctx.get(dut.o.payload)))
            await ctx.tick()
    run(dut, bench)
    assert seen == [(2 + latency, 0x5A)]


def test_skid_buffer_rejects_a_bad_registered():
    with pytest.raises(ValueError, match="registered"):
        SkidBuffer(4, registered=1)


@pytest.mark.parametrize("n", [0, 1, 2, 3])
@pytest.mark.parametrize("width", [1, 2, 3, 5, 8, 128])
def test_at_most(width, n):
    m = Module()
    bits = Signal(width)
    out = at_most_one(m, bits) if n == 1 else at_most(m, bits, n)
    rng = random.Random(width)
    few = lambda k: sum(1 << p for p in rng.sample(range(width), k))
    values = (range(1 << width) if width <= 8 else
              [0, 1, 1 << 127, 3 << 126, (1 << 128) - 1]
              + [few(k) for k in (1, 2, 3, 4) for _ in range(20)]
              + [rng.getrandbits(width) for _ in range(50)])
    sim = Simulator(m)

    async def bench(ctx):
        for v in values:
            ctx.set(bits, v)
            assert ctx.get(out) == (bin(v).count("1") <= n), hex(v)

    sim.add_testbench(bench)
    sim.run()


def test_words_to_beat_word_order():
    out, _ = simulate_streams(WordsToBeat(8, 24), feeds={"i": [0x11, 0x22, 0x33]},
                              drains={"o": 1}, idle=0, stall=0)
    assert out["o"] == [0x332211]


class MemoryTop(wiring.Component):
    """A register map with registers and a window onto a 72-bit-wide memory (3 words per element,
    at a stride of 4 word addresses)."""

    def __init__(self):
        rm = RegisterMap(data_width=32)
        rm.add_register("scratch", 32, reset=0x1234)
        rm.add_register("narrow", 5)
        rm.add_register("status", 16, "ro")
        rm.add_register("go", 3, "pulse")
        rm.add_window("buf", 20, 72)
        self.regmap = rm.freeze()
        super().__init__({**host_port_members(rm), "go_seen": Out(3)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.host = host = HostPort(self.regmap)
        m.submodules.win = win = SramWindow(self.regmap["buf"], 32)
        m.submodules.mem = mem = memory.Memory(shape=72, depth=20, init=[])
        wr, rd = mem.write_port(), mem.read_port()
        connect(m, wiring.flipped(self.cmd), host.cmd)
        connect(m, host.rsp, wiring.flipped(self.rsp))
        connect(m, host.buf, win.bus)
        m.d.comb += [wr.addr.eq(win.addr), wr.data.eq(win.w_data), wr.en.eq(win.w_en),
                     rd.addr.eq(win.addr), rd.en.eq(win.r_en), win.r_data.eq(rd.data),
                     host.status.status.eq(0xBEEF)]
        with m.If(host.regs.go != 0):
            m.d.sync += self.go_seen.eq(host.regs.go)
        return m


def test_host_port_registers_and_wide_window():
    dut = MemoryTop()
    values = [random.Random(i).getrandbits(72) for i in range(20)]

    async def bench(ctx):
        host = HostDriver(dut.regmap, AmaranthTransport(ctx, dut, idle=0.4, stall=0.4, seed=2))
        assert await host.read("scratch") == 0x1234          # reset value
        await host.write("scratch", 0xCAFEF00D)
        await host.write("narrow", 31)
        assert await host.read_many(["scratch", "narrow", "status"]) == {
            "scratch": 0xCAFEF00D, "narrow": 31, "status": 0xBEEF}
        await host.write("go", 5)
        await ctx.tick()                                       # go_seen registers the pulse
        assert ctx.get(dut.go_seen) == 5
        assert await host.read("go") == 0                      # pulses read as 0
        await host.write_window("buf", values)
        assert await host.read_window("buf", 20) == values
        assert await host.read_window("buf", 3, offset=7) == values[7:10]
        # Unmapped address reads as 0 and the port keeps working.
        assert (await host.transport.transact([(False, (1 << dut.regmap.addr_width) - 1, 0)])) == [0]
        assert await host.read("scratch") == 0xCAFEF00D
    run(dut, bench)


def test_register_map_validation_and_description():
    rm = RegisterMap()
    rm.add_register("a", 8)
    with pytest.raises(ValueError, match="duplicate"):
        rm.add_register("a", 8)
    with pytest.raises(ValueError, match="width"):
        rm.add_register("b", 33)
    with pytest.raises(ValueError, match="access"):
        rm.add_window("w", 4, 8, "xx")
    rm.add_window("w", 5, 64)
    rm.freeze()
    assert rm["w"].span == 16 and rm["w"].address % 16 == 0
    assert RegisterMap.from_dict(rm.to_dict()).to_dict() == rm.to_dict()
    assert "`w`" in rm.markdown()
    with pytest.raises(ValueError, match="frozen"):
        rm.add_register("c", 1)


def test_register_fields_and_window_blocks():
    rm = RegisterMap()
    rm.add_register("control", access="pulse", fields={"start": (1, "go"), "mode": (3, "how")})
    rm.add_window("out", 8, 16, "ro", block=4, doc="two blocks of four")
    with pytest.raises(ValueError, match="block must divide"):
        rm.add_window("bad", 6, 8, block=4)
    with pytest.raises(ValueError, match="not the fields"):
        rm.add_register("f", 3, fields={"a": (1, ""), "b": (1, "")})
    rm.freeze()
    control = rm["control"]
    assert control.width == 4 and [f.offset for f in control.fields] == [0, 1]
    assert control.encode(start=1, mode=5) == 0b1011
    assert control.decode(0b1011) == {"start": 1, "mode": 5}
    with pytest.raises(ValueError, match="field mode=8 does not fit 3 bits"):
        control.encode(mode=8)
    with pytest.raises(KeyError, match="no field 'stop'; fields: start, mode"):
        control.encode(stop=1)
    assert rm["out"].block == 4
    again = RegisterMap.from_dict(rm.to_dict())
    assert again["control"].fields == control.fields and again.to_dict() == rm.to_dict()
    assert "bit 0 `start`: go" in rm.markdown() and "bits 1..3 `mode`: how" in rm.markdown()


def test_host_port_drives_register_fields():
    """A register with fields is a struct at the core; the driver writes and reads fields."""
    rm = RegisterMap()
    rm.add_register("mode", fields={"a": (2, ""), "b": (3, "")})
    rm.add_register("flags", access="ro", fields={"x": (1, ""), "y": (2, "")})

    class Top(wiring.Component):
        def __init__(self):
            self.regmap = rm.freeze()
            super().__init__(host_port_members(rm))

        def elaborate(self, platform):
            m = Module()
            m.submodules.host = host = HostPort(self.regmap)
            connect(m, wiring.flipped(self.cmd), host.cmd)
            connect(m, host.rsp, wiring.flipped(self.rsp))
            m.d.comb += [host.status.flags.x.eq(host.regs.mode.a[0]),
                         host.status.flags.y.eq(host.regs.mode.b[:2])]
            return m

    dut = Top()

    async def bench(ctx):
        host = HostDriver(dut.regmap, AmaranthTransport(ctx, dut, idle=0.3, stall=0.3, seed=1))
        await host.write("mode", a=3, b=6)
        assert await host.read("mode") == 3 | (6 << 2)
        assert await host.read_fields("mode") == {"a": 3, "b": 6}
        assert await host.read_fields("flags") == {"x": 1, "y": 2}
        await host.write_many({"mode": {"b": 1}})
        assert await host.read_fields("flags") == {"x": 0, "y": 1}
        assert await host.wait_field("flags", "y", 1) == 0b010
    run(dut, bench)


def test_driver_rejects_bad_access():
    rm = RegisterMap().add_register("s", 4, "ro").add_register("r", 4).add_window("w", 4, 8, "ro")
    host = HostDriver(rm, transport=None)
    import asyncio
    with pytest.raises(ValueError, match="read-only"):
        asyncio.run(host.write("s", 1))
    with pytest.raises(ValueError, match="fit"):
        asyncio.run(host.write("r", 16))
    with pytest.raises(ValueError, match="read-only"):
        asyncio.run(host.write_window("w", [1]))
    with pytest.raises(KeyError, match="no register"):
        asyncio.run(host.read("nope"))


def test_serial_wrapper_loads_inputs_and_captures_outputs():
    class Adder(wiring.Component):
        a: In(8)
        b: In(8)
        s: Out(9)

        def elaborate(self, platform):
            m = Module()
            m.d.sync += self.s.eq(self.a + self.b)
            return m

    dut = SerialWrapper(Adder())
    assert dut.input_bits == 16 and dut.output_bits == 9

    async def bench(ctx):
        bits = 0x2D | (0x73 << 8)           # a = 0x2D, b = 0x73
        for k in reversed(range(16)):      # the chain shifts towards higher bits: MSB first
            ctx.set(dut.sin, (bits >> k) & 1)
            await ctx.tick()
        ctx.set(dut.load, 1)
        await ctx.tick()
        ctx.set(dut.load, 0)
        await ctx.tick().repeat(2)
        ctx.set(dut.capture, 1)
        await ctx.tick()
        ctx.set(dut.capture, 0)
        out = 0
        for k in range(9):
            out |= ctx.get(dut.sout) << k
            await ctx.tick()
        assert out == 0x2D + 0x73
    run(dut, bench)


@pytest.mark.parametrize("iw, ow", [(128, 32), (32, 128), (64, 64), (16, 64)])
def test_gearbox_round_trip_with_flush_and_clear(iw, ow):
    from snnforge.hw.common.streams import Gearbox
    rng = random.Random(iw * 7 + ow)
    words = [rng.getrandbits(iw) for _ in range(23)]
    dut = Gearbox(iw, ow)
    got, flushed = [], []

    async def feed(ctx):
        for k, w in enumerate(words):
            ctx.set(dut.i.valid, 1)
            ctx.set(dut.i.payload, w)
            ctx.set(dut.flush, k == len(words) - 1)
            await ctx.tick().until(dut.i.ready)
        ctx.set(dut.i.valid, 0)
        ctx.set(dut.flush, 0)

    async def drain(ctx):
        expect_bits = len(words) * iw
        n_out = -(-expect_bits // ow)
        while len(got) < n_out:
            ready = rng.random() < 0.6
            ctx.set(dut.o.ready, ready)
            _, _, valid, data = await ctx.tick().sample(dut.o.valid, dut.o.payload)
            if valid and ready:
                got.append(data)
        ctx.set(dut.o.ready, 1)
        for _ in range(4):
            _, _, valid, empty = await ctx.tick().sample(dut.o.valid, dut.empty)
            assert not valid
        flushed.append(empty)

    run_two(dut, feed, drain)
    bits = sum(w << (k * iw) for k, w in enumerate(words))
    assert sum(w << (k * ow) for k, w in enumerate(got)) == bits
    assert flushed == [1]


def run_two(dut, *benches):
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    for bench in benches:
        sim.add_testbench(bench)
    sim.run()


@pytest.mark.parametrize("widths", [[1], [4, 4, 4, 4], [9, 9, 9, 3], [8, 1, 5, 7, 2]])
def test_sum_tree_and_popcount(widths):
    """sum_tree adds unsigned terms of any widths without overflow; popcount counts every bit."""
    m = Module()
    terms = [Signal(w, name=f"t{i}") for i, w in enumerate(widths)]
    total, ones = sum_tree(terms), popcount(terms[0])
    rng = random.Random(len(widths))
    cases = [[0] * len(widths), [(1 << w) - 1 for w in widths]]
    cases += [[rng.getrandbits(w) for w in widths] for _ in range(40)]
    sim = Simulator(m)

    async def bench(ctx):
        for values in cases:
            for t, v in zip(terms, values):
                ctx.set(t, v)
            assert ctx.get(total) == sum(values), values
            assert ctx.get(ones) == bin(values[0]).count("1"), values

    sim.add_testbench(bench)
    sim.run()
