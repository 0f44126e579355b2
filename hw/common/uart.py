"""UART receiver and transmitter: 8N1 characters at ``divisor`` clock cycles per bit.

A character is a start bit (0), eight data bits, least significant first, and a stop bit (1);
the line idles high. ``divisor`` is ``round(clock / baud)``; the receiver samples each bit in
its middle, so both ends' clocks may differ by a few percent.
"""

from __future__ import annotations

import operator

from amaranth import *
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["UARTTx", "UARTRx"]


def _divisor(divisor) -> int:
    try:
        value = operator.index(divisor)
    except TypeError:
        value = None
    if value is None or not 4 <= value <= 1 << 24:
        raise ValueError(f"divisor must be an integer in 4..{1 << 24}, not {divisor!r}")
    return value


class UARTTx(wiring.Component):
    """Sends each byte of ``i`` as one 8N1 character on ``tx``.

    Latency: the start bit begins the cycle after the byte is taken. Throughput: one byte per
    ``10 * divisor`` cycles (``i.ready`` is high between characters only). ``tx`` comes
    straight from a flip-flop.

    Members
    -------
    i : In(stream.Signature(8))
    tx : Out(1)            the line, high when idle
    """

    def __init__(self, *, divisor: int):
        self._divisor = _divisor(divisor)
        super().__init__({"i": In(stream.Signature(8)), "tx": Out(1, init=1)})

    def elaborate(self, platform):
        m = Module()
        div = self._divisor
        # Stop bit, data, start bit, shifted out from bit 0; ones shift in behind them, so the
        # line is bit 0 of this register, idle included.
        shift = Signal(10, init=(1 << 10) - 1)
        left = Signal(range(11))
        timer = Signal(range(div))
        m.d.comb += [self.i.ready.eq(left == 0), self.tx.eq(shift[0])]
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += [shift.eq(Cat(C(0, 1), self.i.payload, C(1, 1))), left.eq(10),
                         timer.eq(div - 1)]
        with m.Elif(left != 0):
            with m.If(timer == 0):
                m.d.sync += [shift.eq(Cat(shift[1:], C(1, 1))), left.eq(left - 1),
                             timer.eq(div - 1)]
            with m.Else():
                m.d.sync += timer.eq(timer - 1)
        return m


class UARTRx(wiring.Component):
    """Receives 8N1 characters from ``rx`` into bytes on ``o``.

    The line passes two flip-flops (it is asynchronous to the clock), then each bit is sampled
    in its middle. A character whose stop bit is 0 is dropped and pulses ``error`` (the
    receiver then waits for the line to go high again, so a held-low line is one error); a
    byte that completes while the previous one still waits on ``o`` is dropped and pulses
    ``overrun`` (a UART cannot be held back).

    Latency: a byte is on ``o`` ``2 + 9.5 * divisor`` cycles (about) after its start bit began.
    Throughput: one byte per character time.

    Members
    -------
    rx : In(1)             the line
    o : Out(stream.Signature(8))
    error : Out(1)         a character with a bad stop bit was dropped (one cycle)
    overrun : Out(1)       a byte was dropped because ``o`` was still full (one cycle)
    """

    def __init__(self, *, divisor: int):
        self._divisor = _divisor(divisor)
        super().__init__({"rx": In(1, init=1), "o": Out(stream.Signature(8)),
                          "error": Out(1), "overrun": Out(1)})

    def elaborate(self, platform):
        m = Module()
        div = self._divisor
        meta = Signal(init=1)
        line = Signal(init=1)
        m.d.sync += [meta.eq(self.rx), line.eq(meta)]

        timer = Signal(range(div))
        bits = Signal(range(9))
        shift = Signal(8)
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        with m.FSM():
            with m.State("IDLE"):
                with m.If(~line):
                    m.d.sync += timer.eq(div // 2 - 1)
                    m.next = "START"
            with m.State("START"):
                with m.If(timer != 0):
                    m.d.sync += timer.eq(timer - 1)
                with m.Elif(line):          # a glitch, not a start bit
                    m.next = "IDLE"
                with m.Else():
                    m.d.sync += [timer.eq(div - 1), bits.eq(0)]
                    m.next = "DATA"
            with m.State("DATA"):
                with m.If(timer != 0):
                    m.d.sync += timer.eq(timer - 1)
                with m.Else():
                    m.d.sync += [shift.eq(Cat(shift[1:], line)), bits.eq(bits + 1),
                                 timer.eq(div - 1)]
                    with m.If(bits == 7):
                        m.next = "STOP"
            with m.State("STOP"):
                with m.If(timer != 0):
                    m.d.sync += timer.eq(timer - 1)
                with m.Elif(line):
                    with m.If(~self.o.valid | self.o.ready):
                        m.d.sync += [self.o.payload.eq(shift), self.o.valid.eq(1)]
                    with m.Else():
                        m.d.comb += self.overrun.eq(1)
                    m.next = "IDLE"
                with m.Else():
                    m.d.comb += self.error.eq(1)
                    m.next = "BREAK"
            with m.State("BREAK"):
                with m.If(line):
                    m.next = "IDLE"
        return m
