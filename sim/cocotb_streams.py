"""cocotb models of Amaranth streams: a source, a sink and a scoreboard, plus the host transport.

Conventions (checked on Verilator 5.048 / cocotb 2.1): a value read right after
``await RisingEdge(clk)`` is the value the flops sampled at that edge, and a value written then
takes effect for the next cycle. So a transfer happened at an edge iff ``valid`` and ``ready``
read back high right after it.

Ports are found by Amaranth's flattening rule: member ``o`` of a component becomes
``o__valid`` / ``o__ready`` / ``o__payload`` on the Verilog top.
"""

from __future__ import annotations

from typing import Sequence

from cocotb.triggers import ClockCycles, RisingEdge

from .patterns import Pattern
from .payload import command_encoder, pack, unpack
from .runner import SIM_MEMORY_LOG2

__all__ = ["StreamSource", "StreamSink", "Scoreboard", "CocotbTransport", "port"]


def port(dut, prefix, member):
    """The Verilog port of stream member ``member`` (valid/ready/payload) of interface ``prefix``."""
    return getattr(dut, f"{prefix}__{member}")


class StreamSource:
    """Drives beats into an ``In(stream.Signature)`` port; ``idle`` is a
    :class:`~snnforge.sim.patterns.Pattern` (or its specification) of the cycles it offers."""

    def __init__(self, dut, prefix, clk, *, layout=None, idle="none", seed=0):
        self.valid = port(dut, prefix, "valid")
        self.ready = port(dut, prefix, "ready")
        self.payload = port(dut, prefix, "payload")
        self.clk = clk
        self.layout = layout
        self.seed = seed
        self.idle = Pattern(idle, seed)
        self.valid.value = 0
        self.sent = 0

    async def send(self, beats):
        """Send every beat (Python values if a layout was given, else raw ints)."""
        go = self.idle.go
        for beat in beats:
            while not go():
                self.valid.value = 0
                await RisingEdge(self.clk)
            self.valid.value = 1
            self.payload.value = pack(self.layout, beat) if self.layout is not None else int(beat)
            while True:
                await RisingEdge(self.clk)
                if self.ready.value:
                    break
            self.sent += 1
        self.valid.value = 0


class StreamSink:
    """Accepts beats from an ``Out(stream.Signature)`` port; ``stall`` is the
    :class:`~snnforge.sim.patterns.Pattern` (or its specification) of the cycles it is ready."""

    def __init__(self, dut, prefix, clk, *, layout=None, stall="none", seed=0):
        self.valid = port(dut, prefix, "valid")
        self.ready = port(dut, prefix, "ready")
        self.payload = port(dut, prefix, "payload")
        self.clk = clk
        self.layout = layout
        self.stall = Pattern(stall, seed)
        self.ready.value = 0
        self.beats = []
        self.cycles = 0

    async def recv(self, count, *, timeout_cycles=None):
        """Collect ``count`` beats (unpacked with the layout if given); returns them."""
        start = len(self.beats)
        waited = 0
        go = self.stall.go
        while len(self.beats) - start < count:
            ready = go()
            self.ready.value = ready
            await RisingEdge(self.clk)
            self.cycles += 1
            waited += 1
            if ready and self.valid.value:
                raw = int(self.payload.value)
                self.beats.append(unpack(self.layout, raw) if self.layout is not None else raw)
            if timeout_cycles and waited > timeout_cycles:
                raise TimeoutError(f"{count - (len(self.beats) - start)} of {count} beats did "
                                   f"not arrive within {timeout_cycles} cycles")
        self.ready.value = 0
        return self.beats[start:]

    async def expect_quiet(self, cycles=16):
        """Assert that nothing more comes out for ``cycles`` cycles (no extra beats)."""
        self.ready.value = 1
        for _ in range(cycles):
            await RisingEdge(self.clk)
            if self.valid.value:
                raise AssertionError(f"unexpected extra beat: {int(self.payload.value):#x}")
        self.ready.value = 0


def _flatten(value, path=""):
    if isinstance(value, dict):
        for key, sub in value.items():
            yield from _flatten(sub, f"{path}.{key}" if path else key)
    elif isinstance(value, (list, tuple)):
        for i, sub in enumerate(value):
            yield from _flatten(sub, f"{path}[{i}]")
    else:
        yield path, value


class Scoreboard:
    """Compares every received beat with the golden beat; reports the first mismatch by beat
    index and field (and how many beats differ in total)."""

    def __init__(self, name="output"):
        self.name = name
        self.compared = 0

    def compare(self, expected: Sequence, got: Sequence, *, context=None):
        if len(got) != len(expected):
            raise AssertionError(f"{self.name}: expected {len(expected)} beats, got {len(got)}")
        first, bad = None, 0
        for index, (e, g) in enumerate(zip(expected, got)):
            if e != g:
                bad += 1
                if first is None:
                    fields = dict(_flatten(g))
                    diffs = [(f, v, fields.get(f)) for f, v in _flatten(e) if fields.get(f) != v]
                    first = (index, diffs)
        self.compared += len(got)
        if first is not None:
            index, diffs = first
            lines = [f"{self.name}: {bad} of {len(got)} beats differ; first at beat {index}:"]
            for field, e, g in diffs:
                lines.append(f"  {field or 'payload'}: expected {e}, got {g}")
            if context is not None:
                lines.append(f"  stimulus: {context(index)}")
            raise AssertionError("\n".join(lines))


