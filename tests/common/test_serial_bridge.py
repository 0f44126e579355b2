"""The serial bridge (hw/common/serial_bridge.py) in Amaranth's simulator, bytes in and out,
against the framing of snnforge.serial_link: bursts and single words, INFO, every kind of bad
frame (nothing written, the error response, the next frame works), repeated frames, and the
host side (SerialLink, its retries included) driving it. A Python host-port model answers the
commands under back-pressure; the bridge's cmd and tx streams are checked against the stream
contract on every cycle."""

import asyncio
import random

import pytest
from amaranth import Module, Signal
from amaranth.sim import Simulator

from snnforge.hw.common.serial_bridge import SerialBridge, crc16_step
from snnforge.serial_link import (INFO_FIELDS, MAGIC, OPS, STATUS, SYNC, VERSION, Request,
                                  SerialLink, crc16, encode_response, plan_frames)
from snnforge.sim.boards.uart import FaultyChannel
from snnforge.sim.patterns import Pattern

TIMEOUT = 48            # the bridge's idle timeout (cycles) in these tests
INFO = {"interface_id": 0x1234ABCD, "memory_bytes": 1 << 16, "clock_hz": 40_000_000}


class HostPortModel:
    """Registers behind a host port: answers every read (after ``latency`` cycles) from
    ``mem``, applies every write; ``log`` lists the commands in order."""

    def __init__(self, dut, *, stall="random:0.3", latency=2, seed=0):
        self.dut, self.mem, self.log = dut, {}, []
        self.stall, self.latency = Pattern(stall, seed), latency

    async def run(self, ctx):
        cmd, rsp = self.dut.cmd, self.dut.rsp
        checker = ContractCheck("cmd")
        while True:
            ready = self.stall.go()
            ctx.set(cmd.ready, ready)
            _, _, valid, payload = await ctx.tick().sample(cmd.valid, cmd.payload)
            checker.cycle(valid, ready, (payload.write, payload.addr, payload.data))
            if not (valid and ready):
                continue
            write, addr, value = int(payload.write), int(payload.addr), int(payload.data)
            self.log.append((bool(write), addr, value if write else 0))
            if write:
                self.mem[addr] = value
                continue
            ctx.set(cmd.ready, 0)
            await ctx.tick().repeat(self.latency)
            ctx.set(rsp.valid, 1)
            ctx.set(rsp.payload, self.mem.get(addr, addr * 0x01010101 & 0xFFFFFFFF))
            await ctx.tick().until(rsp.ready)
            ctx.set(rsp.valid, 0)

    def expected(self, addr):
        return self.mem.get(addr, addr * 0x01010101 & 0xFFFFFFFF)


class ContractCheck:
    """A producer's side of the stream contract: once valid without ready, valid stays and
    the payload holds until the transfer."""

    def __init__(self, name):
        self.name, self.held, self.beats = name, None, 0

    def cycle(self, valid, ready, payload):
        payload = tuple(int(v) for v in payload) if isinstance(payload, tuple) else int(payload)
        if self.held is not None and (not valid or payload != self.held):
            raise AssertionError(f"stream {self.name}: beat {self.beats}: "
                                 + ("valid fell" if not valid else "the payload changed")
                                 + " before the transfer")
        self.beats += valid and ready
        self.held = payload if valid and not ready else None


