"""The UART (hw/common/uart.py) in Amaranth's simulator, against a bit-level model of the line:
characters sent and received at several divisors, clocks a few percent apart, idle and
back-pressure patterns, framing errors, overruns and glitches."""

import random

import pytest
from amaranth import Elaboratable, Module
from amaranth.sim import Simulator

from snnforge.hw.common.uart import UARTRx, UARTTx
from snnforge.sim.amaranth_sim import run_testbenches
from snnforge.sim.patterns import Pattern


def line_bits(byte):
    """The 8N1 character of ``byte``: start, data LSB first, stop."""
    return [0] + [(byte >> i) & 1 for i in range(8)] + [1]


def run(dut, *benches, deadline=200_000):
    run_testbenches(dut, *benches, deadline=deadline)


async def drive_line(ctx, rx, characters, period, *, gap=0, rng=None):
    """Characters of bits on ``rx``, ``period`` cycles a bit (a float: the drift of another
    clock accumulates as on a real line), idle cycles between them."""
    t = 0.0
    for bits in characters:
        for _ in range(gap if rng is None else rng.randrange(gap + 1)):
            await ctx.tick()
        for bit in bits:
            ctx.set(rx, bit)
            t += period
            whole = int(round(t))
            t -= whole
            await ctx.tick().repeat(whole)
    ctx.set(rx, 1)


@pytest.mark.parametrize("divisor, drift", [(4, 1.0), (5, 1.0), (16, 0.97), (16, 1.03),
                                            (347, 1.02)])
def test_rx_receives_characters_at_the_divisor(divisor, drift):
    rng = random.Random(divisor)
    payload = [0x00, 0xFF, 0x55, 0xAA, 0xA5, 0x01, 0x80] + [rng.randrange(256) for _ in range(
        24 if divisor < 100 else 3)]
    dut = UARTRx(divisor=divisor)
    got, errors = [], []

    async def line(ctx):
        await drive_line(ctx, dut.rx, [line_bits(b) for b in payload], divisor * drift, gap=3,
                         rng=rng)
        await ctx.tick().repeat(3 * divisor)

    async def sink(ctx):
        stall = Pattern("random:0.5", 1)
        held = None             # a byte offered and not taken: it must stay, unchanged
        while len(got) < len(payload):
            ctx.set(dut.o.ready, stall.go())
            _, _, valid, ready, data, error, overrun = await ctx.tick().sample(
                dut.o.valid, dut.o.ready, dut.o.payload, dut.error, dut.overrun)
            assert held is None or (valid and data == held), "o broke the stream contract"
            held = data if valid and not ready else None
            if valid and ready:
                got.append(data)
            if error or overrun:
                errors.append((error, overrun))

    run(dut, line, sink)
    assert got == payload
    assert not errors


def test_tx_sends_8n1_with_exact_bit_times():
    divisor = 6
    dut = UARTTx(divisor=divisor)
    payload = [0xA5, 0x00, 0xFF, 0x3C]
    levels = []

    async def source(ctx):
        idle = Pattern("periodic:1001", 2)
        for b in payload:
            while not idle.go():
                await ctx.tick()
            ctx.set(dut.i.valid, 1)
            ctx.set(dut.i.payload, b)
            await ctx.tick().until(dut.i.ready)
            ctx.set(dut.i.valid, 0)

    async def monitor(ctx):
        for _ in range(len(payload) * 10 * divisor + 200):
            levels.append(ctx.get(dut.tx))
            await ctx.tick()

    run(dut, source, monitor)
    # Decode the recorded line as a receiver would: each character from its falling edge,
    # every bit exactly `divisor` cycles long.
    chars, t = [], 0
    while t < len(levels):
        if levels[t] == 0:
            bits = [levels[t + divisor * i + divisor // 2] for i in range(10)]
            assert all(levels[t + divisor * i + j] == bits[i] for i in range(10)
                       for j in range(divisor)), "a bit does not last exactly divisor cycles"
            chars.append(bits)
            t += 10 * divisor
        else:
            t += 1
    assert chars == [line_bits(b) for b in payload]
    assert levels[0] == 1 and levels[-1] == 1


def test_loopback_tx_to_rx_under_patterns():
    divisor = 7
    rng = random.Random(3)
    payload = [rng.randrange(256) for _ in range(40)]

    class Loop(Elaboratable):
        def __init__(self):
            self.tx, self.rx = UARTTx(divisor=divisor), UARTRx(divisor=divisor)

        def elaborate(self, platform):
            m = Module()
            m.submodules.tx, m.submodules.rx = self.tx, self.rx
            m.d.comb += self.rx.rx.eq(self.tx.tx)
            return m

    dut = Loop()
    got = []

    async def source(ctx):
        idle = Pattern("burst:40:0.1", 4)
        for b in payload:
            while not idle.go():
                await ctx.tick()
            ctx.set(dut.tx.i.valid, 1)
            ctx.set(dut.tx.i.payload, b)
            await ctx.tick().until(dut.tx.i.ready)
            ctx.set(dut.tx.i.valid, 0)

    async def sink(ctx):
        stall = Pattern("periodic:1101", 5)
        while len(got) < len(payload):
            ctx.set(dut.rx.o.ready, stall.go())
            _, _, valid, ready, data = await ctx.tick().sample(dut.rx.o.valid, dut.rx.o.ready,
                                                               dut.rx.o.payload)
            if valid and ready:
                got.append(data)

    run(dut, source, sink)
    assert got == payload


def test_rx_framing_error_overrun_and_glitch():
    divisor = 8
    dut = UARTRx(divisor=divisor)
    events = {"bytes": [], "error": 0, "overrun": 0}
    bad_stop = line_bits(0x42)[:-1] + [0]

    async def line(ctx):
        # A glitch shorter than half a bit, a character with a bad stop bit (then the line held
        # low for a while: a break counts once), two good characters nobody takes (the second
        # overruns), then one more once the first has been taken.
        ctx.set(dut.rx, 0)
        await ctx.tick().repeat(2)
        ctx.set(dut.rx, 1)
        await ctx.tick().repeat(3 * divisor)
        await drive_line(ctx, dut.rx, [bad_stop + [0] * 30], divisor)
        await ctx.tick().repeat(3 * divisor)
        await drive_line(ctx, dut.rx, [line_bits(0x11), line_bits(0x22)], divisor)
        await ctx.tick().repeat(3 * divisor)
        ctx.set(dut.o.ready, 1)
        await ctx.tick()
        ctx.set(dut.o.ready, 0)
        await drive_line(ctx, dut.rx, [line_bits(0x33)], divisor)
        await ctx.tick().repeat(3 * divisor)
        ctx.set(dut.o.ready, 1)
        await ctx.tick().repeat(2)

    async def monitor(ctx):
        async for _, _, valid, ready, data, error, overrun in ctx.tick().sample(
                dut.o.valid, dut.o.ready, dut.o.payload, dut.error, dut.overrun):
            if valid and ready:
                events["bytes"].append(data)
            events["error"] += error
            events["overrun"] += overrun

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(line)
    sim.add_testbench(monitor, background=True)
    sim.run()
    assert events == {"bytes": [0x11, 0x33], "error": 1, "overrun": 1}


@pytest.mark.parametrize("cls", [UARTRx, UARTTx])
@pytest.mark.parametrize("divisor", [3, 0, 4.5, "8", 1 << 25])
def test_divisor_is_validated(cls, divisor):
    with pytest.raises(ValueError, match="divisor must be an integer in 4.."):
        cls(divisor=divisor)
