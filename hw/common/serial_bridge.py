"""The serial bridge: framed bursts from a byte stream (a UART) onto a host port.

The framing is :mod:`snnforge.serial_link`'s (its docstring is the specification): requests
``A5 | OP | SEQ | N-1 | ADDR | words | CRC`` in, responses ``A5 | STATUS | SEQ | words | CRC``
out. The constants and the checksum come from there, so the bridge and the host code share
one definition.
"""

from __future__ import annotations

import operator

from amaranth import *
from amaranth.lib import memory, stream, wiring
from amaranth.lib.wiring import In, Out

from ...serial_link import (HEADER_BYTES, INFO_FIELDS, MAGIC, MAX_WORDS, OPS, SYNC, VERSION,
                            WORD_BYTES, crc16)
from .hostport import command_layout

__all__ = ["SerialBridge", "crc16_step"]

# Status codes of the responses (snnforge.serial_link.STATUS says what each means).
OK, BAD_CRC, BAD_OPCODE, TRUNCATED, BAD_RANGE, LINE_ERROR = range(6)


def _crc_columns():
    """For each CRC output bit, the CRC bits and byte bits whose XOR it is: the CRC update is
    linear, so its matrix is read off the reference :func:`~snnforge.serial_link.crc16` on unit
    vectors."""
    def step(crc, byte):
        return crc16(bytes([byte]), crc)
    from_crc = [step(1 << i, 0) ^ step(0, 0) for i in range(16)]
    from_byte = [step(0, 1 << i) ^ step(0, 0) for i in range(8)]
    return [([i for i in range(16) if from_crc[i] >> j & 1],
             [i for i in range(8) if from_byte[i] >> j & 1]) for j in range(16)]


_COLUMNS = _crc_columns()


def crc16_step(crc: Value, byte: Value) -> Value:
    """The CRC-16/CCITT-FALSE after one more byte: one XOR tree per bit (two LUT levels)."""
    bits = []
    for from_crc, from_byte in _COLUMNS:
        terms = [crc[i] for i in from_crc] + [byte[i] for i in from_byte]
        value = terms[0]
        for term in terms[1:]:
            value = value ^ term
        bits.append(value)
    return Cat(*bits)


def _word_count(value, name) -> int:
    try:
        number = operator.index(value)
    except TypeError:
        number = None
    if number is None or not 0 <= number < 1 << 32:
        raise ValueError(f"{name} must be an integer in 0..{(1 << 32) - 1}, not {value!r}")
    return number


