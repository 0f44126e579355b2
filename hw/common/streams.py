"""Stream plumbing shared by the cores: width converters and a FIFO with a stream interface.

All streams follow the ``amaranth.lib.stream`` contract: a producer raises ``valid`` without
waiting for ``ready`` and holds its payload while ``valid and not ready``; a transfer happens on a
cycle with both high.
"""

from __future__ import annotations

from amaranth import *
from amaranth.hdl import Shape
from amaranth.lib import fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from .memory import buffer

__all__ = ["WordsToBeat", "BeatToWords", "StreamFIFO", "SkidBuffer", "Gearbox"]


def _width(shape):
    return Shape.cast(shape).width


class WordsToBeat(wiring.Component):
    """Assembles ``ceil(width(beat) / word_width)`` words, lowest first, into one beat.

    Latency: the beat is valid the cycle after its last word. Throughput: one word per cycle
    (a new beat's first word is accepted while the previous beat waits, if that beat leaves).

    Members
    -------
    i : In(stream.Signature(word_width))
    o : Out(stream.Signature(beat_shape))
    """

    def __init__(self, word_width: int, beat_shape):
        if not isinstance(word_width, int) or word_width < 1:
            raise ValueError(f"word_width must be a positive integer, not {word_width!r}")
        self._ww = word_width
        self._n = -(-_width(beat_shape) // word_width)
        super().__init__({
            "i": In(stream.Signature(word_width)),
            "o": Out(stream.Signature(beat_shape)),
        })

    def elaborate(self, platform):
        m = Module()
        n, ww = self._n, self._ww
        buf = Signal(n * ww)
        count = Signal(range(n + 1))
        full = count == n
        m.d.comb += [
            self.o.valid.eq(full),
            self.o.payload.eq(buf),
            self.i.ready.eq(~full | self.o.ready),
        ]
        leaving = self.o.valid & self.o.ready
        with m.If(self.i.valid & self.i.ready):
            with m.Switch(Mux(leaving, 0, count)):
                for k in range(n):
                    with m.Case(k):
                        m.d.sync += buf[k * ww:(k + 1) * ww].eq(self.i.payload)
            m.d.sync += count.eq(Mux(leaving, 1, count + 1))
        with m.Elif(leaving):
            m.d.sync += count.eq(0)
        return m


class BeatToWords(wiring.Component):
    """Splits each beat into ``ceil(width(beat) / word_width)`` words, lowest first.

    Latency: the first word is valid the cycle after the beat is accepted. Throughput: one word
    per cycle.

    Members
    -------
    i : In(stream.Signature(beat_shape))
    o : Out(stream.Signature(word_width))
    """

    def __init__(self, beat_shape, word_width: int):
        if not isinstance(word_width, int) or word_width < 1:
            raise ValueError(f"word_width must be a positive integer, not {word_width!r}")
        self._ww = word_width
        self._bw = _width(beat_shape)
        self._n = -(-self._bw // word_width)
        super().__init__({
            "i": In(stream.Signature(beat_shape)),
            "o": Out(stream.Signature(word_width)),
        })

    def elaborate(self, platform):
        m = Module()
        n, ww = self._n, self._ww
        buf = Signal(n * ww)
        left = Signal(range(n + 1))
        m.d.comb += [
            self.o.valid.eq(left != 0),
            self.o.payload.eq(buf[:ww]),
            self.i.ready.eq((left == 0) | ((left == 1) & self.o.ready)),
        ]
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += [buf.eq(self.i.payload), left.eq(n)]
        with m.Elif(self.o.valid & self.o.ready):
            m.d.sync += [buf.eq(buf >> ww), left.eq(left - 1)]
        return m


class StreamFIFO(wiring.Component):
    """A synchronous FIFO with stream ports and a fill level; payloads of any shape.

    Built on ``amaranth.lib.fifo.SyncFIFO``: the head is read combinationally (distributed RAM or
    flip-flops on FPGAs), ``i.ready`` is exactly ``level < depth``, and a beat written in one
    cycle is at the head in the next. With ``buffered`` it is built on ``SyncFIFOBuffered``
    instead: a synchronous read, so deep or wide FIFOs map to block RAM (on the iCE40, whose
    LUTs hold no RAM, a FIFO in flip-flops costs a logic cell per bit); a beat then reaches the
    head two cycles after it is written, and ``i.ready`` may also drop for a cycle below
    ``depth`` (``level`` counts the head register). With ``block_ram`` the beats are kept in
    a memory marked for block RAM (Yosys ``ram_style``: a wide, shallow FIFO would otherwise
    take LUT RAM, which the ECP5 has in some of its slices only) and the head is
    a register loaded from the memory's read port, so the head's consumers do not see a block
    RAM's slow clock-to-out: a beat reaches the head three cycles after it is written, and
    ``i.ready`` is exactly ``level < depth`` (``level`` counts the beats in flight to the head
    and the head). With ``head_register`` it behaves cycle for cycle as the default FIFO (a beat
    at the head one cycle after it is written, ``i.ready`` exactly ``level < depth``), but the
    head is a register, loaded from the distributed RAM (or straight from the input when the
    FIFO is empty) as the old head leaves: the head's consumers no longer sit behind the LUT
    RAM's read multiplexers. Throughput: one beat per cycle in and out.

    Members
    -------
    i : In(stream.Signature(shape))
    o : Out(stream.Signature(shape))
    level : Out(range(depth + 1))
    """

    def __init__(self, shape, depth: int, *, buffered: bool = False, block_ram: bool = False,
                 head_register: bool = False):
        if not isinstance(depth, int) or depth < 1:
            raise ValueError(f"depth must be a positive integer, not {depth!r}")
        if sum(map(bool, (buffered, block_ram, head_register))) > 1:
            raise ValueError("buffered, block_ram and head_register are different FIFOs: "
                             "ask for one")
        self._shape = shape
        self._depth = depth
        self._buffered = bool(buffered)
        self._block_ram = bool(block_ram)
        self._head_register = bool(head_register)
        super().__init__({
            "i": In(stream.Signature(shape)),
            "o": Out(stream.Signature(shape)),
            "level": Out(range(depth + 1)),
        })

    def elaborate(self, platform):
        m = Module()
        if self._depth == 1:
            # One register (SyncFIFO of depth 1 has zero-width addresses, which lint refuses).
            full = Signal()
            held = Signal(_width(self._shape))
            m.d.comb += [self.i.ready.eq(~full), self.o.valid.eq(full),
                         self.o.payload.eq(held), self.level.eq(full)]
            with m.If(self.i.valid & ~full):
                m.d.sync += [held.eq(self.i.payload), full.eq(1)]
            with m.Elif(self.o.ready & full):
                m.d.sync += full.eq(0)
            return m
        if self._block_ram:
            self._elaborate_block_ram(m)
            return m
        if self._head_register:
            self._elaborate_head_register(m)
            return m
        kind = fifo.SyncFIFOBuffered if self._buffered else fifo.SyncFIFO
        m.submodules.fifo = q = kind(width=_width(self._shape), depth=self._depth)
        m.d.comb += [
            q.w_data.eq(self.i.payload),
            q.w_en.eq(self.i.valid),
            self.i.ready.eq(q.w_rdy),
            self.o.payload.eq(q.r_data),
            self.o.valid.eq(q.r_rdy),
            q.r_en.eq(self.o.ready),
            self.level.eq(q.level),
        ]
        return m

    def _elaborate_block_ram(self, m):
        depth, width = self._depth, _width(self._shape)
        m.submodules.storage = storage = buffer(shape=width, depth=depth, ram_style="block")
        wr, rd = storage.write_port(), storage.read_port()

        def advance(pointer):
            return Mux(pointer == depth - 1, 0, pointer + 1)

        produce, consume = Signal(range(depth)), Signal(range(depth))
        stored = Signal(range(depth + 1))   # written, not yet read out of the memory
        fetched = Signal()                  # the read port holds a beat (it keeps it while idle)
        head = Signal(width)
        head_valid = Signal()
        put = self.i.valid & self.i.ready
        take = self.o.ready & head_valid
        move = fetched & (~head_valid | take)
        fetch = (stored != 0) & (~fetched | move)
        m.d.comb += [
            self.i.ready.eq(self.level != depth),
            wr.addr.eq(produce), wr.data.eq(self.i.payload), wr.en.eq(put),
            rd.addr.eq(consume), rd.en.eq(fetch),
            self.o.valid.eq(head_valid), self.o.payload.eq(head),
        ]
        m.d.sync += [
            self.level.eq(self.level + put - take),
            stored.eq(stored + put - fetch),
            fetched.eq(fetch | (fetched & ~move)),
            head_valid.eq(move | (head_valid & ~take)),
        ]
        with m.If(put):
            m.d.sync += produce.eq(advance(produce))
        with m.If(fetch):
            m.d.sync += consume.eq(advance(consume))
        with m.If(move):
            m.d.sync += head.eq(rd.data)

    def _elaborate_head_register(self, m):
        depth, width = self._depth, _width(self._shape)
        behind = depth - 1                  # beats the memory keeps behind the head
        m.submodules.storage = storage = buffer(shape=width, depth=behind)
        wr, rd = storage.write_port(), storage.read_port(domain="comb")

        def advance(pointer):
            return Mux(pointer == behind - 1, 0, pointer + 1)

        produce, consume = Signal(range(max(2, behind))), Signal(range(max(2, behind)))
        # The memory holds beats (`level - head_valid` of them, only behind a full head): a
        # flip-flop, as it enables the read.
        from_memory = Signal()
        head = Signal(width)
        head_valid = Signal()
        put = self.i.valid & self.i.ready
        take = self.o.ready & head_valid
        load = ~head_valid | take           # the head is free for the next beat
        write = put & ~(load & ~from_memory)
        read = load & from_memory
        # Every beat taken is written at `produce`, a free entry, even one that goes straight
        # to the head (the memory is empty then, and `produce` stays): the memory's write enable
        # (to every LUT RAM cell) does not wait for the consumer's decision to take the head.
        m.d.comb += [
            self.i.ready.eq(self.level != depth),
            wr.addr.eq(produce), wr.data.eq(self.i.payload), wr.en.eq(put),
            rd.addr.eq(consume),
            self.o.valid.eq(head_valid), self.o.payload.eq(head),
        ]
        # The consumer's decision (`take`, hence `load`) picks the next values, found without
        # it, instead of entering the level's carry chain.
        m.d.sync += [
            self.level.eq(Mux(take, self.level + put - 1, self.level + put)),
            from_memory.eq(Mux(load, from_memory & ((self.level > 2) | put), from_memory | put)),
        ]
        with m.If(load):
            m.d.sync += [head.eq(Mux(from_memory, rd.data, self.i.payload)),
                         head_valid.eq(from_memory | put)]
        with m.If(write):
            m.d.sync += produce.eq(advance(produce))
        with m.If(read):
            m.d.sync += consume.eq(advance(consume))


class SkidBuffer(wiring.Component):
    """A register slice that cuts the ready path: ``i.ready`` is a flip-flop (a "skid" register
    catches the beat taken while ``o`` stalls), so ``o.ready`` reaches no further upstream than
    this buffer. One beat per cycle.

    ``registered`` (the default): ``o`` is a register too -- latency one cycle, two beats of
    storage. ``registered=False``: a beat passes straight through while the skid register is
    empty (``o`` is the input or the skid register, through a multiplexer) -- latency zero,
    one beat of storage, for a ready path to cut where the data path is short.

    Members
    -------
    i : In(stream.Signature(shape))
    o : Out(stream.Signature(shape))
    """

    def __init__(self, shape, *, registered: bool = True):
        if not isinstance(registered, bool):
            raise ValueError(f"registered must be True or False, not {registered!r}")
        self._shape = shape
        self._registered = registered
        super().__init__({
            "i": In(stream.Signature(shape)),
            "o": Out(stream.Signature(shape)),
        })

    def elaborate(self, platform):
        m = Module()
        skid = Signal(self._shape)
        skid_valid = Signal()
        m.d.comb += self.i.ready.eq(~skid_valid)
        # An empty skid register copies the input every cycle, whether or not it is valid or
        # needed: its enable is then a flip-flop, not the handshakes on both sides (a wide
        # register's enable from a long path placed across the chip was a critical path).
        with m.If(~skid_valid):
            m.d.sync += skid.eq(self.i.payload)
        if not self._registered:
            m.d.comb += [self.o.valid.eq(self.i.valid | skid_valid),
                         self.o.payload.eq(Mux(skid_valid, skid, self.i.payload))]
            with m.If(skid_valid):
                m.d.sync += skid_valid.eq(~self.o.ready)
            with m.Else():
                m.d.sync += skid_valid.eq(self.i.valid & ~self.o.ready)
            return m
        with m.If(~self.o.valid | self.o.ready):
            with m.If(skid_valid):
                m.d.sync += [self.o.payload.eq(skid), self.o.valid.eq(1), skid_valid.eq(0)]
            with m.Else():
                m.d.sync += [self.o.payload.eq(self.i.payload), self.o.valid.eq(self.i.valid)]
        with m.Elif(self.i.valid & ~skid_valid):
            m.d.sync += skid_valid.eq(1)
        return m


class Gearbox(wiring.Component):
    """Converts a stream of ``in_width``-bit words into ``out_width``-bit words, one width a
    multiple of the other, lowest bits first.

    Wide to narrow: each input word leaves as ``in_width / out_width`` words, one per cycle.
    Narrow to wide: ``out_width / in_width`` input words make one output word; ``flush`` (with
    or after the last input word) sends a partial one, zero-padded above. ``clear`` empties the
    gearbox at once (a new transfer). ``empty``: nothing is held.

    Latency: one cycle. Throughput: one narrow word per cycle.

    Members
    -------
    i : In(stream.Signature(in_width))
    o : Out(stream.Signature(out_width))
    flush, clear : In(1)
    empty : Out(1)
    """

    def __init__(self, in_width: int, out_width: int):
        for name, value in (("in_width", in_width), ("out_width", out_width)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, not {value!r}")
        if max(in_width, out_width) % min(in_width, out_width):
            raise ValueError(f"in_width={in_width} and out_width={out_width}: one must divide "
                             f"the other")
        self._iw, self._ow = in_width, out_width
        super().__init__({
            "i": In(stream.Signature(in_width)),
            "o": Out(stream.Signature(out_width)),
            "flush": In(1), "clear": In(1), "empty": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        iw, ow = self._iw, self._ow
        if iw >= ow:
            n = iw // ow
            buf = Signal(iw)
            left = Signal(range(n + 1))
            m.d.comb += [self.o.valid.eq(left != 0), self.o.payload.eq(buf[:ow]),
                         self.i.ready.eq((left == 0) | ((left == 1) & self.o.ready)),
                         self.empty.eq(left == 0)]
            with m.If(self.i.valid & self.i.ready):
                m.d.sync += [buf.eq(self.i.payload), left.eq(n)]
            with m.Elif(self.o.valid & self.o.ready):
                m.d.sync += [buf.eq(buf >> ow), left.eq(left - 1)]
        else:
            n = ow // iw
            acc = Signal(ow)
            have = Signal(range(n + 1))
            ready_out = Signal()         # `acc` holds a word to send
            m.d.comb += [self.o.valid.eq(ready_out), self.o.payload.eq(acc),
                         self.i.ready.eq(~ready_out | self.o.ready),
                         self.empty.eq(~ready_out & (have == 0))]
            leaving = self.o.valid & self.o.ready
            taking = self.i.valid & self.i.ready
            base = Mux(leaving, 0, have)
            with m.If(taking):
                with m.Switch(base):
                    for k in range(n):
                        with m.Case(k):
                            m.d.sync += acc[k * iw:(k + 1) * iw].eq(self.i.payload)
                            if k == 0:
                                m.d.sync += acc[iw:].eq(0)
                full = base + 1 == n
                m.d.sync += [have.eq(Mux(full | self.flush, 0, base + 1)),
                             ready_out.eq(full | self.flush)]
            with m.Elif(leaving):
                m.d.sync += ready_out.eq(0)
            with m.If(self.flush & ~taking & (base != 0)):
                m.d.sync += [ready_out.eq(1), have.eq(0)]
        with m.If(self.clear):
            if iw >= ow:
                m.d.sync += left.eq(0)
            else:
                m.d.sync += [have.eq(0), ready_out.eq(0)]
        return m