class SimChannel:
    """A serial_link.Channel over the bridge's byte streams, inside an Amaranth testbench."""

    def __init__(self, dut, *, idle="none", stall="none", seed=0):
        self.dut, self.received = dut, []
        self.idle, self.stall = Pattern(idle, seed), Pattern(stall, seed + 1)
        self.ctx = None
        self.line_error_at = None          # byte index at which to pulse line_error once

    async def collect(self, ctx):
        tx = self.dut.tx
        checker = ContractCheck("tx")
        while True:
            ready = self.stall.go()
            ctx.set(tx.ready, ready)
            _, _, valid, payload = await ctx.tick().sample(tx.valid, tx.payload)
            checker.cycle(valid, ready, payload)
            if valid and ready:
                self.received.append(int(payload))

    async def send(self, data):
        rx, ctx = self.dut.rx, self.ctx
        for i, byte in enumerate(data):
            while not self.idle.go():
                await ctx.tick()
            if i == self.line_error_at:
                self.line_error_at = None
                ctx.set(self.dut.line_error, 1)
                await ctx.tick()
                ctx.set(self.dut.line_error, 0)
                continue
            ctx.set(rx.valid, 1)
            ctx.set(rx.payload, byte)
            await ctx.tick().until(rx.ready)
            ctx.set(rx.valid, 0)

    async def receive(self, n):
        waited = 0
        while len(self.received) < n and waited < 4 * TIMEOUT + 64:
            before = len(self.received)
            await self.ctx.tick()
            waited = 0 if len(self.received) > before else waited + 1
        out, self.received = self.received[:n], self.received[n:]
        return bytes(out)

    async def discard(self):
        self.received.clear()


def simulate(script, *, max_words=16, cmd_stall="random:0.3", idle="random:0.2",
             stall="random:0.2", seed=0, deadline=400_000):
    """Run ``script(ctx, channel, model)`` against a bridge; returns the model."""
    dut = SerialBridge(addr_width=12, max_words=max_words, timeout=TIMEOUT, **INFO)
    model = HostPortModel(dut, stall=cmd_stall, seed=seed)
    channel = SimChannel(dut, idle=idle, stall=stall, seed=seed)
    sim = Simulator(dut)
    sim.add_clock(1e-8)

    async def main(ctx):
        channel.ctx = ctx
        await script(ctx, channel, model)

    async def watchdog(ctx):
        for _ in range(deadline):
            await ctx.tick()
        raise TimeoutError(f"not done after {deadline} cycles")

    sim.add_testbench(main)
    sim.add_testbench(model.run, background=True)
    sim.add_testbench(channel.collect, background=True)
    sim.add_testbench(watchdog, background=True)
    sim.run()
    return model


async def exchange(channel, frame: bytes, answer_bytes: int) -> bytes:
    await channel.send(frame)
    return await channel.receive(answer_bytes)


def test_crc_step_matches_the_reference():
    rng = random.Random(1)
    m = Module()
    crc, byte, out = Signal(16), Signal(8), Signal(16)
    m.d.comb += out.eq(crc16_step(crc, byte))
    cases = [(0xFFFF, 0x31), (0, 0), (0x1234, 0xA5)] + [(rng.randrange(1 << 16),
                                                        rng.randrange(256)) for _ in range(50)]

    async def bench(ctx):
        for c, b in cases:
            ctx.set(crc, c)
            ctx.set(byte, b)
            assert ctx.get(out) == crc16(bytes([b]), c), (c, b)
    sim = Simulator(m)
    sim.add_testbench(bench)
    sim.run()
    assert crc16(b"123456789") == 0x29B1      # the CRC-16/CCITT-FALSE check value


def test_bursts_single_words_fixed_addresses_and_info():
    rng = random.Random(5)
    bursts = [Request(OPS["write"], 0x100, 16, tuple(rng.randrange(1 << 32) for _ in range(16))),
              Request(OPS["write"], 0x7, 1, (0xDEADBEEF,)),
              Request(OPS["write_fixed"], 0x20, 5, (1, 2, 3, 4, 5)),
              Request(OPS["read"], 0xFF, 18 - 2, ()),
              Request(OPS["read_fixed"], 0x7, 3, ()),
              Request(OPS["write"], 0xFF0, 16, tuple(range(16)))]        # to the map's end
    answers = []

    async def script(ctx, channel, model):
        for seq, request in enumerate(bursts):
            frame = request.encode(seq)
            got = await exchange(channel, frame, 5 + 4 * request.answer_words)
            words = [model.expected(request.addr + (0 if request.op == OPS["read_fixed"]
                                                    else i)) for i in range(request.count)]
            answers.append((got, encode_response(0, seq, [] if request.writes else words)))
        got = await exchange(channel, Request(OPS["info"], 0, 1).encode(77), 5 + 4 * 6)
        answers.append((got, encode_response(0, 77, [MAGIC, VERSION, 16, INFO["interface_id"],
                                                     INFO["memory_bytes"], INFO["clock_hz"]])))

    model = simulate(script)
    for got, want in answers:
        assert got == want
    writes = [c for c in model.log if c[0]]
    assert writes[:16] == [(True, 0x100 + i, bursts[0].words[i]) for i in range(16)]
    assert writes[16] == (True, 0x7, 0xDEADBEEF)
    assert writes[17:22] == [(True, 0x20, v) for v in (1, 2, 3, 4, 5)]
    assert [c[1] for c in model.log if not c[0]] == list(range(0xFF, 0xFF + 16)) + [0x7] * 3
    assert INFO_FIELDS[0] == "magic"


