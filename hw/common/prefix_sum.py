"""Prefix-sum (masked popcount) units: where in a packed array does position ``pos`` live?

For a bitmask ``mask`` of non-zero positions, the packed array stores only the non-zero values,
and the value of position ``pos`` sits at index ``popcount(mask & ((1 << pos) - 1))``. Two units
compute it, as in SparTen/LoAS:

* :class:`FastPrefixSum` -- the whole masked popcount at once: one ``width``-bit thermometer mask
  and adder tree per query. Big (the LoAS notes put it at 76 % of a TPPE's area), one answer per
  cycle.
* :class:`LaggyPrefixSum` -- cheap and slow: once per mask it builds a table of the counts before
  each ``segment``-bit segment with ``adders`` small adders (``ceil(width / segment / adders)``
  cycles); afterwards a query needs only a table lookup and a ``segment``-bit popcount
  (:func:`laggy_lookup`). The lag is hidden by reuse: a spike fiber is queried against every weight
  fiber that streams past it.
"""

from __future__ import annotations

from amaranth import *
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .bits import popcount, thermometer

__all__ = ["FastPrefixSum", "LaggyPrefixSum", "laggy_lookup", "laggy_table_layout"]


class FastPrefixSum(wiring.Component):
    """``count = popcount(mask & ((1 << pos) - 1))`` for a new (mask, pos) every cycle.

    ``stages`` pipeline registers (0: combinational; 1: registered output; 2: also a register
    after the per-byte counts, for Fmax on wide masks). Registers load only while ``en``.

    Members
    -------
    mask : In(width)
    pos : In(range(width))
    en : In(1)
    count : Out(range(width + 1))
    """

    def __init__(self, width: int, *, stages: int = 1):
        if not isinstance(width, int) or width < 1:
            raise ValueError(f"width must be a positive integer, not {width!r}")
        if stages not in (0, 1, 2):
            raise ValueError(f"stages must be 0, 1 or 2, not {stages!r}")
        self._width, self._stages = width, stages
        super().__init__({
            "mask": In(width), "pos": In(range(max(2, width))), "en": In(1),
            "count": Out(range(width + 1)),
        })

    @property
    def latency(self):
        return self._stages

    def elaborate(self, platform):
        m = Module()
        w = self._width
        # By bytes: the popcounts of the whole bytes below pos's byte (a 16-entry mask on 4-bit
        # counts, not a width-bit thermometer) plus the masked popcount of pos's own byte.
        nbytes = -(-w // 8)
        shift = 3
        byte_index = self.pos >> shift
        mask = Signal(nbytes * 8)
        m.d.comb += mask.eq(self.mask)
        counts = [Signal(4, name=f"byte{j}") for j in range(nbytes)]
        m.d.comb += [c.eq(popcount(mask[8 * j:8 * j + 8])) for j, c in enumerate(counts)]
        below = [Mux(byte_index > j, c, 0) for j, c in enumerate(counts)]
        own = Signal(8)
        m.d.comb += own.eq(Array(mask[8 * j:8 * j + 8] for j in range(nbytes))[byte_index]
                           & thermometer(self.pos[:shift], 8))
        partial = below + [popcount(own)]
        if self._stages == 2:
            regs = [Signal(4, name=f"part{i}") for i in range(len(partial))]
            with m.If(self.en):
                m.d.sync += [r.eq(p) for r, p in zip(regs, partial)]
            partial = regs
        while len(partial) > 1:
            partial = [partial[i] + partial[i + 1] if i + 1 < len(partial) else partial[i]
                       for i in range(0, len(partial), 2)]
        total = partial[0]
        if self._stages >= 1:
            with m.If(self.en):
                m.d.sync += self.count.eq(total)
        else:
            m.d.comb += self.count.eq(total)
        return m


def laggy_table_layout(width: int, segment: int) -> data.ArrayLayout:
    """Count of set bits before each segment (entry 0 is always 0 and still stored, to keep the
    lookup a plain index)."""
    return data.ArrayLayout(range(width + 1), width // segment)


def laggy_lookup(m: Module, mask: Value, table, pos: Value, *, width: int, segment: int) -> Value:
    """The query half of the laggy prefix-sum (combinational): ``table[pos // segment]`` plus the
    popcount of ``mask``'s bits below ``pos`` inside that segment."""
    shift = (segment - 1).bit_length()
    index = pos >> shift
    below = Signal(segment, name="laggy_below")
    offset = pos[:shift] if shift else C(0, 1)
    m.d.comb += below.eq(Array(mask[i:i + segment] for i in range(0, width, segment))[index]
                         & thermometer(offset, segment))
    return table[index] + popcount(below)


class LaggyPrefixSum(wiring.Component):
    """Builds the segment-count table of a mask with ``adders`` small adders.

    Each cycle, ``adders`` segment popcounts (registered the cycle before, from a mask that
    shifts down by ``adders`` segments a step) are added to a running sum (a chain of ``adders``
    small adders) and stored as table entries. Latency: ``ceil(width / segment / adders)`` cycles
    from accepting a mask on ``i`` to presenting its table on ``o``; a new mask is accepted once the
    previous table has left. With the table, :func:`laggy_lookup` answers any position.

    Members
    -------
    i : In(stream.Signature(width))
    o : Out(stream.Signature(laggy_table_layout(width, segment)))
    """

    def __init__(self, width: int, *, segment: int = 8, adders: int = 4):
        if not isinstance(segment, int) or segment < 1 or segment & (segment - 1):
            raise ValueError(f"segment must be a power of two, not {segment!r}")
        if not isinstance(width, int) or width < segment or width % segment:
            raise ValueError(f"width must be a positive multiple of segment={segment}, not {width!r}")
        self._segments = width // segment
        if not isinstance(adders, int) or not 1 <= adders <= self._segments:
            raise ValueError(f"adders must be an integer in 1..{self._segments}, not {adders!r}")
        self._width, self._segment, self._adders = width, segment, adders
        super().__init__({
            "i": In(stream.Signature(width)),
            "o": Out(stream.Signature(laggy_table_layout(width, segment))),
        })

    @property
    def latency(self):
        return -(-self._segments // self._adders)

    def elaborate(self, platform):
        m = Module()
        w, seg, a = self._width, self._segment, self._adders
        steps = self.latency
        # The mask shifts down by `a` segments a step, so a step's segments are always its
        # lowest bits (no step-indexed multiplexer), and their popcounts are registered a step
        # ahead: each step is only the chain of `a` adders on registers.
        mask = Signal(w)
        pops = [Signal(range(seg + 1), name=f"pop{j}") for j in range(a)]
        table = Signal(laggy_table_layout(w, seg))
        running = Signal(range(w + 1))
        step = Signal(range(steps + 1))
        busy = Signal()

        def load(bits):
            """The next step's popcounts from ``bits``, and ``bits`` shifted past them."""
            return ([p.eq(popcount(bits[j * seg:(j + 1) * seg]) if (j + 1) * seg <= w else 0)
                     for j, p in enumerate(pops)] + [mask.eq(bits >> (a * seg))])

        m.d.comb += [self.i.ready.eq(~busy & ~self.o.valid), self.o.payload.eq(table)]
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += [running.eq(0), step.eq(0), busy.eq(1), *load(self.i.payload)]
        with m.If(busy):
            acc = running
            for j in range(a):
                with m.Switch(step):
                    for s in range(steps):
                        if s * a + j < self._segments:
                            with m.Case(s):
                                m.d.sync += table[s * a + j].eq(acc)
                acc = acc + pops[j]
            m.d.sync += [running.eq(acc), step.eq(step + 1), *load(mask)]
            with m.If(step == steps - 1):
                m.d.sync += [busy.eq(0), self.o.valid.eq(1)]
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        return m
