"""FTP spike compression: a row of dense T-bit neuron words -> fiber bitmasks + packed words."""

from __future__ import annotations

from amaranth import *
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from ..common.bits import popcount

__all__ = ["SpikeCompressor", "SpikeExpander", "word_layout", "chunk_layout"]


def word_layout(T: int, max_length: int) -> data.StructLayout:
    return data.StructLayout({"addr": range(max(2, max_length)), "word": T})


def chunk_layout(fiber: int, max_length: int) -> data.StructLayout:
    chunks = -(-max_length // fiber)
    return data.StructLayout({"index": range(max(2, chunks)), "mask": fiber,
                              "base": range(max_length + 1)})


class SpikeCompressor(wiring.Component):
    """Compresses one row of neurons into the LoAS fiber format (``golden.loas.pack_spikes``).

    Neurons arrive in position order, one T-bit FTP word per beat (bit ``t`` = spike at step ``t``).
    A neuron is *silent* if its word is 0 -- or, with ``strong`` set (LoAS-FT), if it spikes
    exactly once. Each non-silent word leaves on ``words`` with its index in the packed array; each
    completed ``fiber``-wide chunk (and the final partial one) leaves on ``chunks`` with its bitmask
    and the packed index of its first word. A row begins with a ``start`` pulse (``length`` then
    holds its neurons; it is sampled there). Beats after ``length`` neurons are accepted and
    dropped (the padding of the last host word).

    Used twice per PE: on the input side (host spikes -> A buffers) and on the output side (LIF
    spike words -> the output buffers), so a layer's output is already in the next layer's format.

    ``mask_assembly``: ``"decode"`` sets bit ``k % fiber`` through a decoder; ``"shift"`` shifts
    bits into place (about half the logic) and pads a partial last chunk with up to ``fiber - 1``
    extra cycles -- the choice for loading, where that happens once per row.

    Throughput: one neuron per cycle. Latency: one cycle to ``words``/``chunks``.

    Members
    -------
    i : In(stream.Signature(T))
    start : In(1)            pulse: begin a new row
    length : In(range(max_length + 1))
    strong : In(1)
    words : Out(stream.Signature(word_layout(T, max_length)))
    chunks : Out(stream.Signature(chunk_layout(fiber, max_length)))
    done : Out(1)            the row is complete and every beat has left
    nonsilent : Out(range(max_length + 1))
    """

    def __init__(self, T: int, fiber: int, max_length: int, *, mask_assembly: str = "decode"):
        for name, value, lo in (("T", T, 1), ("fiber", fiber, 1), ("max_length", max_length, 1)):
            if not isinstance(value, int) or value < lo:
                raise ValueError(f"{name} must be an integer >= {lo}, not {value!r}")
        if mask_assembly not in ("decode", "shift"):
            raise ValueError(f"mask_assembly must be decode or shift, not {mask_assembly!r}")
        self._T, self._fiber, self._max = T, fiber, max_length
        self._shift = mask_assembly == "shift"
        super().__init__({
            "i": In(stream.Signature(T)),
            "start": In(1),
            "length": In(range(max_length + 1)),
            "strong": In(1),
            "words": Out(stream.Signature(word_layout(T, max_length))),
            "chunks": Out(stream.Signature(chunk_layout(fiber, max_length))),
            "done": Out(1),
            "nonsilent": Out(range(max_length + 1)),
        })

    def elaborate(self, platform):
        m = Module()
        W = self._fiber
        remaining = Signal(range(self._max + 1))  # neurons of the row not yet taken
        # Whether a neuron is still to come, and whether it is the last: registers, set from
        # the count down of the row's neurons (sampled from ``length`` at ``start``), so that no
        # comparison with the length and no adder lies on the handshake paths.
        taking = Signal()
        last = Signal()
        lane = Signal(range(W))                   # k % fiber
        chunk = Signal.like(self.chunks.payload.index)
        mask = Signal(W)
        base = Signal(range(self._max + 1))
        count = self.nonsilent
        flushing = Signal()                       # padding a partial last chunk (shift mode)

        out_free = (~self.words.valid | self.words.ready) & (~self.chunks.valid | self.chunks.ready)
        m.d.comb += [
            self.i.ready.eq(~self.start & ~flushing & (out_free | ~taking)),
            self.done.eq(~taking & ~flushing & ~self.words.valid & ~self.chunks.valid
                         & ~self.start),
        ]
        with m.If(self.words.valid & self.words.ready):
            m.d.sync += self.words.valid.eq(0)
        with m.If(self.chunks.valid & self.chunks.ready):
            m.d.sync += self.chunks.valid.eq(0)

        word = self.i.payload
        fires_once = popcount(word) == 1
        silent = (word == 0) | (self.strong & fires_once)
        taken = self.i.valid & self.i.ready & taking
        step = taken | (flushing & out_free)      # one position of the chunk per step
        bit = taken & ~silent
        new_mask = Signal(W)
        if self._shift:
            # Bits enter at the top and move down: after `fiber` steps position j is bit j.
            # A partial last chunk is padded with silent steps (flushing).
            m.d.comb += new_mask.eq(Cat(mask[1:], bit))
        else:
            # Bit by bit through a decoder: written as `bit << lane`, Yosys builds a barrel shifter.
            hit = Signal(W)
            m.d.comb += [hit.eq(Cat(*[lane == i for i in range(W)])),
                         new_mask.eq(Cat(*[mask[i] | (bit & hit[i]) for i in range(W)]))]
        chunk_done = (lane == W - 1) | (taken & last & (not self._shift))
        with m.If(self.start):
            m.d.sync += [remaining.eq(self.length), taking.eq(self.length != 0),
                         last.eq(self.length == 1)]
        with m.Elif(taken):
            m.d.sync += [remaining.eq(remaining - 1), taking.eq(remaining != 1),
                         last.eq(remaining == 2)]
        with m.If(self.start):
            m.d.sync += [lane.eq(0), chunk.eq(0), mask.eq(0), base.eq(0), count.eq(0),
                         flushing.eq(0), self.words.valid.eq(0), self.chunks.valid.eq(0)]
        with m.Elif(step):
            m.d.sync += lane.eq(Mux(lane == W - 1, 0, lane + 1))
            with m.If(taken):
                if self._shift:
                    with m.If(last & (lane != W - 1)):
                        m.d.sync += flushing.eq(1)
            with m.If(bit):
                m.d.sync += [
                    self.words.valid.eq(1),
                    self.words.payload.addr.eq(count),
                    self.words.payload.word.eq(word),
                    count.eq(count + 1),
                ]
            with m.If(chunk_done):
                m.d.sync += [
                    self.chunks.valid.eq(1),
                    self.chunks.payload.index.eq(chunk),
                    self.chunks.payload.mask.eq(new_mask),
                    self.chunks.payload.base.eq(base),
                    chunk.eq(chunk + 1),
                    mask.eq(0),
                    lane.eq(0),
                    base.eq(count + bit),
                    flushing.eq(0),
                ]
            with m.Else():
                m.d.sync += mask.eq(new_mask)
        return m


class SpikeExpander(wiring.Component):
    """Expands one row from the fiber format back into dense T-bit words: the inverse of
    :class:`SpikeCompressor` (``golden.loas.PackedSpikes.unpack`` for one row).

    Reads the row's fiber bitmasks and packed words from buffers through combinational read ports
    (``mask_addr``/``mask_data``, ``word_addr``/``word_data``; distributed RAM) and emits, for
    positions ``0 .. length - 1``, the word of each non-silent neuron and 0 for each silent one.
    A fiber's mask is read the cycle before its first position (at ``start``, then with the
    previous fiber's last position) into a shift register whose low bit is the position's:
    the buffer's read ends at that register, not in the position's bit select.
    A PE uses it to reload its own outputs as the next layer's spike row (chaining), so a layer's
    output feeds the next layer without leaving the chip format.

    Throughput: one position per cycle. Latency: one cycle (the output is registered).

    Members
    -------
    start : In(1)            pulse: begin a row of ``length`` positions
    length : In(range(max_length + 1))   sampled at ``start``
    mask_addr : Out(range(chunks)); mask_data : In(fiber)
    word_addr : Out(range(max_length)); word_data : In(T)
    o : Out(stream.Signature(T))
    done : Out(1)            every position of the row has left on ``o``
    """

    def __init__(self, T: int, fiber: int, max_length: int):
        for name, value in (("T", T), ("fiber", fiber), ("max_length", max_length)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, not {value!r}")
        self._T, self._fiber, self._max = T, fiber, max_length
        chunks = -(-max_length // fiber)
        super().__init__({
            "start": In(1),
            "length": In(range(max_length + 1)),
            "mask_addr": Out(range(max(2, chunks))),
            "mask_data": In(fiber),
            "word_addr": Out(range(max(2, max_length))),
            "word_data": In(T),
            "o": Out(stream.Signature(T)),
            "done": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        W = self._fiber
        left = Signal(range(self._max + 1))       # positions still to emit
        pending = Signal()                        # left != 0, as a register
        lane = Signal(range(W))                   # position % fiber
        chunk = Signal.like(self.mask_addr)       # the fiber after the one in `mask`
        mask = Signal(W)                          # this fiber's mask, this position's bit at 0
        packed = Signal(range(self._max + 1))     # packed index of the next non-silent word

        bit = mask[0]
        emit = pending & (~self.o.valid | self.o.ready) & ~self.start
        m.d.comb += [
            self.mask_addr.eq(Mux(self.start, 0, chunk)),
            self.word_addr.eq(packed),
            self.done.eq(~pending & ~self.o.valid & ~self.start),
        ]
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        with m.If(self.start):
            m.d.sync += [left.eq(self.length), pending.eq(self.length != 0), lane.eq(0),
                         chunk.eq(1), mask.eq(self.mask_data), packed.eq(0), self.o.valid.eq(0)]
        with m.Elif(emit):
            m.d.sync += [
                self.o.valid.eq(1),
                self.o.payload.eq(Mux(bit, self.word_data, 0)),
                left.eq(left - 1),
                pending.eq(left != 1),              # idle until the next start
                packed.eq(packed + bit),
            ]
            with m.If(lane == W - 1):
                m.d.sync += [lane.eq(0), chunk.eq(chunk + 1), mask.eq(self.mask_data)]
            with m.Else():
                m.d.sync += [lane.eq(lane + 1), mask.eq(mask >> 1)]
        return m