def _flip(frame, position, bit=0):
    data = bytearray(frame)
    data[position] ^= 1 << bit
    return bytes(data)


@pytest.mark.parametrize("what", ["crc", "opcode", "range", "count_over_max", "truncated",
                                  "line_error", "data_bit"])
def test_a_bad_frame_writes_nothing_answers_an_error_and_the_link_recovers(what):
    good = Request(OPS["write"], 0x40, 4, (11, 22, 33, 44))
    frame = good.encode(9)
    status = {"crc": 1, "data_bit": 1, "opcode": 2, "truncated": 3, "range": 4,
              "count_over_max": 4, "line_error": 5}[what]
    bad = {"crc": _flip(frame, len(frame) - 1, 3),
           "data_bit": _flip(frame, 10, 6),
           "opcode": Request(0x58, 0x40, 4, (11, 22, 33, 44)).encode(9),
           "range": Request(OPS["write"], 0xFFE, 4, (11, 22, 33, 44)).encode(9),
           "count_over_max": Request(OPS["read"], 0, 17).encode(9),
           "truncated": frame[:11], "line_error": frame}[what]
    seen = {}

    async def script(ctx, channel, model):
        if what == "line_error":
            channel.line_error_at = 12
        seen["error"] = await exchange(channel, bad, 5)
        seen["log"] = list(model.log)
        seen["good"] = await exchange(channel, good.encode(10), 5)
        seen["read"] = await exchange(channel, Request(OPS["read"], 0x40, 4).encode(11), 5 + 16)

    model = simulate(script)
    got = seen["error"]
    assert got[0] == SYNC and got[1] == status, (got.hex(), STATUS.get(got[1]))
    assert crc16(got[1:]) == 0
    assert seen["log"] == [], "a bad frame reached the host port"
    assert seen["good"] == encode_response(0, 10)
    assert seen["read"] == encode_response(0, 11, [11, 22, 33, 44])
    assert [c for c in model.log if c[0]] == [(True, 0x40 + i, v) for i, v in
                                              enumerate((11, 22, 33, 44))]


def test_every_single_bit_error_of_a_write_frame_writes_nothing():
    rng = random.Random(2)
    good = Request(OPS["write"], 0x30, 3, (0x01020304, 0xA5A5A5A5, 0xFFFFFFFF))
    frame = good.encode(3)
    flips = [(p, rng.randrange(8)) for p in range(1, len(frame))]
    results = []

    async def script(ctx, channel, model):
        for position, bit in flips:
            got = await exchange(channel, _flip(frame, position, bit), 5)
            results.append((position, got, len(model.log)))
            await channel.discard()

    simulate(script, cmd_stall="none", idle="none", stall="none")
    for position, got, commands in results:
        assert commands == 0, f"a flip in byte {position} wrote"
        assert got[:1] == bytes([SYNC]) and got[1] != 0 and crc16(got[1:]) == 0, \
            (position, got.hex())


