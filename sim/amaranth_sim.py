"""The fast back end: run a stream component in Amaranth's own simulator.

The same stimulus and golden model as the cocotb + Verilator regression, with no Verilator build:
for unit tests of small blocks. Streams follow the Amaranth stream contract (a producer raises
``valid`` without waiting for ``ready``; payload holds while ``valid and not ready``), and the
feeders/drains here insert idle cycles and back-pressure after the patterns of
:mod:`snnforge.sim.patterns`, like the cocotb drivers. Every drain checks the contract on the
stream it reads, and that nothing more comes out after the expected beats.
"""

from __future__ import annotations

import random

from amaranth.lib import data
from amaranth.sim import Simulator

from .patterns import Pattern

__all__ = ["simulate_streams", "run_testbenches"]


def _payload_value(port, raw):
    shape = port.payload.shape() if hasattr(port.payload, "shape") else None
    if isinstance(shape, data.Layout):
        return data.Const(shape, raw)
    return raw


def _raw(value):
    return value.as_bits() if isinstance(value, data.Const) else int(value)


def simulate_streams(dut, *, feeds: dict, drains: dict, setup: dict | None = None, seed: int = 0,
                     idle="random:0.3", stall="random:0.3", max_cycles: int = 1_000_000,
                     quiet_cycles: int = 16, vcd: str | None = None, control=None,
                     preload: dict | None = None):
    """Feed raw payload integers into input streams, collect output beats.

    Parameters
    ----------
    dut : wiring.Component
    feeds : {port name: [raw payload int, ...]}
        Input streams (``In(stream.Signature)`` members) and what to send on each.
    drains : {port name: number of beats}
        Output streams and how many beats to wait for.
    setup : {port name: value}
        Plain input ports set before the first clock edge.
    idle, stall : pattern specification (see :mod:`snnforge.sim.patterns`)
        When each feed offers a beat / each drain is ready (a number: the probability of not).
    quiet_cycles : int
        After its beats, each drain stays ready this long and fails on any further beat.
    control : async callable(ctx), optional
        One more testbench running beside the streams (e.g. pulsing a ``start`` input).
    preload : {port name: [raw payload int, ...]}, optional
        Input streams fed in full (under the ``idle`` pattern) before any of ``feeds`` starts:
        weights or settings a block needs before its data.

    Returns
    -------
    ({port name: [raw payload int, ...]}, cycles until the last expected beat)
    """
    rng = random.Random(seed)
    received = {name: [] for name in drains}
    cycles = [0]
    finished = {}

    sim = Simulator(dut)
    sim.add_clock(1e-8)

    async def setup_bench(ctx):
        for name, value in (setup or {}).items():
            ctx.set(getattr(dut, name), value)

    preloading = [len(preload or {})]

    def feeder(name, beats, pattern, first=False):
        port = getattr(dut, name)

        async def bench(ctx):
            while not first and preloading[0]:
                await ctx.tick()
            for raw in beats:
                while not pattern.go():
                    await ctx.tick()
                ctx.set(port.valid, 1)
                ctx.set(port.payload, _payload_value(port, raw))
                await ctx.tick().until(port.ready)
                ctx.set(port.valid, 0)
            if first:
                preloading[0] -= 1
        return bench

    def drainer(name, count, pattern):
        port = getattr(dut, name)

        async def bench(ctx):
            offered = None          # payload offered, not taken, in the cycle before
            cycle = 0
            while len(received[name]) < count:
                ready = pattern.go()
                ctx.set(port.ready, ready)
                _, _, valid, payload = await ctx.tick().sample(port.valid, port.payload)
                cycle += 1
                raw = _raw(payload) if valid else None
                if offered is not None and raw != offered:
                    raise AssertionError(
                        f"stream {name}: beat {len(received[name])} at cycle {cycle}: "
                        + ("valid fell" if raw is None else f"payload changed from {offered:#x} "
                           f"to {raw:#x}") + " before the transfer")
                if ready and valid:
                    received[name].append(raw)
                offered = raw if valid and not ready else None
            finished[name] = cycles[0]
            ctx.set(port.ready, 1)
            for _ in range(quiet_cycles):
                _, _, valid, payload = await ctx.tick().sample(port.valid, port.payload)
                if valid:
                    raise AssertionError(f"stream {name}: an extra beat {_raw(payload):#x} after "
                                         f"the {count} expected")
            ctx.set(port.ready, 0)
        return bench

    async def watchdog(ctx):
        while True:
            await ctx.tick()
            cycles[0] += 1
            if cycles[0] > max_cycles:
                raise TimeoutError(f"no completion after {max_cycles} cycles: received "
                                   + ", ".join(f"{n}={len(v)}/{drains[n]}" for n, v in received.items()))

    sim.add_testbench(setup_bench)
    if control is not None:
        sim.add_testbench(control)
    for name, beats in (preload or {}).items():
        sim.add_testbench(feeder(name, list(beats), Pattern(idle, rng.random()), first=True))
    for name, beats in feeds.items():
        sim.add_testbench(feeder(name, list(beats), Pattern(idle, rng.random())))
    for name, count in drains.items():
        sim.add_testbench(drainer(name, count, Pattern(stall, rng.random())))
    sim.add_testbench(watchdog, background=True)
    if vcd:
        with sim.write_vcd(vcd):
            sim.run()
    else:
        sim.run()
    return received, max(finished.values(), default=cycles[0])


def run_testbenches(dut, *benches, deadline: int = 200_000):
    """Run ``benches`` on ``dut`` (a 100 MHz clock) to their end; ``TimeoutError`` if they are
    not done after ``deadline`` cycles -- a watchdog, never a hang."""
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    for bench in benches:
        sim.add_testbench(bench)

    async def watchdog(ctx):
        for _ in range(deadline):
            await ctx.tick()
        raise TimeoutError(f"not done after {deadline} cycles")
    sim.add_testbench(watchdog, background=True)
    sim.run()
