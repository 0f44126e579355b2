"""One LoAS processing element: its spike row, weight replica, inner join, TPPE, LIF and outputs."""

from __future__ import annotations

from amaranth import *
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out, connect

from ..common.bits import at_most_one, lowest_one, onehot_index, popcount
from ..common.lif import LIFArray
from ..common.memory import buffer
from ..common.prefix_sum import LaggyPrefixSum
from ..common.streams import SkidBuffer, StreamFIFO
from .compress import SpikeCompressor, SpikeExpander, chunk_layout, word_layout
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

    Every buffer has two banks: the next run's spike row and weights load into one (``load_*``)
    while the run computes on the other (``run_*``), and the run writes its outputs into one
    output bank (``run_out``) while the other's are stored or chained (``read_out``). A load
    into the bank a run reads, or a store of the bank it writes, is undefined (the spike-word,
    weight, membrane and carried-sum buffers do not order a read and a write of one entry).

    Load from memory: the row's fiber bitmasks arrive on ``mask_in`` (with their chunk and count
    of ones), each through the :class:`LaggyPrefixSum` into the fiber buffer together with its
    prefix table (built once, reused by every weight fiber) and the packed index of its first
    word; ``nnz`` counts the row's words, which then arrive as whole rows of ``word_lanes``
    words (``words_wr_*``). Load by chaining (``chain``): the :class:`SpikeExpander` reads this PE's
    own outputs and the :class:`SpikeCompressor` packs them, so the last layer's output row
    becomes the next layer's spike row on chip. Weights: whole rows of ``value_lanes`` int8
    values (``values_wr_*``), the same in every PE.

    Run: weight rows arrive by broadcast (``row``, taken by all PEs in the same cycle on
    ``row_take``). The filter registers the row with the spike fiber of its chunk and their
    intersection tests and, a cycle later, keeps it (in the group FIFO, ``cfg.group_fifo`` deep,
    the staged row included) only if some weight fiber in it intersects the spike fiber, or if
    it ends a tile -- so each PE queues only work of its own and runs ahead of the others on its
    own row. The front end hands the intersecting (spike, weight) fiber pairs, one per cycle, to
    the :class:`InnerJoin`, which feeds the :class:`TPPE`. Each drained column gets the carried
    partial sum of earlier K blocks added (``use_psum``), saturated to ``cfg.out_width``; then
    either it is kept for the next K block (``final`` low) or it goes through the LIF array,
    whose spike words are compressed again (chip format) and whose membranes are stored.

    Throughput: one match per cycle (the inner join); one broadcast row per cycle into the
    filter (a place the queue frees is offered again two cycles late, and one place is kept for
    the row the broadcaster may take on a stale ``row_ready``); the front end hands one pair
    (``|J|`` matches) or tile marker per cycle; the drain one column per cycle through the
    carry/saturation stage and the LIF array. Loading from memory: a fiber mask every
    ``LaggyPrefixSum.latency`` cycles, a row of words every cycle; chaining: one position per
    cycle, a partial last fiber padded by up to ``fiber - 1`` cycles.
    Latency: a row taken in cycle ``c`` is at the inner join's input in cycle ``c + 1 +
    filter_latency + group_latency`` (filter stages: :attr:`filter_latency`, group FIFO:
    :attr:`group_latency`, skid buffer); its first match reaches the TPPE
    ``InnerJoin.latency`` cycles later; a drained column reaches the output compressor after
    ``5 + LIFArray.latency`` cycles (a skid buffer, three drain stages, the LIF's input skid
    buffer). The whole run: :attr:`LoASCore.run_overhead`.

    Members: see ``__init__``; ``events`` reports per-cycle counter increments.
    """

    def __init__(self, cfg: LoASConfig):
        self.cfg = cfg
        #: Cycles from a row's push into the group FIFO to its head: LUT RAM is read in place,
        #: block RAM through its read register and a head register.
        self.group_latency = 3 if cfg.group_ram == "block" else 1
        #: Cycles from a row's take to its push into the group FIFO: LUT RAM gives the row's
        #: spike fiber in the take's cycle, block RAM a cycle later, and it is registered before
        #: the intersection tests.
        self.filter_latency = 3 if cfg.fiber_ram == "block" else 1
        lif = cfg.lif
        self.laggy = LaggyPrefixSum(cfg.fiber, segment=cfg.segment, adders=cfg.adders)
        self.inner_join = InnerJoin(cfg)
        self.tppe = TPPE(cfg)
        self.lif = LIFArray(lif, ops_per_stage=cfg.lif_ops_per_stage)
        dw = cfg.dma_width
        super().__init__({
            # banks: which half of each double buffer is loaded (load_*), used by the run
            # (run_*), and read by chaining and stores (read_out)
            "load_spikes": In(1), "run_spikes": In(1), "run_weights": In(1), "load_weights": In(1),
            "run_out": In(1), "read_out": In(1),
            # load from memory: spike fiber masks (with their chunk), then word rows
            "mask_in": In(stream.Signature(data.StructLayout({
                "mask": cfg.fiber, "ones": range(cfg.fiber + 1),
                "chunk": range(max(2, cfg.chunks_max)), "first": 1}))),
            "nnz": Out(range(cfg.k_max + 1)),
            "words_wr_addr": In(range(max(2, self.word_rows))),
            "words_wr_data": In(dw),
            "words_wr_en": In(1),
            # load by chaining: this PE's last outputs become its spike row
            "chain": In(1),
            "k_len": In(range(cfg.k_max + 1)),
            "strong": In(1),
            "load_busy": Out(1),
            # weight replica (all PEs written together)
            "values_wr_addr": In(range(max(2, self.value_rows))),
            "values_wr_data": In(dw),
            "values_wr_en": In(1),
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
            # stores of the outputs: 0 = fiber bitmasks (one per row), 1 = packed word rows,
            # 2 = membrane rows; the data two cycles after rd_en
            "rd_sel": In(2),
            "rd_addr": In(range(max(2, self.out_rows))),
            "rd_en": In(1),
            "rd_data": Out(max(cfg.fiber, dw)),
        })

    @property
    def word_rows(self) -> int:
        """Rows of one bank of the spike-word buffer (``word_lanes`` words each)."""
        return -(-self.cfg.k_max // self.cfg.word_lanes)

    @property
    def value_rows(self) -> int:
        return -(-self.cfg.v_max // self.cfg.value_lanes)

    @property
    def out_chunks(self) -> int:
        return -(-self.cfg.n_max // self.cfg.fiber)

    @property
    def out_word_rows(self) -> int:
        return -(-self.cfg.n_max // self.cfg.word_lanes)

    @property
    def membrane_rows(self) -> int:
        return -(-self.cfg.n_max // self.cfg.mem_lanes)

    @property
    def out_rows(self) -> int:
        return max(self.out_chunks, self.out_word_rows, self.membrane_rows)

    def elaborate(self, platform):
        m = Module()
        cfg = self.cfg
        T, W, G = cfg.T, cfg.fiber, cfg.group

        # -- buffers: two banks each (bank b at entries b * depth ..), rows as wide as a beat -----
        def banked(index, bank, depth):
            return Mux(bank, index + depth, index)

        lanes, vlanes, mlanes = cfg.word_lanes, cfg.value_lanes, cfg.mem_lanes
        lane_bits, vlane_bits, mlane_bits = [(n - 1).bit_length() for n in (lanes, vlanes,
                                                                             mlanes)]
        # Read in the broadcast cycle (LUT RAM) or a cycle later: the filter's intersection tests.
        m.submodules.a_fibers = a_fibers = buffer(shape=cfg.a_fiber_layout,
                                                  depth=2 * cfg.chunks_max,
                                                  ram_style=cfg.fiber_ram)
        # Spike words, weights and membranes are written into one bank while runs and STOREs
        # read the other.
        m.submodules.a_words = a_words = buffer(shape=lanes * T, depth=2 * self.word_rows,
                                                ram_style=None if cfg.word_ram == "auto"
                                                else cfg.word_ram, banked_reads=True)
        m.submodules.weights = weights = buffer(shape=cfg.dma_width, depth=2 * self.value_rows,
                                                banked_reads=True)
        # A column's carried sum is read two cycles before its new one is written, and a run
        # drains each column once: no read that is used meets a write to its entry either.
        m.submodules.psum = psum = buffer(
            shape=data.ArrayLayout(signed(cfg.out_width), T), depth=cfg.n_max, banked_reads=True)
        m.submodules.out_mask = out_mask = buffer(shape=W, depth=2 * self.out_chunks)
        m.submodules.out_words = out_words = buffer(shape=lanes * T, depth=2 * self.out_word_rows)
        m.submodules.membrane = membrane = buffer(shape=mlanes * cfg.mem_width,
                                                  depth=2 * self.membrane_rows, banked_reads=True)

        # -- load: fiber masks (from memory, or chained through the compressor) -> laggy table ----
        m.submodules.load_compressor = lc = SpikeCompressor(T, W, cfg.k_max, mask_assembly="shift")
        m.submodules.laggy = laggy = self.laggy
        m.submodules.chain_expander = ex = SpikeExpander(T, W, cfg.n_max)
        # Chained fibers reach the table builder through a register slice: the builder's ready
        # no longer runs back through the compressor's mask assembly and the expander.
        m.submodules.chained = chained = SkidBuffer(chunk_layout(W, cfg.k_max))
        connect(m, lc.chunks, chained.i)
        # Its words through a skid register (passing straight through while it is empty): a
        # spike-word LOAD's write, which has the word buffer's port first, no longer runs back
        # through the compressor's handshake into its mask assembly.
        m.submodules.chained_words = chained_words = SkidBuffer(word_layout(T, cfg.k_max),
                                                                registered=False)
        connect(m, lc.words, chained_words.i)
        # And the expanded words reach the compressor through one: the compressor's ready (from
        # its outputs' handshakes) no longer runs into the expander's count down.
        m.submodules.expanded = expanded = SkidBuffer(T, registered=False)
        connect(m, ex.o, expanded.i)
        # The row starts a cycle after the pulse, its length and output bank latched: the
        # length's comparisons in the expander and the compressor, and the output buffers' read
        # addresses, start from registers of this PE, not from the host's.
        chain_len = Signal.like(self.k_len)
        chain_bank = Signal()
        chain_go = Signal()
        chaining = Signal()
        m.d.sync += chain_go.eq(self.chain)
        with m.If(self.chain):
            m.d.sync += [chain_len.eq(self.k_len), chain_bank.eq(self.read_out), chaining.eq(1)]
        with m.Elif(chaining & ~chain_go & lc.done & ~expanded.o.valid & ~chained.o.valid
                    & ~chained_words.o.valid):
            m.d.sync += chaining.eq(0)
        m.d.comb += [
            ex.start.eq(chain_go), ex.length.eq(chain_len),
            lc.start.eq(chain_go), lc.length.eq(chain_len), lc.strong.eq(self.strong),
        ]
        connect(m, expanded.o, lc.i)
        # The fiber being tabulated: its bitmask, index and first packed word, kept until the
        # laggy prefix-sum hands over the table. Masks from memory count their words here.
        pending = Signal(chunk_layout(W, cfg.k_max))
        mask_in = self.mask_in.payload
        nnz = self.nnz
        from_memory = ~chaining
        m.d.comb += [
            laggy.i.valid.eq(Mux(from_memory, self.mask_in.valid, chained.o.valid)),
            laggy.i.payload.eq(Mux(from_memory, mask_in.mask, chained.o.payload.mask)),
            self.mask_in.ready.eq(from_memory & laggy.i.ready),
            chained.o.ready.eq(~from_memory & laggy.i.ready),
        ]
        with m.If(self.mask_in.valid & self.mask_in.ready):
            base = Mux(mask_in.first, 0, nnz)
            m.d.sync += [pending.index.eq(mask_in.chunk), pending.mask.eq(mask_in.mask),
                         pending.base.eq(base), nnz.eq(base + mask_in.ones)]
        with m.If(chained.o.valid & chained.o.ready):
            m.d.sync += pending.eq(chained.o.payload)
        af_wr = a_fibers.write_port()
        m.d.comb += [
            laggy.o.ready.eq(1),
            af_wr.en.eq(laggy.o.valid), af_wr.addr.eq(banked(pending.index, self.load_spikes,
                                                             cfg.chunks_max)),
            af_wr.data.mask.eq(pending.mask), af_wr.data.table.eq(laggy.o.payload),
            af_wr.data.base.eq(pending.base),
            self.load_busy.eq(chaining | self.mask_in.valid | ~laggy.i.ready | laggy.o.valid),
        ]
        # Word rows: whole rows from memory, or single words from the compressor.
        aw_wr = a_words.write_port(granularity=T)
        with m.If(self.words_wr_en):
            m.d.comb += [aw_wr.addr.eq(banked(self.words_wr_addr, self.load_spikes,
                                              self.word_rows)),
                         aw_wr.data.eq(self.words_wr_data), aw_wr.en.eq(-1)]
        with m.Else():
            chained_word = chained_words.o.payload
            word_row = chained_word.addr >> lane_bits
            word_lane = chained_word.addr[:lane_bits] if lane_bits else C(0, 1)
            m.d.comb += [aw_wr.addr.eq(banked(word_row, self.load_spikes, self.word_rows)),
                         aw_wr.data.eq(Cat(*[chained_word.word] * lanes)),
                         aw_wr.en.eq(Mux(chained_words.o.valid, C(1, lanes) << word_lane, 0))]
        m.d.comb += chained_words.o.ready.eq(~self.words_wr_en)

        # -- weight replica ------------------------------------------------------------------------
        w_wr = weights.write_port()
        m.d.comb += [w_wr.addr.eq(banked(self.values_wr_addr, self.load_weights,
                                         self.value_rows)),
                     w_wr.data.eq(self.values_wr_data), w_wr.en.eq(self.values_wr_en)]

        # -- filter: keep a broadcast row only if it has work for this PE --------------------------
        # The taken row and the spike fiber of its chunk (LUT RAM: read in the broadcast cycle,
        # so no row is copied per PE; block RAM: two cycles later, beside a copy of the row) are
        # registered with their intersection tests (any, and at most one position, which the
        # inner join wants from a register): the push into the group FIFO in the next cycle then
        # decides on registers, not on a fiber-wide AND and its reduction in front of the FIFO's
        # write. Staged rows (and those on their way) count as queued, so they always find
        # room. `row_ready` is a register, and the broadcaster registers its AND over all PEs
        # once more (the PEs are far from the broadcast's memories): it bounds the queue two
        # cycles on by this cycle's, the row taken now and the one the broadcaster may take on
        # the stale AND, so a row leaving the queue frees its place two cycles late.
        # In LUT RAM the queue's head is a register (loaded as the old head leaves, at no cost
        # in cycles): the front end's entry selection no longer starts behind the LUT RAM's
        # read multiplexers.
        in_block = cfg.group_ram == "block"
        m.submodules.groups = groups = StreamFIFO(cfg.group_layout, cfg.group_fifo,
                                                  block_ram=in_block, head_register=not in_block)
        in_block_ram = cfg.fiber_ram == "block"
        af_rd = a_fibers.read_port(domain="sync" if in_block_ram else "comb")
        m.d.comb += af_rd.addr.eq(banked(self.row.chunk, self.run_spikes, cfg.chunks_max))
        # The row and its fiber as the intersection tests see them, and the rows on their way.
        test_row, test_fiber, test_valid, on_the_way = self.row, af_rd.data, self.row_take, 0
        if in_block_ram:
            # The row waits for its fiber, which goes into a register before the tests: the
            # block RAM's clock-to-output ends there.
            read_row, test_row = Signal(cfg.bcast_layout), Signal(cfg.bcast_layout)
            read_valid, test_valid = Signal(), Signal()
            test_fiber = Signal(cfg.a_fiber_layout)
            m.d.comb += af_rd.en.eq(self.row_take)
            with m.If(self.row_take):
                m.d.sync += read_row.eq(self.row)
            m.d.sync += [read_valid.eq(self.row_take), test_valid.eq(read_valid),
                         test_row.eq(read_row), test_fiber.eq(af_rd.data)]
            on_the_way = read_valid + test_valid
        staged = Signal(cfg.bcast_layout)
        staged_fiber = Signal(cfg.a_fiber_layout)
        staged_valid = Signal()
        queued = groups.level + staged_valid + on_the_way
        row_ready = Signal()
        # Both bounds come from the PE's own registers; the broadcast's `row_take`, from across
        # the chip, only picks one.
        m.d.sync += row_ready.eq(Mux(self.row_take, queued + 3 <= cfg.group_fifo,
                                     queued + 2 <= cfg.group_fifo))
        m.d.comb += self.row_ready.eq(row_ready)
        m.d.sync += staged_valid.eq(test_valid)
        joints = [test_row.entries[j].mask & test_fiber.mask for j in range(G)]
        staged_any, staged_single = Signal(G), Signal(G)
        with m.If(test_valid):
            m.d.sync += [staged.eq(test_row), staged_fiber.eq(test_fiber),
                         staged_any.eq(Cat(*[joint.any() for joint in joints])),
                         staged_single.eq(Cat(*[at_most_one(m, joint, f"single{j}")
                                                for j, joint in enumerate(joints)]))]
        hits = Cat(*[staged.valid[j] & self.active & staged_any[j] for j in range(G)])
        m.d.comb += [
            groups.i.valid.eq(staged_valid & (hits.any() | staged.tile_last)),
            groups.i.payload.tile_last.eq(staged.tile_last),
            groups.i.payload.hits.eq(hits),
            groups.i.payload.first.eq(onehot_index(lowest_one(m, hits, "first_hit"))),
            groups.i.payload.whole.eq(~hits.any() | (at_most_one(m, hits, "one_hit")
                                                     & ~staged.tile_last)),
            groups.i.payload.singles.eq(staged_single),
            groups.i.payload.entries.eq(staged.entries),
            groups.i.payload.a.eq(staged_fiber),
        ]

        # -- front end: one (spike, weight) fiber pair, or a tile marker, per cycle ----------------
        # Works on the group FIFO's head in place: after the last item of a group the next head is
        # there in the next cycle. A skid buffer hands the pair to the inner join, which reads it
        # in place too; its registered ready keeps the inner join's one-match-per-cycle decision
        # off the group FIFO. A fresh head's first hit and whether it is one item were found
        # before it was queued, and a started head's remaining hits, the index of their lowest
        # and whether they end the group are registers: the decision to pop the head (whose
        # enable reaches the queue's pointers and the whole head register) is a function of
        # flip-flops, and no lowest-one search lies between the queue and the entry it selects.
        # Every queued group is an item (a hit or a tile marker), and so is a started one.
        m.submodules.pairs = pairs = SkidBuffer(cfg.pair_layout)
        head = groups.o.payload
        started = Signal()                # the head's remaining hits are in `left`
        left = Signal(G)
        left_index = Signal(range(max(2, G)))
        left_last = Signal()              # `left` is the group's last item
        hits_left = Mux(started, left, head.hits)
        index = Mux(started, left_index, head.first)
        item_last = Mux(started, left_last, head.whole)
        entry = head.entries[index]
        m.d.comb += [
            pairs.i.valid.eq(groups.o.valid),
            pairs.i.payload.marker.eq(hits_left == 0),
            pairs.i.payload.a.eq(head.a),
            pairs.i.payload.b.eq(entry),
            pairs.i.payload.joint.eq(head.a.mask & entry.mask),
            pairs.i.payload.single.eq(head.singles.bit_select(index, 1)),
            groups.o.ready.eq(pairs.i.ready & item_last),
        ]
        rest = hits_left & ~lowest_one(m, hits_left, "lowest_hit")
        with m.If(pairs.i.valid & pairs.i.ready):
            # A tile marker always comes last: after it, or after the last hit, the group leaves.
            m.d.sync += [started.eq(~item_last), left.eq(rest),
                         left_index.eq(onehot_index(lowest_one(m, rest, "lowest_rest"))),
                         left_last.eq((rest == 0) | (at_most_one(m, rest, "one_rest")
                                                     & ~head.tile_last))]

        # -- inner join and TPPE -------------------------------------------------------------------
        m.submodules.inner_join = ij = self.inner_join
        m.submodules.tppe = tppe = self.tppe
        connect(m, pairs.o, ij.pairs)
        w_rd = weights.read_port()
        m.d.comb += [w_rd.addr.eq(banked(ij.w_addr, self.run_weights, self.value_rows)),
                     w_rd.en.eq(ij.w_en), ij.w_data.eq(w_rd.data)]
        connect(m, ij.matches, tppe.matches)
        m.d.comb += [tppe.fast.eq(ij.fast), ij.hold_next.eq(tppe.hold_next)]
        aw_rd = a_words.read_port()
        read_lane = Signal(max(1, lane_bits))
        with m.If(tppe.word_en):
            m.d.sync += read_lane.eq(tppe.word_addr[:lane_bits] if lane_bits else 0)
        word_row = aw_rd.data
        if tppe.word_latency == 2:
            # Block RAM's row is registered before the lane is picked: its clock-to-output
            # would otherwise start the select in front of the TPPE's word register.
            word_row = Signal.like(aw_rd.data)
            row_lane = Signal.like(read_lane)
            m.d.sync += [word_row.eq(aw_rd.data), row_lane.eq(read_lane)]
            read_lane = row_lane
        m.d.comb += [aw_rd.addr.eq(banked(tppe.word_addr >> lane_bits, self.run_spikes,
                                          self.word_rows)),
                     aw_rd.en.eq(tppe.word_en),
                     tppe.word_data.eq(word_row.word_select(read_lane, T) if lane_bits
                                       else word_row[:T]),
                     tppe.n_cols.eq(self.n_cols), tppe.start.eq(self.start)]

        # -- carried partial sums, saturation ------------------------------------------------------
        ow, tw = cfg.out_width, cfg.tppe_width
        lo, hi = -(1 << (ow - 1)), (1 << (ow - 1)) - 1
        m.submodules.lif = lif = self.lif
        ps_rd, ps_wr = psum.read_port(), psum.write_port()
        # Three stages: the drained column while its carried sum is read from block RAM, the
        # column with the carried sum in registers as read, then the saturated sums in registers
        # (the RAM's clock-to-output time, the adders, and the LIF or the RAM's write port lie on
        # three paths).
        stage = Signal(cfg.currents_layout)
        stage_valid = Signal()
        held = Signal(cfg.currents_layout)
        carried = Signal.like(ps_rd.data)
        held_valid = Signal()
        sat = Signal(data.StructLayout({"col": len(stage.col), "sums": T * ow, "saturated": 1}))
        sat_valid = Signal()
        # A skid buffer before the LIF: the LIF's ready (which runs back from the output
        # compressor through the LIF's pipeline) ends at its register, not in the drain stages
        # and on into the TPPE.
        m.submodules.lif_in = lif_in = SkidBuffer(lif.i.payload.shape())
        connect(m, lif_in.o, lif.i)
        sat_done = Mux(self.final, lif_in.i.ready, 1)
        held_done = ~sat_valid | sat_done
        stage_done = ~held_valid | held_done
        # A skid buffer after the drain: the stages' ready ends there, not in the TPPE's bank
        # bookkeeping.
        m.submodules.drain_skid = drain_skid = SkidBuffer(cfg.currents_layout)
        connect(m, tppe.currents, drain_skid.i)
        m.d.comb += [
            drain_skid.o.ready.eq(~stage_valid | stage_done),
            ps_rd.addr.eq(drain_skid.o.payload.col),
            ps_rd.en.eq(drain_skid.o.ready),
        ]
        with m.If(drain_skid.o.ready):
            m.d.sync += [stage.eq(drain_skid.o.payload), stage_valid.eq(drain_skid.o.valid)]
        with m.If(stage_done):
            m.d.sync += [held.eq(stage), carried.eq(ps_rd.data), held_valid.eq(stage_valid)]
        sums = []
        saturated = []
        for t in range(T):
            wide = Signal(signed(max(ow, tw) + 1), name=f"sum{t}")
            m.d.comb += wide.eq(held.o[t] + Mux(self.use_psum, carried[t], 0))
            clamped = Signal(signed(ow), name=f"clamped{t}")
            m.d.comb += clamped.eq(Mux(wide > hi, hi, Mux(wide < lo, lo, wide)))
            sums.append(clamped)
            saturated.append((wide > hi) | (wide < lo))
        with m.If(held_done):
            m.d.sync += [sat.col.eq(held.col), sat.sums.eq(Cat(*sums)),
                         sat.saturated.eq(Cat(*saturated).any()), sat_valid.eq(held_valid)]
        m.d.comb += [
            lif_in.i.valid.eq(sat_valid & self.final),
            lif_in.i.payload.current.eq(sat.sums),
            ps_wr.addr.eq(sat.col), ps_wr.data.eq(sat.sums),
            ps_wr.en.eq(sat_valid & ~self.final),
            lif.threshold.eq(self.threshold), lif.leak_amount.eq(self.leak_amount),
            lif.tmask.eq(self.tmask), lif.clear.eq(0),
        ]

        # -- LIF outputs: compressed spike words and membranes -------------------------------------
        # Into the run's output bank; word and membrane rows take one lane at a time.
        m.submodules.out_compressor = oc = SpikeCompressor(T, W, cfg.n_max)
        written = Signal(range(cfg.n_max + 1))
        mem_wr = membrane.write_port(granularity=cfg.mem_width)
        m.d.comb += [
            oc.start.eq(self.start), oc.length.eq(self.n_cols), oc.strong.eq(0),
            oc.i.valid.eq(lif.o.valid), oc.i.payload.eq(lif.o.payload.spikes),
            lif.o.ready.eq(oc.i.ready),
            mem_wr.addr.eq(banked(written >> mlane_bits, self.run_out, self.membrane_rows)),
            mem_wr.data.eq(Cat(*[lif.o.payload.membrane] * mlanes)),
            mem_wr.en.eq(Mux(lif.o.valid & lif.o.ready,
                             C(1, mlanes) << (written[:mlane_bits] if mlane_bits else 0), 0)),
        ]
        with m.If(self.start):
            m.d.sync += written.eq(0)
        with m.Elif(lif.o.valid & lif.o.ready):
            m.d.sync += written.eq(written + 1)
        ow_wr, om_wr = out_words.write_port(granularity=T), out_mask.write_port()
        out_index = oc.words.payload.addr
        m.d.comb += [
            oc.words.ready.eq(1),
            ow_wr.addr.eq(banked(out_index >> lane_bits, self.run_out, self.out_word_rows)),
            ow_wr.data.eq(Cat(*[oc.words.payload.word] * lanes)),
            ow_wr.en.eq(Mux(oc.words.valid,
                             C(1, lanes) << (out_index[:lane_bits] if lane_bits else 0), 0)),
            oc.chunks.ready.eq(1),
            om_wr.addr.eq(banked(oc.chunks.payload.index, self.run_out, self.out_chunks)),
            om_wr.data.eq(oc.chunks.payload.mask), om_wr.en.eq(oc.chunks.valid),
        ]

        # -- completion and events -----------------------------------------------------------------
        drained = ((tppe.tiles_done == self.n_tiles) & ~tppe.currents.valid
                   & ~drain_skid.o.valid & ~stage_valid & ~held_valid & ~sat_valid & ~self.start)
        m.d.comb += self.done.eq(drained & Mux(self.final, (written == self.n_cols) & oc.done, 1))
        # Registered: the counters' adder tree across PEs starts at flip-flops, not at the
        # end of a PE's own paths (the counts are read well after a run ends).
        ev = Signal(pe_events_layout(cfg))
        m.d.sync += self.events.eq(ev)
        m.d.comb += [
            ev.match.eq(ij.fast.valid & ~ij.fast.marker),
            ev.busy.eq(ij.busy),
            ev.saturated.eq(sat_valid & sat_done & sat.saturated),
            ev.word_read.eq(tppe.matches.valid & ~tppe.matches.payload.marker),
            ev.weight_read.eq(ij.fast.valid & ~ij.fast.marker),
            ev.fiber_read.eq(self.row_take),
            ev.pushed.eq(groups.i.valid & groups.i.ready),
            ev.lif_steps.eq(Mux(lif.o.valid & lif.o.ready, popcount(self.tmask), 0)),
            ev.join_stall.eq(ij.stalled),
            ev.lif_stall.eq(sat_valid & ~sat_done),
            ev.load_writes.eq(aw_wr.en.any() + af_wr.en),
            ev.psum_read.eq(drain_skid.o.valid & drain_skid.o.ready & self.use_psum),
            ev.psum_write.eq(ps_wr.en),
            ev.out_writes.eq(ow_wr.en.any() + om_wr.en + mem_wr.en.any()),
        ]

        # -- chained loads read the outputs in place -----------------------------------------------
        ch_mask, ch_words = out_mask.read_port(domain="comb"), out_words.read_port(domain="comb")
        chain_index = ex.word_addr
        m.d.comb += [
            ch_mask.addr.eq(banked(ex.mask_addr, chain_bank, self.out_chunks)),
            ex.mask_data.eq(ch_mask.data),
            ch_words.addr.eq(banked(chain_index >> lane_bits, chain_bank, self.out_word_rows)),
            ex.word_data.eq(ch_words.data.word_select(chain_index[:lane_bits], T) if lane_bits
                            else ch_words.data[:T]),
        ]

        # -- stores read whole rows of the output bank ---------------------------------------------
        rd_mask, rd_words, rd_mem = out_mask.read_port(), out_words.read_port(), membrane.read_port()
        sel = Signal(2)
        m.d.comb += [
            rd_mask.addr.eq(banked(self.rd_addr, self.read_out, self.out_chunks)),
            rd_words.addr.eq(banked(self.rd_addr, self.read_out, self.out_word_rows)),
            rd_mem.addr.eq(banked(self.rd_addr, self.read_out, self.membrane_rows)),
            rd_mask.en.eq(self.rd_en), rd_words.en.eq(self.rd_en), rd_mem.en.eq(self.rd_en),
        ]
        # Each memory's row goes into a register of its own, with no logic in front (the block
        # RAMs' clock-to-output time is over half a 100 MHz cycle on ECP5, and a wide memory
        # spans distant RAM sites); the selection follows, from registers.
        held_sel = Signal(2)
        rows = [Signal(len(self.rd_data), name=f"rd_{kind}")
                for kind in ("masks", "words", "membranes")]
        with m.If(self.rd_en):
            m.d.sync += sel.eq(self.rd_sel)
        m.d.sync += [held_sel.eq(sel),
                     *[row.eq(port.data) for row, port in zip(rows, (rd_mask, rd_words, rd_mem))]]
        m.d.comb += self.rd_data.eq(Array(rows + rows[-1:])[held_sel])
        return m
