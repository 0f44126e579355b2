"""Third-party AXI models (cocotbext-axi) around a core with a host interface: an AXI4-Lite
master as the host, an AXI4 RAM as the memory, with random pauses on every channel. Needs the
simulated top with the AXI ports outside (``snnforge.sim.runner.sim_top(external_axi=True)``).
"""

from __future__ import annotations

import itertools
import random

from cocotb.triggers import ClockCycles
from cocotbext.axi import AxiBus, AxiLiteBus, AxiLiteMaster, AxiRam

__all__ = ["AxiLiteTransport", "attach_axi_models"]


def _pauses(p, seed):
    """cocotbext-axi's pause generator: True (pause) with probability ``p`` each cycle."""
    rng = random.Random(seed)
    return (rng.random() < p for _ in itertools.count())


def attach_axi_models(dut, clk, *, memory_size, pause=0.3, seed=0):
    """The AXI4-Lite master on ``s_axil`` and the AXI4 RAM on ``m_axi``, both with random
    pauses (probability ``pause``) on every channel."""
    master = AxiLiteMaster(AxiLiteBus.from_prefix(dut, "s_axil_"), clk, dut.rst)
    ram = AxiRam(AxiBus.from_prefix(dut, "m_axi_"), clk, dut.rst, size=memory_size)
    channels = [ram.write_if.aw_channel, ram.write_if.w_channel, ram.write_if.b_channel,
                ram.read_if.ar_channel, ram.read_if.r_channel,
                master.write_if.aw_channel, master.write_if.w_channel,
                master.write_if.b_channel, master.read_if.ar_channel,
                master.read_if.r_channel]
    for k, channel in enumerate(channels):
        if pause:
            channel.set_pause_generator(_pauses(pause, seed + k))
    return master, ram


class AxiLiteTransport:
    """A :class:`~snnforge.host.HostDriver` transport over the AXI4-Lite slave (host-port word
    address ``a`` is byte address ``4 a``), with the RAM model's memory as its backdoor."""

    def __init__(self, master, ram, clk):
        self.master, self.ram, self.clk = master, ram, clk
        self.memory_size = ram.size

    async def transact(self, commands):
        out = []
        for write, addr, data in commands:
            if write:
                await self.master.write_dword(4 * addr, data)
            else:
                out.append(await self.master.read_dword(4 * addr))
        return out

    async def write_memory(self, addr, data):
        self.ram.write(addr, data)

    async def read_memory(self, addr, length):
        return self.ram.read(addr, length)

    async def pause(self, cycles):
        await ClockCycles(self.clk, cycles)
