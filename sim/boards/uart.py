"""The host's end of a simulated board's UART, for :class:`snnforge.serial_link.SerialLink`.

:class:`UARTChannel` is a :class:`~snnforge.serial_link.Channel` on the pins of a simulated
board top (``uart_rx``, ``uart_tx``): the bytes the link sends are bit-banged onto ``uart_rx``
at ``divisor`` clock cycles per bit (with idle bits between characters after a pattern), and a
monitor decodes ``uart_tx`` as a receiver would. :class:`FaultyChannel` wraps any channel and
damages chosen frames and answers, to drive the link's recovery.
"""

from __future__ import annotations

from collections import deque

import cocotb
from cocotb.triggers import ClockCycles, FallingEdge

from ..patterns import Pattern

__all__ = ["UARTChannel", "FaultyChannel"]


class UARTChannel:
    """Bytes to ``dut.uart_rx`` and from ``dut.uart_tx`` (8N1, ``divisor`` cycles a bit).

    Parameters
    ----------
    dut, clk
        The simulated top and its clock.
    divisor : int
        The board's cycles per bit.
    bridge_timeout : int
        The bridge's idle timeout in cycles: a ``receive`` waits that long beyond the time
        its bytes take.
    gaps : pattern specification
        Between characters, one more idle bit whenever the pattern holds back (at most
        ``max_gap`` bits: the bridge must not take a pause for the end of a frame).
    """

    #: Cycles a frame may take to execute before its answer starts.
    EXECUTION = 1 << 15

    def __init__(self, dut, clk, *, divisor: int, bridge_timeout: int, gaps="none",
                 seed: int = 0, max_gap: int = 4):
        self.dut, self.clk, self.divisor = dut, clk, divisor
        self.bridge_timeout = bridge_timeout
        self.gaps, self.max_gap = Pattern(gaps, seed), max_gap
        self.received: deque[int] = deque()
        self.framing_errors = 0
        self.cycles_sent = 0
        dut.uart_rx.value = 1
        cocotb.start_soon(self._monitor())

    async def _monitor(self):
        tx, div = self.dut.uart_tx, self.divisor
        while True:
            await FallingEdge(tx)
            await ClockCycles(self.clk, div // 2)
            if int(tx.value):
                continue                    # a glitch, not a start bit
            byte = 0
            for i in range(8):
                await ClockCycles(self.clk, div)
                byte |= int(tx.value) << i
            await ClockCycles(self.clk, div)
            if not int(tx.value):
                self.framing_errors += 1
                continue
            self.received.append(byte)

    async def send(self, data: bytes):
        rx, div = self.dut.uart_rx, self.divisor
        for byte in data:
            gap = 0
            while gap < self.max_gap and not self.gaps.go():
                gap += 1
            bits = [1] * gap + [0] + [(byte >> i) & 1 for i in range(8)] + [1]
            for bit in bits:
                rx.value = bit
                await ClockCycles(self.clk, div)
            self.cycles_sent += len(bits) * div

    async def receive(self, n: int) -> bytes:
        out = bytearray()
        # Twice the bytes' own time, the bridge's timeout (it answers an error only once the
        # line has rested that long) and the execution of a frame (a word per few cycles).
        budget = 20 * n * self.divisor + 2 * self.bridge_timeout + self.EXECUTION
        waited = 0
        while len(out) < n:
            if self.received:
                out.append(self.received.popleft())
                continue
            if waited >= budget:
                break
            await ClockCycles(self.clk, self.divisor)
            waited += self.divisor
        return bytes(out)

    async def discard(self):
        self.received.clear()


class FaultyChannel:
    """Wraps a channel: the ``k``-th send in ``corrupt_sends`` has a bit flipped in its middle
    byte, one in ``truncate_sends`` loses its second half; the ``k``-th receive call in
    ``corrupt_receives`` gets its first byte's bit 1 flipped."""

    def __init__(self, inner, *, corrupt_sends=(), truncate_sends=(), corrupt_receives=()):
        self.inner, self.sends, self.receives = inner, 0, 0
        self.corrupt_sends, self.truncate_sends = set(corrupt_sends), set(truncate_sends)
        self.corrupt_receives = set(corrupt_receives)

    async def send(self, data: bytes):
        index, self.sends = self.sends, self.sends + 1
        if index in self.corrupt_sends:
            data = bytearray(data)
            data[len(data) // 2] ^= 1 << 2
        if index in self.truncate_sends:
            data = data[:len(data) // 2]
        await self.inner.send(bytes(data))

    async def receive(self, n: int) -> bytes:
        index, self.receives = self.receives, self.receives + 1
        data = await self.inner.receive(n)
        if index in self.corrupt_receives and data:
            data = bytes([data[0] ^ 0b10]) + data[1:]
        return data

    async def discard(self):
        await self.inner.discard()
