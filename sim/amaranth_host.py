"""Host-port transport for Amaranth's simulator (fast unit tests of core tops, no Verilator)."""

from __future__ import annotations

from amaranth.sim import Simulator

from ..host import HostDriver
from .amaranth_axi import AxiMemory
from .patterns import Pattern
from .payload import command_encoder

__all__ = ["AmaranthTransport", "simulate_driver"]


class AmaranthTransport:
    """Speaks a :class:`~snnforge.hw.common.hostport.HostPort` ``cmd``/``rsp`` pair from an
    Amaranth testbench context, with idle cycles and back-pressure after the patterns of
    :mod:`snnforge.sim.patterns` (a number: the probability of holding back). With the core's
    ``memory`` (an :class:`~snnforge.sim.amaranth_axi.AxiMemory`) it reaches it directly."""

    def __init__(self, ctx, dut, *, idle="none", stall="none", seed=0, timeout_cycles=100_000,
                 memory=None):
        self.ctx, self.dut = ctx, dut
        if memory is not None:
            self.write_memory, self.read_memory = self._write_memory, self._read_memory
            self.memory = memory
        self.encode = command_encoder(dut.cmd.payload.shape())
        self.idle, self.stall = Pattern(idle, seed), Pattern(stall, seed + 1)
        self.timeout_cycles = timeout_cycles

    async def _write_memory(self, addr, data):
        self.memory.write(addr, data)

    async def _read_memory(self, addr, length):
        return self.memory.read(addr, length)

    async def pause(self, cycles):
        await self.ctx.tick().repeat(cycles)

    async def transact(self, commands):
        ctx, cmd, rsp = self.ctx, self.dut.cmd, self.dut.rsp
        pending = list(commands)
        reads_expected = sum(1 for write, _, _ in pending if not write)
        responses, i, quiet = [], 0, 0
        offer, accept = self.idle.go, self.stall.go
        while i < len(pending) or len(responses) < reads_expected:
            offering = i < len(pending) and offer()
            if offering:
                ctx.set(cmd.payload.as_value(), self.encode(*pending[i]))
            ctx.set(cmd.valid, offering)
            accepting = accept()
            ctx.set(rsp.ready, accepting)
            _, _, cmd_ready, rsp_valid, rsp_data = await ctx.tick().sample(
                cmd.ready, rsp.valid, rsp.payload)
            quiet += 1
            if offering and cmd_ready:
                i, quiet = i + 1, 0
            if accepting and rsp_valid:
                responses.append(int(rsp_data))
                quiet = 0
            if quiet > self.timeout_cycles:
                raise TimeoutError(f"host port stuck: {i}/{len(pending)} commands sent")
        ctx.set(cmd.valid, 0)
        ctx.set(rsp.ready, 0)
        return responses


def simulate_driver(dut, driver_class, cfg, script, *, memory_size: int, latency: int = 2,
                    memory_stall: float = 0.0, stall: float = 0.0):
    """``await script(driver)`` with a ``driver_class`` driver of ``dut`` (a core with an AXI4
    master) in Amaranth's simulator: an :class:`~.amaranth_axi.AxiMemory` of ``memory_size``
    bytes behind the master (``latency``, ``memory_stall``), the host port under idle and
    back-pressure ``stall``. Returns what ``script`` returned."""
    memory = AxiMemory(dut.m_axi, memory_size, latency=latency,
                       stall=f"random:{memory_stall}" if memory_stall else "none", seed=1)
    got = []

    async def bench(ctx):
        transport = AmaranthTransport(ctx, dut, idle=stall, stall=stall, seed=2, memory=memory)
        got.append(await script(driver_class(HostDriver(dut.regmap, transport), cfg,
                                             memory_size=memory_size)))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    memory.add_to(sim)
    sim.add_testbench(bench)
    sim.run()
    return got[0]
