"""The LoAS inner join: one matched (spike, weight) position per cycle from a pair of fibers."""

from __future__ import annotations

from amaranth import *
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from ..common.bits import at_most, lowest_one, onehot_index
from ..common.prefix_sum import FastPrefixSum, laggy_lookup
from ..common.streams import StreamFIFO
from .config import LoASConfig

__all__ = ["InnerJoin", "fast_layout"]


def fast_layout(cfg: LoASConfig):
    return data.StructLayout({"valid": 1, "marker": 1, "n": range(max(2, cfg.tile_n)),
                              "weight": signed(8)})


class InnerJoin(wiring.Component):
    """Intersects a spike fiber with a weight fiber and emits one match per cycle.

    For each pair on ``pairs`` the set ``J = joint = a.mask & b.mask`` (the AND of the fiber
    bitmasks, formed by the PE's front end, with ``single`` = ``|J| <= 1``) is walked lowest
    position first, one per cycle; the pair is read in place at the head of its FIFO. For the
    matched position ``p``:

    * the **fast prefix-sum** over ``b.mask`` gives the offset of the weight in its packed array:
      ``b.vbase + popcount(b.mask & ((1 << p) - 1))``; the weight is read from the PE's weight
      buffer (``w_addr``/``w_en``/``w_data``, one-cycle read latency, rows of
      ``cfg.value_lanes`` weights);
    * the **laggy prefix-sum** table of ``a`` (built when the spike fiber was loaded) gives the
      index of the neuron's T-bit word: ``a_addr = a.base + laggy_lookup(a.mask, a.table, p)``.

    The match enters FIFO-mp/FIFO-B (one FIFO of ``match_layout``, depth ``cfg.match_fifo``) and is
    announced on ``fast`` in the same cycle, for the pseudo accumulator. A pair with
    ``marker`` set carries no fiber: it marks the end of an output tile and passes through in order.
    When the FIFO is full, or in the cycle after ``hold_next`` was high, the whole pipeline stalls
    (no match is lost or repeated). The stall (``advance``, the enable of every stage) is a
    register, loaded with the next cycle's value: its fan-out starts at a flip-flop.

    Latency: ``4 + cfg.prefix_stages`` cycles from a pair at ``pairs`` to its first match on
    ``fast`` (pushed into FIFO-mp/FIFO-B at the end of that cycle, at its head one cycle later).
    Throughput: one match per cycle; a pair costs ``|J|`` cycles, a marker one.

    Members
    -------
    pairs : In(stream.Signature(cfg.pair_layout))
    matches : Out(stream.Signature(cfg.match_layout))
    fast : Out(fast_layout(cfg))
    hold_next : In(1)             hold in the next cycle (the TPPE's bank bookkeeping)
    w_addr : Out(range(rows))     the weight buffer's row
    w_en : Out(1)
    w_data : In(cfg.dma_width)
    busy : Out(1)
    stalled : Out(1)
        A match is ready but held (``hold_next`` a cycle before, or FIFO-mp/FIFO-B full).
    """

    def __init__(self, cfg: LoASConfig):
        self.cfg = cfg
        super().__init__({
            "pairs": In(stream.Signature(cfg.pair_layout)),
            "matches": Out(stream.Signature(cfg.match_layout)),
            "fast": Out(fast_layout(cfg)),
            "hold_next": In(1),
            "w_addr": Out(range(max(2, -(-cfg.v_max // cfg.value_lanes)))),
            "w_en": Out(1),
            "w_data": In(cfg.dma_width),
            "busy": Out(1),
            "stalled": Out(1),
        })

    @property
    def latency(self):
        return 4 + self.cfg.prefix_stages

    def elaborate(self, platform):
        m = Module()
        cfg = self.cfg
        W = cfg.fiber
        m.submodules.fifo = fifo = StreamFIFO(cfg.match_layout, cfg.match_fifo)
        m.submodules.prefix = prefix = FastPrefixSum(W, stages=cfg.prefix_stages)
        wiring.connect(m, fifo.o, wiring.flipped(self.matches))

        # Final stages: side information, and the weight read in the cycle before. The block RAM's
        # row goes into `row` as it comes (its clock-to-output time and the cascade multiplexer of
        # a deep buffer end at a register); its byte is selected from there into `out`, so neither
        # runs on into the TPPE's accumulators.
        byte_bits = (cfg.value_lanes - 1).bit_length()
        side_fields = {"valid": 1, "marker": 1, "n": range(max(2, cfg.tile_n)),
                       "a_addr": range(max(2, cfg.k_max))}
        final = Signal(data.StructLayout({**side_fields, "byte": max(1, byte_bits)}))
        row = Signal(data.StructLayout({**side_fields, "byte": max(1, byte_bits),
                                        "word": cfg.dma_width}))
        out = Signal(data.StructLayout({**side_fields, "weight": signed(8)}))
        push = Signal()
        # `advance`, `hold` and `room` (FIFO-mp/FIFO-B's i.ready: level < depth) are registers
        # holding this cycle's values, each loaded with the next cycle's.
        advance = Signal(init=1)
        hold = Signal()
        room = Signal(init=1)
        with m.If(advance):
            m.d.sync += [row.valid.eq(final.valid), row.marker.eq(final.marker),
                         row.n.eq(final.n), row.a_addr.eq(final.a_addr), row.byte.eq(final.byte),
                         row.word.eq(self.w_data),
                         out.valid.eq(row.valid), out.marker.eq(row.marker),
                         out.n.eq(row.n), out.a_addr.eq(row.a_addr),
                         out.weight.eq(row.word.word_select(row.byte, 8))]
        m.d.comb += [
            push.eq(out.valid & ~hold & room),
            fifo.i.valid.eq(out.valid & ~hold),
            fifo.i.payload.marker.eq(out.marker),
            fifo.i.payload.n.eq(out.n),
            fifo.i.payload.a_addr.eq(out.a_addr),
            fifo.i.payload.weight.eq(out.weight),
            self.fast.valid.eq(push),
            self.fast.marker.eq(out.marker),
            self.fast.n.eq(out.n),
            self.fast.weight.eq(out.weight),
            self.stalled.eq(out.valid & ~push),
        ]
        level_next = fifo.level + push - (fifo.o.valid & fifo.o.ready)
        room_next = level_next < cfg.match_fifo
        out_valid_next = Mux(advance, row.valid, out.valid)
        m.d.sync += [hold.eq(self.hold_next), room.eq(room_next),
                     advance.eq(~out_valid_next | (~self.hold_next & room_next))]

        # S0: the pair at the head of the pair FIFO (read in place) and its matches still to visit.
        head = self.pairs.payload
        # Whether this is the pair's last match comes from registers (the pair's `single`, or
        # `remaining_last`): the ready that releases the pair then does not wait for a search.
        started = Signal()                 # `remaining` holds the head's unvisited matches
        remaining = Signal(W)
        remaining_last = Signal()          # at most one of them
        left = Signal(W)
        m.d.comb += left.eq(Mux(started, remaining, head.joint))
        lowest = lowest_one(m, left)
        position = Signal(range(W))
        m.d.comb += position.eq(onehot_index(lowest))
        item_valid = self.pairs.valid & (head.marker | (left != 0))
        item_last = head.marker | Mux(started, remaining_last, head.single)
        m.d.comb += self.pairs.ready.eq(advance & item_last)
        with m.If(advance & self.pairs.valid):
            m.d.sync += [started.eq(~item_last), remaining.eq(left & ~lowest),
                         remaining_last.eq(at_most(m, left, 2))]

        # R1: the chosen position with its fibers.
        r1 = Signal(data.StructLayout({"valid": 1, "marker": 1, "p": range(W),
                                       "a": cfg.a_fiber_layout, "b": cfg.entry_layout}))
        with m.If(advance):
            m.d.sync += [r1.valid.eq(item_valid), r1.marker.eq(head.marker), r1.p.eq(position),
                         r1.a.eq(head.a), r1.b.eq(head.b)]

        # Fast prefix-sum (pipelined) on the weight mask; laggy lookup on the spike fiber.
        m.d.comb += [prefix.mask.eq(r1.b.mask), prefix.pos.eq(r1.p), prefix.en.eq(advance)]
        side_layout = data.StructLayout({"valid": 1, "marker": 1, "n": range(max(2, cfg.tile_n)),
                                         "a_addr": range(max(2, cfg.k_max)),
                                         "vbase": range(cfg.v_max)})
        a = r1.a
        side = Signal(side_layout, name="side_r1")
        m.d.comb += [
            side.valid.eq(r1.valid), side.marker.eq(r1.marker), side.n.eq(r1.b.n),
            side.vbase.eq(r1.b.vbase),
            side.a_addr.eq(a.base + laggy_lookup(m, a.mask, a.table, r1.p, width=W,
                                                 segment=cfg.segment)),
        ]
        delayed = []
        for stage in range(cfg.prefix_stages):
            nxt = Signal(side_layout, name=f"side_d{stage + 1}")
            with m.If(advance):
                m.d.sync += nxt.eq(side)
            side = nxt
            delayed.append(nxt.valid)

        # Weight address, read issued here; data valid with `final`.
        w_index = Signal(range(cfg.v_max))
        m.d.comb += [
            w_index.eq(side.vbase + prefix.count),
            self.w_addr.eq(w_index >> byte_bits),
            self.w_en.eq(advance),
        ]
        with m.If(advance):
            m.d.sync += [final.valid.eq(side.valid), final.marker.eq(side.marker),
                         final.n.eq(side.n), final.a_addr.eq(side.a_addr),
                         final.byte.eq(w_index[:byte_bits])]

        m.d.comb += self.busy.eq(self.pairs.valid | r1.valid | final.valid | row.valid | out.valid
                                 | Cat(*delayed).any())
        return m