def test_a_repeated_write_frame_is_not_written_twice_but_reads_are_repeated():
    seen = {}

    async def script(ctx, channel, model):
        write = Request(OPS["write_fixed"], 0x5, 2, (7, 8)).encode(42)
        seen["first"] = await exchange(channel, write, 5)
        seen["again"] = await exchange(channel, write, 5)
        read = Request(OPS["read"], 0x5, 1).encode(43)
        seen["read"] = [await exchange(channel, read, 9) for _ in range(2)]
        seen["next"] = await exchange(channel, Request(OPS["write"], 0x5, 1, (9,)).encode(42 + 2),
                                      5)

    model = simulate(script)
    assert seen["first"] == seen["again"] == encode_response(0, 42)
    assert seen["read"] == [encode_response(0, 43, [8])] * 2
    assert seen["next"] == encode_response(0, 44)
    assert model.log == [(True, 5, 7), (True, 5, 8), (False, 5, 0), (False, 5, 0), (True, 5, 9)]


def test_serial_link_retries_through_damaged_frames_and_answers():
    rng = random.Random(9)
    writes = [(True, 0x200 + i, rng.randrange(1 << 32)) for i in range(40)]
    commands = writes + [(True, 0x10, 1), (True, 0x11, 2), (True, 0x10, 3)] \
        + [(False, 0x200 + i, 0) for i in range(40)] + [(False, 0x10, 0), (False, 0x11, 0)]
    result = {}

    async def script(ctx, channel, model):
        # Receive calls per exchange: sync byte, head, rest -- the answer to the second frame
        # (an INFO precedes) loses its head; frames 3 and 6 break on the way, frame 8 is cut.
        faulty = FaultyChannel(channel, corrupt_sends={3, 6}, truncate_sends={8},
                               corrupt_receives={4})
        link = SerialLink(faulty, seed=1)
        result["data"] = await link.transact(commands)
        result["stats"] = link.stats
        result["info"] = link.info

    model = simulate(script)
    assert result["data"] == [w[2] for w in writes] + [3, 2]
    assert result["info"]["max_words"] == 16 and result["info"]["clock_hz"] == 40_000_000
    stats = result["stats"]
    assert stats.repeats == 4, stats
    assert set(stats.reasons) <= {STATUS[1], STATUS[3], "corrupted answer", "no answer",
                                  "answer cut short"}, stats.reasons
    # Every write reached the host port exactly once, in order (the repeated frame whose answer
    # was lost was not written again).
    assert [c for c in model.log if c[0]] == writes + [(True, 0x10, 1), (True, 0x11, 2),
                                                       (True, 0x10, 3)]
    frames = plan_frames(commands, 16)
    assert [f.op for f in frames] == [OPS["write"]] * 3 + [OPS["write"], OPS["write"]] \
        + [OPS["read"]] * 3 + [OPS["read"]]


def test_plan_frames_cuts_runs():
    cmds = [(True, 5, 1), (True, 5, 2), (True, 5, 3), (True, 6, 4), (False, 9, 0), (False, 9, 0),
            (False, 10, 0)]
    assert plan_frames(cmds, 256) == [Request(OPS["write_fixed"], 5, 3, (1, 2, 3)),
                                      Request(OPS["write"], 6, 1, (4,)),
                                      Request(OPS["read_fixed"], 9, 2),
                                      Request(OPS["read"], 10, 1)]
    assert [f.count for f in plan_frames([(True, i, i) for i in range(600)], 256)] == [256, 256, 88]


@pytest.mark.parametrize("kwargs, message", [
    ({"addr_width": 0}, "addr_width must be an integer in 1..32"),
    ({"max_words": 257}, "max_words must be an integer in 1..256"),
    ({"timeout": 0}, "timeout must be a positive integer"),
    ({"clock_hz": -1}, "clock_hz must be an integer in 0.."),
])
def test_parameters_are_validated(kwargs, message):
    args = {"addr_width": 8, "timeout": 10, **kwargs}
    with pytest.raises(ValueError, match=message):
        SerialBridge(**args)


def test_link_gives_up_with_a_clear_error():
    class Silent:
        async def send(self, data):
            pass

        async def receive(self, n):
            return b""

        async def discard(self):
            pass
    from snnforge.serial_link import LinkError
    link = SerialLink(Silent(), tries=3)
    with pytest.raises(LinkError, match="no valid answer from the board after 3 tries"):
        asyncio.run(link.hello())