class CocotbTransport:
    """Host-port transport over the ``cmd``/``rsp`` streams of a cocotb DUT.

    Commands are sent back to back (idle cycles after the ``idle`` pattern) while responses are
    accepted (back-pressure after the ``stall`` pattern), in one loop, one await per clock;
    :meth:`set_patterns` changes both between transactions. If the simulated top has the memory
    of a core's AXI4 master (``snnforge.sim.runner.sim_top``), the transport reaches it through
    its bulk backdoor (``write_memory``/``read_memory``: one ``$readmemh``/``$writememh`` each,
    no simulated bus beat) and ``memory_size`` is its size.
    """

    def __init__(self, dut, clk, cmd_layout, *, idle="none", stall="none", seed=0,
                 timeout_cycles=1_000_000, memory_beat_bytes=None):
        self.cmd_valid = port(dut, "cmd", "valid")
        self.cmd_ready = port(dut, "cmd", "ready")
        self.cmd_payload = port(dut, "cmd", "payload")
        self.rsp_valid = port(dut, "rsp", "valid")
        self.rsp_ready = port(dut, "rsp", "ready")
        self.rsp_payload = port(dut, "rsp", "payload")
        self.clk = clk
        self.encode = command_encoder(cmd_layout)
        self.seed = seed
        self.set_patterns(idle, stall)
        self.timeout_cycles = timeout_cycles
        self.cmd_valid.value = 0
        self.rsp_ready.value = 0
        self.cycles = 0
        self.dut = dut
        if memory_beat_bytes:
            self.memory_size = 1 << SIM_MEMORY_LOG2
            self.beat_bytes = memory_beat_bytes
            self.write_memory, self.read_memory = self._write_memory, self._read_memory
            dut.bd_load.value = dut.bd_dump.value = 0

    async def pause(self, cycles):
        await ClockCycles(self.clk, cycles)
        self.cycles += cycles

    async def _write_memory(self, addr, data):
        bpb = self.beat_bytes
        if addr % bpb:
            raise ValueError(f"backdoor writes start at a beat ({bpb} bytes), not {addr:#x}")
        data = bytes(data) + bytes(-len(data) % bpb)
        lines = [f"@{addr // bpb:x}"] + [data[i:i + bpb][::-1].hex()
                                         for i in range(0, len(data), bpb)]
        with open("snnforge_bd_in.hex", "w") as f:
            f.write("\n".join(lines) + "\n")
        await self._pulse(self.dut.bd_load)

    async def _read_memory(self, addr, length):
        bpb = self.beat_bytes
        first, last = addr // bpb, (addr + length - 1) // bpb
        self.dut.bd_lo.value, self.dut.bd_hi.value = first, last
        await self._pulse(self.dut.bd_dump)
        with open("snnforge_bd_out.hex") as f:
            words = [line.strip() for line in f if line.strip() and line[0] not in "@/"]
        raw = b"".join(bytes.fromhex(w.rjust(2 * bpb, "0"))[::-1] for w in words)
        offset = addr - first * bpb
        return raw[offset:offset + length]

    async def _pulse(self, signal):
        signal.value = 1
        await RisingEdge(self.clk)
        signal.value = 0
        await RisingEdge(self.clk)
        self.cycles += 2

    def set_patterns(self, idle, stall):
        """Idle pattern of the commands and back-pressure pattern of the responses from now on."""
        self.idle, self.stall = Pattern(idle, self.seed), Pattern(stall, self.seed + 1)

    async def transact(self, commands):
        pending = list(commands)
        reads_expected = sum(1 for write, _, _ in pending if not write)
        responses = []
        i = 0
        idle_cycles = 0
        offer, accept = self.idle.go, self.stall.go
        while i < len(pending) or len(responses) < reads_expected:
            offering = i < len(pending) and offer()
            if offering:
                write, addr, data = pending[i]
                self.cmd_payload.value = self.encode(write, addr, data)
            self.cmd_valid.value = int(offering)
            accepting = accept()
            self.rsp_ready.value = int(accepting)
            await RisingEdge(self.clk)
            self.cycles += 1
            idle_cycles += 1
            if offering and self.cmd_ready.value:
                i += 1
                idle_cycles = 0
            if accepting and self.rsp_valid.value:
                responses.append(int(self.rsp_payload.value))
                idle_cycles = 0
            if idle_cycles > self.timeout_cycles:
                raise TimeoutError(f"host port stuck: {i}/{len(pending)} commands sent, "
                                   f"{len(responses)}/{reads_expected} responses")
        self.cmd_valid.value = 0
        self.rsp_ready.value = 0
        return responses
