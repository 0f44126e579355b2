"""cocotb benches of a LoAS board top (``sim/boards/harness.py``): the host talks to it only
through its UART pins, with :class:`~snnforge.serial_link.SerialLink` -- the code
``snnforge run --port`` runs over pyserial -- on a simulated line.

* ``layer``: the bridge's INFO checked against the design, then the LoAS ``quick`` layers and
  a chained network run by :class:`~snnforge.hw.loas.driver.LoASDriver` (memory image through
  the memory window, command list, outputs read back), every output spike, membrane and the
  data-determined counters compared with the golden model, as ``snnforge sim loas`` does; the
  idle bits between characters follow a different pattern for each case; the LEDs checked.
* ``faults``: damaged frames sent by hand -- a flipped bit, a cut frame, an unknown opcode, a
  line error -- each answered by its error response with nothing written (a register read
  back), the error LED lit; then a layer through a channel that damages requests and answers,
  bit-exact, with the link's repeats counted.
* ``serve`` (only with option ``port_file``): the pins relayed to a TCP socket on 127.0.0.1,
  whose port is written to ``port_file`` -- a virtual serial port (pyserial
  ``socket://127.0.0.1:PORT``), so that ``snnforge run NAME --port`` runs its job, through
  pyserial, on the simulated board. It serves ``connections`` connections (default 1), one
  after another.

Options: ``golden_overrides`` (LoASConfig fields) mis-configures the golden model, for the
self-test; the harness adds the board's ``divisor``, ``timeout``, ``interface_id``,
``memory_bytes`` and ``clock_hz``.
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

import cocotb
from cocotb.triggers import ClockCycles

from ...host import HostDriver
from ...hw.boards.top import LEDS
from ...hw.loas.driver import LoASDriver
from ...serial_link import OPS, STATUS, SYNC, Request, SerialLink, crc16
from ..loas.vectors import expected_layer, expected_network, loas_cases, network_cases
from ..patterns import IDLE_PATTERNS, Pattern
from ..runner import BENCH_ENV
from ..tb import TB, check_outputs
from .uart import FaultyChannel, UARTChannel

LED = {name: bit for bit, name in enumerate(LEDS)}


async def connect(dut, gaps="none"):
    """The bench, its UART channel and a link that has read the bridge's INFO (checked)."""
    tb = TB(dut)
    channel = UARTChannel(dut, tb.clk, divisor=tb.option("divisor", None),
                          bridge_timeout=tb.option("timeout", None), gaps=gaps, seed=tb.seed)
    await tb.reset()
    link = SerialLink(channel, seed=tb.seed)
    info = await link.hello()
    want = {"interface_id": tb.option("interface_id", None), "max_words": 256,
            "memory_bytes": tb.option("memory_bytes", None),
            "clock_hz": tb.option("clock_hz", None)}
    got = {key: info[key] for key in want}
    if got != want:
        raise AssertionError(f"INFO: expected {want}, got {got}")
    return tb, channel, link


def led(dut, name) -> int:
    return (int(dut.leds.value) >> LED[name]) & 1


def _check(where, got, want):
    check_outputs(where, {"spikes": got.spikes, "membrane": got.membrane},
                  {"spikes": want["spikes"].numpy(), "membrane": want["membrane"].numpy()})
    for counter in ("matches", "saturations"):
        if got.counters[counter] != want[counter]:
            raise AssertionError(f"{where}\n  {counter} counter: expected {want[counter]}, got "
                                 f"{got.counters[counter]}")


async def run_case(driver, cfg, case, where):
    if hasattr(case, "layers"):
        got = await driver.run_layers(case.spikes, case.settings(), strong=case.strong)
        _check(where, got, expected_network(cfg, case, got.k_blocks))
    else:
        got = await driver.run_layer(case.spikes, case.weights, threshold=case.threshold,
                                     leak_amount=case.leak_amount, tmask=case.tmask,
                                     strong=case.strong, sequential=case.sequential)
        _check(where, got, expected_layer(cfg, case, got.k_block))
    return got


@cocotb.test()
async def layer(dut):
    tb, channel, link = await connect(dut)
    if led(dut, "done") or led(dut, "error"):
        raise AssertionError(f"LEDs after reset: {int(dut.leds.value):04b} (done and error off)")
    driver = LoASDriver(HostDriver(tb.component.regmap, link), tb.cfg)
    golden = tb.cfg.replace(**tb.option("golden_overrides", {}))
    cases = loas_cases(tb.cfg, "quick", seed=tb.seed) + network_cases(tb.cfg, seed=tb.seed)[:1]
    outputs = 0
    for k, case in enumerate(cases):
        gaps = IDLE_PATTERNS[k % len(IDLE_PATTERNS)]
        channel.gaps = Pattern(gaps, tb.seed + k)
        start, sent = time.monotonic(), channel.cycles_sent
        got = await run_case(driver, golden, case, f"{case.describe()} (idle bits: {gaps})")
        outputs += got.spikes.size
        dut._log.info("%s: %d compute cycles, %d end to end; %d frames so far; %.1f s",
                      case.name, got.cycles, got.counters["total_cycles"], link.stats.frames,
                      time.monotonic() - start)
        if not led(dut, "done"):
            raise AssertionError("the done LED is off after a command list ended")
        if channel.cycles_sent == sent:
            raise AssertionError("nothing went over the line")
    if led(dut, "error") or link.stats.repeats or channel.framing_errors:
        raise AssertionError(f"a clean line had errors: LEDs {int(dut.leds.value):04b}, "
                             f"{link.stats}, {channel.framing_errors} framing errors")
    tb.record(items=outputs, unit="output neurons", frames=link.stats.frames,
              layers=len(cases))