class SerialBridge(wiring.Component):
    """Frames from ``rx`` become host-port commands on ``cmd``; their answers (and error
    responses) leave on ``tx``. See :mod:`snnforge.serial_link` for the framing.

    A write frame's words are kept in a frame buffer (``max_words`` 32-bit words) until its
    checksum has checked out, then written one command each; a corrupted, unknown, cut-short
    or out-of-range frame writes nothing and gets an error response once the line has been idle
    for ``timeout`` cycles. One frame at a time: bytes arriving while a frame executes or is
    answered wait on ``rx``.

    Latency: a write's commands start 3 cycles after its last byte, one per 2 cycles while
    ``cmd`` is ready; its response's first byte follows the last command. Throughput: the
    line's; a read's words are sent as they come back.

    Parameters
    ----------
    addr_width : int
        Address width of the host port (``RegisterMap.addr_width``).
    max_words : int
        Words per frame at most (1..256): the frame buffer's depth.
    timeout : int
        Idle cycles after which a frame counts as cut short (and after which an error is
        answered).
    interface_id, memory_bytes, clock_hz : int
        What INFO reports besides the magic, the version and ``max_words``.

    Members
    -------
    rx : In(stream.Signature(8))       bytes from the line
    line_error : In(1)                 the receiver dropped a byte (framing error or overrun)
    tx : Out(stream.Signature(8))      bytes to the line
    cmd : Out(stream.Signature(command_layout(addr_width, 32)))
    rsp : In(stream.Signature(32))
    busy : Out(1)                      a frame is being received, executed or answered
    error : Out(1)                     an error response starts (one cycle)
    """

    def __init__(self, *, addr_width: int, max_words: int = MAX_WORDS, timeout: int,
                 interface_id: int = 0, memory_bytes: int = 0, clock_hz: int = 0):
        if not isinstance(addr_width, int) or not 1 <= addr_width <= 32:
            raise ValueError(f"addr_width must be an integer in 1..32, not {addr_width!r}")
        if not isinstance(max_words, int) or not 1 <= max_words <= MAX_WORDS:
            raise ValueError(f"max_words must be an integer in 1..{MAX_WORDS}, not "
                             f"{max_words!r}")
        if not isinstance(timeout, int) or not 1 <= timeout < 1 << 32:
            raise ValueError(f"timeout must be a positive integer of cycles, not {timeout!r}")
        self._aw, self._max, self._timeout = addr_width, max_words, timeout
        info = {"magic": MAGIC, "version": VERSION, "max_words": max_words,
                "interface_id": _word_count(interface_id, "interface_id"),
                "memory_bytes": _word_count(memory_bytes, "memory_bytes"),
                "clock_hz": _word_count(clock_hz, "clock_hz")}
        self._info = [info[name] for name in INFO_FIELDS]
        super().__init__({
            "rx": In(stream.Signature(8)),
            "line_error": In(1),
            "tx": Out(stream.Signature(8)),
            "cmd": Out(stream.Signature(command_layout(addr_width, 32))),
            "rsp": In(stream.Signature(32)),
            "busy": Out(1),
            "error": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        aw, n_max = self._aw, self._max
        m.submodules.buffer = buffer = memory.Memory(shape=32, depth=max(2, n_max), init=[])
        wr, rd = buffer.write_port(), buffer.read_port()

        rx, tx, cmd = self.rx, self.tx, self.cmd
        take = rx.valid & rx.ready
        byte = rx.payload

        # -- the frame as received ------------------------------------------------------------
        op, seq, last = Signal(8), Signal(8), Signal(8)          # last = N - 1
        addr = Signal(32)
        index = Signal(range(HEADER_BYTES))
        crc = Signal(16)
        word = Signal(32)
        lane = Signal(range(WORD_BYTES))
        k = Signal(range(MAX_WORDS + 1))                         # word of the frame
        status = Signal(3)
        idle = Signal(range(self._timeout + 1))                  # cycles since the last byte
        last_seq, have_last = Signal(8), Signal()

        writes = (op == OPS["write"]) | (op == OPS["write_fixed"])
        fixed = (op == OPS["write_fixed"]) | (op == OPS["read_fixed"])
        known = Cat(op == code for code in OPS.values()).any()
        # The end of an incrementing burst must lie inside the map (33 bits: no wrap).
        end = Signal(33)
        m.d.comb += end.eq(addr + Mux(fixed | (op == OPS["info"]), 0, last))

        timed_out = idle == self._timeout
        with m.If(take):
            m.d.sync += crc.eq(crc16_step(crc, byte))
        with m.If(take | self.line_error):
            m.d.sync += idle.eq(0)
        with m.Elif(~timed_out):
            m.d.sync += idle.eq(idle + 1)

        # -- what goes out: the response ------------------------------------------------------
        tx_crc = Signal(16)
        out = Signal(32)                                          # the word being sent
        info = Array(C(v, 32) for v in self._info)
        command_addr = addr[:aw] + Mux(fixed, 0, k)
        sent = tx.valid & tx.ready

        def send(value, then):
            m.d.comb += [tx.valid.eq(1), tx.payload.eq(value)]
            with m.If(tx.ready):
                m.next = then

        m.d.comb += self.busy.eq(1)
        with m.FSM() as fsm:
            with m.State("HUNT"):
                m.d.comb += [rx.ready.eq(1), self.busy.eq(0)]
                with m.If(take & (byte == SYNC)):
                    m.d.sync += [crc.eq(0xFFFF), index.eq(0)]
                    m.next = "HEADER"

            # -- receiving: any lost byte or an idle line drops the frame ----------------------
            def receiving():
                with m.If(self.line_error):
                    m.d.sync += status.eq(LINE_ERROR)
                    m.next = "DRAIN"
                with m.Elif(timed_out):
                    m.d.sync += status.eq(TRUNCATED)
                    m.next = "ANSWER"

            with m.State("HEADER"):
                m.d.comb += rx.ready.eq(1)
                with m.If(take):
                    m.d.sync += index.eq(index + 1)
                    with m.Switch(index):
                        with m.Case(0):
                            m.d.sync += op.eq(byte)
                        with m.Case(1):
                            m.d.sync += seq.eq(byte)
                        with m.Case(2):
                            m.d.sync += last.eq(byte)
                        with m.Default():
                            m.d.sync += addr.eq(Cat(addr[8:], byte))
                    with m.If(index == HEADER_BYTES - 1):
                        m.next = "DECODE"
                receiving()
            with m.State("DECODE"):
                m.d.sync += [k.eq(0), lane.eq(0), index.eq(0)]
                with m.If(~known):
                    m.d.sync += status.eq(BAD_OPCODE)
                    m.next = "DRAIN"
                with m.Elif((last >= n_max) | (end[aw:] != 0)):
                    m.d.sync += status.eq(BAD_RANGE)
                    m.next = "DRAIN"
                with m.Elif(writes):
                    m.next = "DATA"
                with m.Else():
                    m.next = "CHECK"
            with m.State("DATA"):
                m.d.comb += rx.ready.eq(1)
                m.d.comb += [wr.addr.eq(k), wr.data.eq(Cat(word[8:], byte))]
                with m.If(take):
                    m.d.sync += [word.eq(Cat(word[8:], byte)), lane.eq(lane + 1)]
                    with m.If(lane == WORD_BYTES - 1):
                        m.d.comb += wr.en.eq(1)
                        m.d.sync += k.eq(k + 1)
                        with m.If(k == last):
                            m.next = "CHECK"
                receiving()
            with m.State("CHECK"):
                m.d.comb += rx.ready.eq(1)
                with m.If(take):
                    m.d.sync += index.eq(1)
                    with m.If(index == 1):
                        # The CRC over the frame and its checksum is 0 when they agree.
                        with m.If(crc16_step(crc, byte) == 0):
                            m.next = "EXECUTE"
                        with m.Else():
                            m.d.sync += status.eq(BAD_CRC)
                            m.next = "DRAIN"
                receiving()
            with m.State("DRAIN"):
                # Nothing of a bad frame is trusted: wait for the line to rest, then answer.
                m.d.comb += rx.ready.eq(1)
                with m.If(timed_out):
                    m.next = "ANSWER"

            # -- executing ---------------------------------------------------------------------
            with m.State("EXECUTE"):
                m.d.sync += [k.eq(0), status.eq(OK), last_seq.eq(seq), have_last.eq(1)]
                with m.If(writes & ~(have_last & (last_seq == seq))):
                    m.next = "FETCH"
                with m.Else():           # a repeated write frame was written already
                    m.next = "ANSWER"
            with m.State("FETCH"):
                m.d.comb += [rd.addr.eq(k), rd.en.eq(1)]
                m.next = "WRITE"
            with m.State("WRITE"):
                m.d.comb += [rd.en.eq(0), cmd.valid.eq(1), cmd.payload.write.eq(1),
                             cmd.payload.addr.eq(command_addr), cmd.payload.data.eq(rd.data)]
                with m.If(cmd.ready):
                    m.d.sync += k.eq(k + 1)
                    m.next = "FETCH"
                    with m.If(k == last):
                        m.next = "ANSWER"

            # -- answering: A5 STATUS SEQ [words] CRC ------------------------------------------
            with m.State("ANSWER"):
                m.d.comb += self.error.eq(status != OK)
                m.d.sync += [tx_crc.eq(0xFFFF), k.eq(0)]
                send(SYNC, "STATUS")
            with m.State("STATUS"):
                send(status, "SEQ")
            with m.State("SEQ"):
                with m.If((status != OK) | writes):
                    send(seq, "CRC_HIGH")
                with m.Elif(op == OPS["info"]):
                    send(seq, "INFO")
                with m.Else():
                    send(seq, "READ")
            with m.State("INFO"):
                m.d.sync += [out.eq(info[k]), lane.eq(0)]
                m.next = "WORD"
            with m.State("READ"):
                m.d.comb += [cmd.valid.eq(1), cmd.payload.write.eq(0),
                             cmd.payload.addr.eq(command_addr)]
                with m.If(cmd.ready):
                    m.next = "RESPONSE"
            with m.State("RESPONSE"):
                m.d.comb += self.rsp.ready.eq(1)
                with m.If(self.rsp.valid):
                    m.d.sync += [out.eq(self.rsp.payload), lane.eq(0)]
                    m.next = "WORD"
            with m.State("WORD"):
                m.d.comb += [tx.valid.eq(1), tx.payload.eq(out[:8])]
                with m.If(tx.ready):
                    m.d.sync += [out.eq(out >> 8), lane.eq(lane + 1)]
                    with m.If(lane == WORD_BYTES - 1):
                        m.d.sync += k.eq(k + 1)
                        with m.If(k == Mux(op == OPS["info"], len(self._info) - 1, last)):
                            m.next = "CRC_HIGH"
                        with m.Elif(op == OPS["info"]):
                            m.next = "INFO"
                        with m.Else():
                            m.next = "READ"
            with m.State("CRC_HIGH"):
                send(tx_crc[8:], "CRC_LOW")
            with m.State("CRC_LOW"):
                send(tx_crc[:8], "HUNT")

        # The response's CRC covers every byte after the sync byte, the checksum excluded.
        with m.If(sent & (fsm.ongoing("STATUS") | fsm.ongoing("SEQ") | fsm.ongoing("WORD"))):
            m.d.sync += tx_crc.eq(crc16_step(tx_crc, tx.payload))
        return m
