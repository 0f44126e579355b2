"""One LoAS processing element: its spike row, weight replica, inner join, TPPE, LIF and outputs."""

from __future__ import annotations

from amaranth import *
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out, connect

from ..common.bits import lowest_one, onehot_index, popcount
from ..common.lif import LIFArray
from ..common.memory import buffer
from ..common.prefix_sum import LaggyPrefixSum
from ..common.streams import SkidBuffer, StreamFIFO
from .compress import SpikeCompressor, SpikeExpander, chunk_layout
from .config import LoASConfig
from .inner_join import InnerJoin
from .tppe import TPPE

__all__ = ["PE", "pe_events_layout"]


def pe_events_layout(cfg: LoASConfig):
    """Per-cycle events a PE reports to the core's counters."""
    return data.StructLayout({
        "match": 1, "busy": 1, "saturated": 1, "word_read": 1, "weight_read": 1,
        "fiber_read": 1, "pushed": 1, "lif_steps": range(cfg.T + 1),
        "join_stall": 1, "lif_stall": 1, "load_writes": range(3), "psum_read": 1,
        "psum_write": 1, "out_writes": range(4)})


class PE(wiring.Component):
    """A TPPE with everything around it, for one row of spikes (FTP-packed).

    Load: dense T-bit words of the row arrive on ``neurons`` -- or, with ``chain`` set at
    ``load_start``, from the :class:`SpikeExpander` reading this PE's own output buffers, so the
    last layer's output row becomes the next layer's spike row on chip. The
    :class:`SpikeCompressor` packs them into the word buffer, and every fiber's bitmask goes
    through the :class:`LaggyPrefixSum` into the fiber buffer together with its prefix table
    (built once, reused by every weight fiber).

    Run: weight rows arrive by broadcast (``row``, taken by all PEs in the same cycle on
    ``row_take``). The filter registers the row with the spike fiber of its chunk and, a cycle
    later, keeps it (in the group FIFO, ``cfg.group_fifo`` deep, the staged row included) only
    if some weight fiber in it intersects the spike fiber, or if it ends a tile -- so each PE
    queues only work of its own and runs ahead of the others on its own row. The front end hands
    the intersecting (spike, weight) fiber pairs, one per cycle, to the :class:`InnerJoin`, which
    feeds the :class:`TPPE`. Each drained column gets the carried partial sum of earlier K blocks
    added (``use_psum``), saturated to ``cfg.out_width``; then either it is kept for the next K
    block (``final`` low) or it goes through the LIF array, whose spike words are compressed again
    (chip format) and whose membranes are stored.

    Throughput: one match per cycle (the inner join); one broadcast row per cycle into the
    filter; the front end hands one pair (``|J|`` matches) or tile marker per cycle; the drain one
    column per cycle through the carry/saturation stage and the LIF array. Loading: one position
    per cycle, a partial last fiber padded by up to ``fiber - 1`` cycles, and at least
    ``LaggyPrefixSum.latency`` cycles per fiber.
    Latency: a row taken in cycle ``c`` is at the inner join's input in cycle ``c + 3`` (filter
    stage, group FIFO, skid buffer); its first match reaches the TPPE ``InnerJoin.latency``
    cycles later; a drained column reaches the output compressor after ``1 + LIFArray.latency``
    cycles. The whole run: :attr:`LoASCore.run_overhead`.

    Members: see ``__init__``; ``events`` reports per-cycle counter increments.
    """

    def __init__(self, cfg: LoASConfig):
        self.cfg = cfg
        lif = cfg.lif
        self.laggy = LaggyPrefixSum(cfg.fiber, segment=cfg.segment, adders=cfg.adders)
        self.inner_join = InnerJoin(cfg)
        self.tppe = TPPE(cfg)
        self.lif = LIFArray(lif, ops_per_stage=cfg.lif_ops_per_stage)
        hr_width = max(cfg.fiber, cfg.T, cfg.mem_width)
        hr_depth = max(cfg.n_max, -(-cfg.n_max // cfg.fiber))
        super().__init__({
            # load
            "neurons": In(stream.Signature(cfg.T)),
            "load_start": In(1),
            "chain": In(1),
            "k_len": In(range(cfg.k_max + 1)),
            "strong": In(1),
            "load_done": Out(1),
            # weight replica
            "w_wr_addr": In(range(max(2, cfg.v_max // 4))),
            "w_wr_data": In(32),
            "w_wr_en": In(1),
            # broadcast
            "row": In(cfg.bcast_layout),
            "row_take": In(1),
            "row_ready": Out(1),
            # run
            "start": In(1),
            "active": In(1),
            "n_cols": In(range(cfg.n_max + 1)),
            "n_tiles": In(range(cfg.tiles_max + 1)),
            "use_psum": In(1),
            "final": In(1),
            "threshold": In(lif.threshold_bits),
            "leak_amount": In(lif.leak_amount_bits),
            "tmask": In(cfg.T),
            "done": Out(1),
            "events": Out(pe_events_layout(cfg)),
            # host reads of the outputs: 0 = fiber bitmasks, 1 = packed words, 2 = membranes
            "hr_sel": In(2),
            "hr_addr": In(range(max(2, hr_depth))),
            "hr_en": In(1),
            "hr_data": Out(hr_width),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self.cfg
        T, W, G = cfg.T, cfg.fiber, cfg.group
        out_chunks = -(-cfg.n_max // W)

        # -- buffers -------------------------------------------------------------------------------
        # LUT RAM: its read feeds the filter's intersection test in the next cycle.
        m.submodules.a_fibers = a_fibers = buffer(shape=cfg.a_fiber_layout,
                                                  depth=cfg.chunks_max, distributed=True)
        m.submodules.a_words = a_words = buffer(shape=T, depth=cfg.k_max, init=[])
        m.submodules.weights = weights = buffer(shape=32, depth=cfg.v_max // 4, init=[])
        m.submodules.psum = psum = buffer(
            shape=data.ArrayLayout(signed(cfg.out_width), T), depth=cfg.n_max, init=[])
        m.submodules.out_mask = out_mask = buffer(shape=W, depth=out_chunks, init=[])
        m.submodules.out_words = out_words = buffer(shape=T, depth=cfg.n_max, init=[])
        m.submodules.membrane = membrane = buffer(shape=signed(cfg.mem_width),
                                                         depth=cfg.n_max, init=[])

        # -- load: compressor + laggy prefix-sum ---------------------------------------------------
        m.submodules.load_compressor = lc = SpikeCompressor(T, W, cfg.k_max, mask_assembly="shift")
        m.submodules.laggy = laggy = self.laggy
        # The row comes from the host (`neurons`) or, chained, from this PE's last outputs.
        m.submodules.chain_expander = ex = SpikeExpander(T, W, cfg.n_max)
        chained = Signal()
        with m.If(self.load_start):
            m.d.sync += chained.eq(self.chain)
        m.d.comb += [
            ex.start.eq(self.load_start & self.chain), ex.length.eq(self.k_len),
            lc.i.valid.eq(Mux(chained, ex.o.valid, self.neurons.valid)),
            lc.i.payload.eq(Mux(chained, ex.o.payload, self.neurons.payload)),
            ex.o.ready.eq(chained & lc.i.ready),
            self.neurons.ready.eq(~chained & lc.i.ready),
            lc.start.eq(self.load_start), lc.length.eq(self.k_len), lc.strong.eq(self.strong),
        ]
        aw_wr = a_words.write_port()
        m.d.comb += [lc.words.ready.eq(1), aw_wr.addr.eq(lc.words.payload.addr),
                     aw_wr.data.eq(lc.words.payload.word), aw_wr.en.eq(lc.words.valid)]
        # The fiber being tabulated: its bitmask, index and first packed word, kept until the
        # laggy prefix-sum hands over the table.
        pending = Signal(chunk_layout(W, cfg.k_max))
        m.d.comb += [laggy.i.valid.eq(lc.chunks.valid), laggy.i.payload.eq(lc.chunks.payload.mask),
                     lc.chunks.ready.eq(laggy.i.ready)]
        with m.If(laggy.i.valid & laggy.i.ready):
            m.d.sync += pending.eq(lc.chunks.payload)
        af_wr = a_fibers.write_port()
        m.d.comb += [
            laggy.o.ready.eq(1),
            af_wr.en.eq(laggy.o.valid), af_wr.addr.eq(pending.index),
            af_wr.data.mask.eq(pending.mask), af_wr.data.table.eq(laggy.o.payload),
            af_wr.data.base.eq(pending.base),
            self.load_done.eq(lc.done & laggy.i.ready & ~lc.start),
        ]

        # -- weight replica ------------------------------------------------------------------------
        w_wr = weights.write_port()
        m.d.comb += [w_wr.addr.eq(self.w_wr_addr), w_wr.data.eq(self.w_wr_data),
                     w_wr.en.eq(self.w_wr_en)]

        # -- filter: keep a broadcast row only if it has work for this PE --------------------------
        # The taken row and the spike fiber of its chunk (distributed RAM, read in the broadcast
        # cycle, so nothing is copied per PE) are registered; the intersection test and the push
        # into the group FIFO happen in the next cycle. The staged row counts as queued, so it
        # always finds room and `row_ready` depends on registers only.
        m.submodules.groups = groups = StreamFIFO(cfg.group_layout, cfg.group_fifo)
        af_rd = a_fibers.read_port(domain="comb")
        staged = Signal(cfg.bcast_layout)
        staged_fiber = Signal(cfg.a_fiber_layout)
        staged_valid = Signal()
        m.d.comb += [af_rd.addr.eq(self.row.chunk),
                     self.row_ready.eq(groups.level + staged_valid < cfg.group_fifo)]
        m.d.sync += staged_valid.eq(self.row_take)
        with m.If(self.row_take):
            m.d.sync += [staged.eq(self.row), staged_fiber.eq(af_rd.data)]
        hits = Cat(*[staged.valid[j] & self.active
                     & (staged.entries[j].mask & staged_fiber.mask).any() for j in range(G)])
        m.d.comb += [
            groups.i.valid.eq(staged_valid & (hits.any() | staged.tile_last)),
            groups.i.payload.tile_last.eq(staged.tile_last),
            groups.i.payload.hits.eq(hits),
            groups.i.payload.entries.eq(staged.entries),
            groups.i.payload.a.eq(staged_fiber),
        ]

        # -- front end: one (spike, weight) fiber pair, or a tile marker, per cycle ----------------
        # Works on the group FIFO's head in place: after the last item of a group the next head is
        # there in the next cycle. A skid buffer hands the pair to the inner join, which reads it
        # in place too; its registered ready keeps the inner join's one-match-per-cycle decision
        # off the group FIFO.
        m.submodules.pairs = pairs = SkidBuffer(cfg.pair_layout)
        head = groups.o.payload
        started = Signal()                # the head's remaining hits are in `left`
        left = Signal(G)
        hits_left = Mux(started, left, head.hits)
        lowest = lowest_one(m, hits_left, "lowest_hit")
        index = Signal(range(max(2, G)))
        m.d.comb += index.eq(onehot_index(lowest))
        emitting_marker = hits_left == 0
        item_valid = groups.o.valid & ((hits_left != 0) | head.tile_last)
        item_last = Mux(emitting_marker, 1, ((hits_left & ~lowest) == 0) & ~head.tile_last)
        entry = head.entries[index]
        m.d.comb += [
            pairs.i.valid.eq(item_valid),
            pairs.i.payload.marker.eq(emitting_marker),
            pairs.i.payload.a.eq(head.a),
            pairs.i.payload.b.eq(entry),
            pairs.i.payload.joint.eq(head.a.mask & entry.mask),
            groups.o.ready.eq(pairs.i.ready & item_valid & item_last),
        ]
        with m.If(pairs.i.valid & pairs.i.ready):
            # A tile marker always comes last: after it, or after the last hit, the group leaves.
            m.d.sync += [started.eq(~item_last), left.eq(hits_left & ~lowest)]

        # -- inner join and TPPE -------------------------------------------------------------------
        m.submodules.inner_join = ij = self.inner_join
        m.submodules.tppe = tppe = self.tppe
        connect(m, pairs.o, ij.pairs)
        w_rd = weights.read_port()
        m.d.comb += [w_rd.addr.eq(ij.w_addr), w_rd.en.eq(ij.w_en), ij.w_data.eq(w_rd.data)]
        connect(m, ij.matches, tppe.matches)
        m.d.comb += [tppe.fast.eq(ij.fast), ij.hold.eq(tppe.hold)]
        aw_rd = a_words.read_port()
        m.d.comb += [aw_rd.addr.eq(tppe.word_addr), aw_rd.en.eq(tppe.word_en),
                     tppe.word_data.eq(aw_rd.data), tppe.n_cols.eq(self.n_cols),
                     tppe.start.eq(self.start)]

        # -- carried partial sums, saturation ------------------------------------------------------
        ow, tw = cfg.out_width, cfg.tppe_width
        lo, hi = -(1 << (ow - 1)), (1 << (ow - 1)) - 1
        m.submodules.lif = lif = self.lif
        ps_rd, ps_wr = psum.read_port(), psum.write_port()
        stage = Signal(cfg.currents_layout)
        stage_valid = Signal()
        stage_done = Mux(self.final, lif.i.ready, 1)
        m.d.comb += [
            tppe.currents.ready.eq(~stage_valid | stage_done),
            ps_rd.addr.eq(tppe.currents.payload.col),
            ps_rd.en.eq(tppe.currents.ready),
        ]
        with m.If(tppe.currents.ready):
            m.d.sync += [stage.eq(tppe.currents.payload), stage_valid.eq(tppe.currents.valid)]
        sums = []
        saturated = []
        for t in range(T):
            wide = Signal(signed(max(ow, tw) + 1), name=f"sum{t}")
            m.d.comb += wide.eq(stage.o[t] + Mux(self.use_psum, ps_rd.data[t], 0))
            clamped = Signal(signed(ow), name=f"clamped{t}")
            m.d.comb += clamped.eq(Mux(wide > hi, hi, Mux(wide < lo, lo, wide)))
            sums.append(clamped)
            saturated.append((wide > hi) | (wide < lo))
        m.d.comb += [
            lif.i.valid.eq(stage_valid & self.final),
            lif.i.payload.current.eq(Cat(*sums)),
            ps_wr.addr.eq(stage.col), ps_wr.data.eq(Cat(*sums)),
            ps_wr.en.eq(stage_valid & ~self.final),
            lif.threshold.eq(self.threshold), lif.leak_amount.eq(self.leak_amount),
            lif.tmask.eq(self.tmask), lif.clear.eq(0),
        ]

        # -- LIF outputs: compressed spike words and membranes -------------------------------------
        m.submodules.out_compressor = oc = SpikeCompressor(T, W, cfg.n_max)
        written = Signal(range(cfg.n_max + 1))
        mem_wr = membrane.write_port()
        m.d.comb += [
            oc.start.eq(self.start), oc.length.eq(self.n_cols), oc.strong.eq(0),
            oc.i.valid.eq(lif.o.valid), oc.i.payload.eq(lif.o.payload.spikes),
            lif.o.ready.eq(oc.i.ready),
            mem_wr.addr.eq(written), mem_wr.data.eq(lif.o.payload.membrane),
            mem_wr.en.eq(lif.o.valid & lif.o.ready),
        ]
        with m.If(self.start):
            m.d.sync += written.eq(0)
        with m.Elif(lif.o.valid & lif.o.ready):
            m.d.sync += written.eq(written + 1)
        ow_wr, om_wr = out_words.write_port(), out_mask.write_port()
        m.d.comb += [
            oc.words.ready.eq(1), ow_wr.addr.eq(oc.words.payload.addr),
            ow_wr.data.eq(oc.words.payload.word), ow_wr.en.eq(oc.words.valid),
            oc.chunks.ready.eq(1), om_wr.addr.eq(oc.chunks.payload.index),
            om_wr.data.eq(oc.chunks.payload.mask), om_wr.en.eq(oc.chunks.valid),
        ]

        # -- completion and events -----------------------------------------------------------------
        drained = (tppe.tiles_done == self.n_tiles) & ~stage_valid & ~self.start
        m.d.comb += self.done.eq(drained & Mux(self.final, (written == self.n_cols) & oc.done, 1))
        ev = self.events
        m.d.comb += [
            ev.match.eq(ij.fast.valid & ~ij.fast.marker),
            ev.busy.eq(ij.busy),
            ev.saturated.eq(stage_valid & stage_done & Cat(*saturated).any()),
            ev.word_read.eq(tppe.matches.valid & ~tppe.matches.payload.marker),
            ev.weight_read.eq(ij.fast.valid & ~ij.fast.marker),
            ev.fiber_read.eq(self.row_take),
            ev.pushed.eq(groups.i.valid & groups.i.ready),
            ev.lif_steps.eq(Mux(lif.o.valid & lif.o.ready, popcount(self.tmask), 0)),
            ev.join_stall.eq(ij.stalled),
            ev.lif_stall.eq(stage_valid & ~stage_done),
            ev.load_writes.eq(aw_wr.en + af_wr.en),
            ev.psum_read.eq(tppe.currents.valid & tppe.currents.ready & self.use_psum),
            ev.psum_write.eq(ps_wr.en),
            ev.out_writes.eq(ow_wr.en + om_wr.en + mem_wr.en),
        ]

        # -- chained loads read the outputs in place -----------------------------------------------
        ch_mask, ch_words = out_mask.read_port(domain="comb"), out_words.read_port(domain="comb")
        m.d.comb += [ch_mask.addr.eq(ex.mask_addr), ex.mask_data.eq(ch_mask.data),
                     ch_words.addr.eq(ex.word_addr), ex.word_data.eq(ch_words.data)]

        # -- host reads ----------------------------------------------------------------------------
        rd_mask, rd_words, rd_mem = out_mask.read_port(), out_words.read_port(), membrane.read_port()
        sel = Signal(2)
        m.d.comb += [rd_mask.addr.eq(self.hr_addr), rd_words.addr.eq(self.hr_addr),
                     rd_mem.addr.eq(self.hr_addr), rd_mask.en.eq(self.hr_en),
                     rd_words.en.eq(self.hr_en), rd_mem.en.eq(self.hr_en)]
        with m.If(self.hr_en):
            m.d.sync += sel.eq(self.hr_sel)
        with m.Switch(sel):
            with m.Case(0):
                m.d.comb += self.hr_data.eq(rd_mask.data)
            with m.Case(1):
                m.d.comb += self.hr_data.eq(rd_words.data)
            with m.Default():
                m.d.comb += self.hr_data.eq(rd_mem.data.as_unsigned())
        return m
