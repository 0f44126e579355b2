"""An AXI4 memory for Amaranth's simulator: the slave behind a core's ``m_axi`` in the fast unit
tests (the Verilator benches have :mod:`snnforge.sim.axi_ram`'s RTL model; the protocol
regression has cocotbext-axi's ``AxiRam``).

INCR bursts, byte strobes, a fixed read latency, back-pressure on every channel after the
patterns of :mod:`snnforge.sim.patterns`, at most ``depth`` bursts queued per direction, and
DECERR for addresses past the end. Handshakes follow AXI: once ``valid`` is raised it stays up,
with the same payload, until ``ready``.
"""

from __future__ import annotations

from collections import deque

from .patterns import Pattern

__all__ = ["AxiMemory"]

DECERR = 3


class AxiMemory:
    """``size`` bytes behind the AXI4 interface ``bus`` (a DUT's ``m_axi`` member); ``read`` and
    ``write`` reach the bytes directly (a backdoor: no simulated cycles)."""

    def __init__(self, bus, size: int, *, latency: int = 4, stall="none", seed: int = 0,
                 depth: int = 8):
        self.bus, self.size = bus, size
        self.mem = bytearray(size)
        self.latency, self.depth = latency, depth
        self.bpb = len(bus.wdata) // 8
        self.patterns = {name: Pattern(stall, seed + k)
                         for k, name in enumerate(("ar", "r", "aw", "w", "b"))}

    def write(self, addr: int, data: bytes):
        self.mem[addr:addr + len(data)] = data

    def read(self, addr: int, length: int) -> bytes:
        return bytes(self.mem[addr:addr + length])

    def add_to(self, sim):
        sim.add_testbench(self._reads, background=True)
        sim.add_testbench(self._writes, background=True)

    def _beat(self, addr):
        if addr + self.bpb > self.size:
            return 0, DECERR
        return int.from_bytes(self.mem[addr:addr + self.bpb], "little"), 0

    async def _reads(self, ctx):
        bus, go = self.bus, self.patterns
        queue, cycle, burst, offered = deque(), 0, None, False
        while True:
            arready = len(queue) < self.depth and go["ar"].go()
            ctx.set(bus.arready, arready)
            if burst is None and queue and queue[0][0] <= cycle:
                burst = list(queue.popleft()[1:]) + [0]         # addr, beats, beat
            if burst is not None and (offered or go["r"].go()):
                addr, beats, beat = burst
                value, resp = self._beat(addr + beat * self.bpb)
                ctx.set(bus.rdata, value)
                ctx.set(bus.rresp, resp)
                ctx.set(bus.rlast, beat == beats - 1)
                offered = True
            ctx.set(bus.rvalid, offered)
            _, _, arvalid, araddr, arlen, rready = await ctx.tick().sample(
                bus.arvalid, bus.araddr, bus.arlen, bus.rready)
            cycle += 1
            if arready and arvalid:
                queue.append((cycle + self.latency, araddr, arlen + 1))
            if offered and rready:
                offered = False
                burst[2] += 1
                if burst[2] == burst[1]:
                    burst = None

    async def _writes(self, ctx):
        bus, go = self.bus, self.patterns
        bursts, answers, current, offered = deque(), deque(), None, False
        while True:
            awready = len(bursts) < self.depth and go["aw"].go()
            ctx.set(bus.awready, awready)
            if current is None and bursts:
                current = list(bursts.popleft()) + [0, 0]      # addr, beats, beat, resp
            wready = current is not None and go["w"].go()
            ctx.set(bus.wready, wready)
            if answers and (offered or go["b"].go()):
                ctx.set(bus.bresp, answers[0])
                offered = True
            ctx.set(bus.bvalid, offered)
            _, _, awvalid, awaddr, awlen, wvalid, wdata, wstrb, wlast, bready = \
                await ctx.tick().sample(bus.awvalid, bus.awaddr, bus.awlen, bus.wvalid,
                                        bus.wdata, bus.wstrb, bus.wlast, bus.bready)
            if awready and awvalid:
                bursts.append((awaddr, awlen + 1))
            if wready and wvalid:
                addr, beats, beat, resp = current
                at = addr + beat * self.bpb
                if at + self.bpb > self.size:
                    resp = DECERR
                else:
                    for k in range(self.bpb):
                        if (wstrb >> k) & 1:
                            self.mem[at + k] = (wdata >> (8 * k)) & 0xFF
                if bool(wlast) != (beat == beats - 1):
                    raise AssertionError(f"AXI write burst at {addr:#x}: wlast on beat {beat} of "
                                         f"{beats}")
                current = [addr, beats, beat + 1, resp]
                if beat + 1 == beats:
                    answers.append(resp)
                    current = None
            if offered and bready:
                offered = False
                answers.popleft()