@cocotb.test()
async def faults(dut):
    tb, channel, link = await connect(dut, gaps="random:0.2")
    host = HostDriver(tb.component.regmap, link)
    threshold = tb.component.regmap["threshold"]
    before = await host.read("threshold")
    new = before ^ 0x15
    seq = (link.seq + 100) & 0xFF            # never the link's: a good frame would execute
    frame = Request(OPS["write"], threshold.address, 1, (new,)).encode(seq)
    flipped = bytearray(frame)
    flipped[9] ^= 0x08
    bad_opcode = bytes([SYNC]) + b"X" + frame[2:-2]
    bad_opcode += crc16(bad_opcode[1:]).to_bytes(2, "big")
    damaged = [("a flipped data bit", bytes(flipped), 1), ("a cut frame", frame[:7], 3),
               ("an unknown opcode", bad_opcode, 2)]
    for what, data, status in damaged:
        await channel.send(data)
        answer = await channel.receive(5)
        if len(answer) != 5 or answer[0] != SYNC or crc16(answer[1:]) != 0 \
                or answer[1] != status:
            raise AssertionError(f"{what}: expected the answer '{STATUS[status]}', got "
                                 f"{answer.hex() or 'nothing'}")
        if await host.read("threshold") != before:
            raise AssertionError(f"{what}: the register was written")
    if not led(dut, "error"):
        raise AssertionError("the error LED is off after error responses")
    # A line error: a character with a bad stop bit in the middle of a frame.
    await channel.send(frame[:5])
    rx = dut.uart_rx
    for bit in [0] * 10:
        rx.value = bit
        await ClockCycles(tb.clk, channel.divisor)
    rx.value = 1
    await channel.send(frame[5:])
    answer = await channel.receive(5)
    if answer[1:2] != bytes([5]) or await host.read("threshold") != before:
        raise AssertionError(f"a line error: expected '{STATUS[5]}' and nothing written, got "
                             f"{answer.hex()}")
    # The same frame, whole: written.
    await channel.send(frame)
    if await channel.receive(5) != bytes([SYNC, 0, seq]) + crc16(bytes([0, seq])).to_bytes(2,
                                                                                       "big"):
        raise AssertionError("a good frame after the damaged ones was not answered OK")
    if await host.read("threshold") != new:
        raise AssertionError("a good frame after the damaged ones was not written")
    # A layer through a channel that damages two requests and an answer.
    faulty = FaultyChannel(channel, corrupt_sends={3}, truncate_sends={9},
                           corrupt_receives={40})
    link = SerialLink(faulty, seed=tb.seed + 1)
    await link.hello()
    driver = LoASDriver(HostDriver(tb.component.regmap, link), tb.cfg)
    case = loas_cases(tb.cfg, "quick", seed=tb.seed)[0]
    await run_case(driver, tb.cfg.replace(**tb.option("golden_overrides", {})), case,
                   f"{case.describe()} (damaged frames and answers)")
    if link.stats.repeats != 3:
        raise AssertionError(f"expected 3 repeated frames, got {link.stats}")
    tb.record(items=len(damaged) + 1, unit="damaged frames answered",
              repeats=link.stats.repeats, reasons=link.stats.reasons)


# Known when the module is imported in the simulator (and harmlessly false anywhere else).
_SERVING = "port_file" in json.loads(os.environ.get(BENCH_ENV, "{}")).get("options", {})


@cocotb.skipif(not _SERVING, reason="serves a socket only when given a port_file")
@cocotb.test()
async def serve(dut):
    tb = TB(dut)
    channel = UARTChannel(dut, tb.clk, divisor=tb.option("divisor", None),
                          bridge_timeout=tb.option("timeout", None))
    await tb.reset()
    relayed = 0
    with socket.create_server(("127.0.0.1", 0)) as server:
        server.settimeout(600)
        Path(tb.option("port_file", None)).write_text(str(server.getsockname()[1]))
        for _ in range(tb.option("connections", 1)):
            # Blocking: the board has nothing to do until a host connects.
            connection, _ = server.accept()
            connection.setblocking(False)
            with connection:
                while True:
                    try:
                        data = connection.recv(4096)
                    except BlockingIOError:
                        data = None
                    if data == b"":
                        break                       # the host closed the port
                    if data:
                        await channel.send(data)
                        relayed += len(data)
                    else:
                        await ClockCycles(tb.clk, 10 * channel.divisor)
                    if channel.received:
                        connection.sendall(bytes(channel.received))
                        channel.received.clear()
    tb.record(items=relayed, unit="bytes relayed from the host")
