"""Temporal-parallel processing element: pseudo + T correction accumulators, output-stationary."""

from __future__ import annotations

from amaranth import *
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from ..common.memory import buffer
from .config import LoASConfig
from .inner_join import fast_layout

__all__ = ["TPPE"]


class TPPE(wiring.Component):
    """The accumulators of one PE for ``tile_n`` output columns, double-buffered by tile parity.

    * **Fast path** (``fast``, from the inner join): every matched weight is added, in the next
      cycle, to the pseudo accumulator of its column, as if the neuron had fired at every step.
    * **Slow path** (``matches``, FIFO-mp/FIFO-B): the neuron's T-bit word is read
      (``word_addr``/``word_en``/``word_data``, :attr:`word_latency` cycles: 1, or 2 with
      ``word_ram="block"``) and the weight is added to
      correction accumulator ``t`` of the column for every step ``t`` the neuron did *not* fire.
    * **Drain**: once the slow path has passed a tile's marker, ``O[t] = pseudo - corr[t]`` of each
      column of that tile leaves on ``currents`` in column order, and the tile's bank is free again.

    Accumulators are ``cfg.tppe_width`` bits and wrap: the difference ``O[t]`` is exact because
    ``|O[t]| <= 128 * k_max`` fits. The drain zeroes each entry as it reads it, so a bank is clean
    for its next tile (and after every complete run). While the fast path would start a tile whose
    bank is still draining, the inner join holds; ``hold_next`` says so a cycle ahead (the inner
    join registers it, so its stall starts at flip-flops).

    Throughput: one match per cycle on each path; the drain emits one column per cycle.
    Latency: a match's correction is written :attr:`match_latency` cycles after it leaves
    FIFO-mp/FIFO-B (with block RAM the match registered, then the word read, then its word
    registered: 4; else 2).

    Members
    -------
    fast : In(fast_layout(cfg))
    hold_next : Out(1)                  whether the inner join holds in the next cycle
    matches : In(stream.Signature(cfg.match_layout))
    word_addr : Out(range(cfg.k_max)); word_en : Out(1); word_data : In(cfg.T)
    currents : Out(stream.Signature(cfg.currents_layout))
    n_cols : In(range(cfg.n_max + 1))  columns in this run
    start : In(1)                       pulse: new run
    tiles_done : Out(range(cfg.tiles_max + 1))
    """

    def __init__(self, cfg: LoASConfig):
        self.cfg = cfg
        #: Cycles from ``word_addr`` to ``word_data``.
        self.word_latency = 2 if cfg.word_ram == "block" else 1
        #: Whether a match is registered before its word's address (with block RAM).
        self.address_stage = cfg.word_ram == "block"
        #: Cycles from a match leaving FIFO-mp/FIFO-B to its correction's write.
        self.match_latency = self.address_stage + self.word_latency + 1
        super().__init__({
            "fast": In(fast_layout(cfg)),
            "hold_next": Out(1),
            "matches": In(stream.Signature(cfg.match_layout)),
            "word_addr": Out(range(max(2, cfg.k_max))),
            "word_en": Out(1),
            "word_data": In(cfg.T),
            "currents": Out(stream.Signature(cfg.currents_layout)),
            "n_cols": In(range(cfg.n_max + 1)),
            "start": In(1),
            "tiles_done": Out(range(cfg.tiles_max + 1)),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self.cfg
        T, tn, aw = cfg.T, cfg.tile_n, cfg.tppe_width
        corr_layout = data.ArrayLayout(signed(aw), T)

        tf = Signal()                           # parity of the fast path's tile
        ts = Signal()                           # parity of the slow path's tile
        td = self.tiles_done                    # tile being drained / tiles drained
        # How far the slow and the fast path are ahead of the drain (0..2 tiles), as small
        # counters: the drain's bank choice and the hold come from them, not from comparing the
        # tile counts (which would sit before every accumulator's address).
        slow_ahead = Signal(range(3))
        fast_ahead = Signal(range(3))
        # The bank being drained, one flag per bank, registered: it picks each accumulator's
        # address, in front of the read-add-write loops.
        drain_bank = Signal(2)
        draining = drain_bank.any()
        col = Signal(range(max(2, tn)))         # column being drained
        drain_step = Signal()

        # One memory per bank and kind (tile parity): the fast path, the slow path and the drain
        # always work on different banks, so each memory needs one read and one write port.
        # The drain zeroes what it reads: a bank is clean when its next tile starts.
        fast = self.fast
        slow_layout = data.StructLayout({"valid": 1, "marker": 1, "n": range(max(2, tn)),
                                         "weight": signed(8)})
        fetch = Signal(slow_layout)           # a match whose word is being read
        slow = Signal(slow_layout)            # ... and when it comes, with its word registered:
        word = Signal(T)                      # the block RAM's slow output ends at a register
        pseudo_rd, corr_rd = [], []
        # Each accumulator memory's address is registered, from the next cycle's bank flags,
        # column and match: the flags' fan-out and a multiplexer no longer run into its read.
        # The fast path's weight is added a cycle after it comes (in `added`) for that; its tile
        # bookkeeping (`tf`, `hold_next`) stays on `fast`: the drain reaches a tile only after the
        # slow path, several cycles later.
        col_next = Signal.like(col)
        drain_next = Signal.like(drain_bank)
        pseudo_addr = [Signal(range(max(2, tn)), name=f"pseudo_addr{b}") for b in range(2)]
        corr_addr = [Signal(range(max(2, tn)), name=f"corr_addr{b}") for b in range(2)]
        added = Signal(data.StructLayout({"valid": 1, "bank": 1, "weight": signed(8)}))
        m.d.sync += [added.valid.eq(fast.valid & ~fast.marker), added.bank.eq(tf),
                     added.weight.eq(fast.weight)]
        for b in range(2):
            p = buffer(shape=signed(aw), depth=tn)
            c = buffer(shape=corr_layout, depth=tn)
            m.submodules[f"pseudo{b}"], m.submodules[f"corr{b}"] = p, c
            p_rd, p_wr = p.read_port(domain="comb"), p.write_port()
            c_rd, c_wr = c.read_port(domain="comb"), c.write_port()
            drain_here = drain_bank[b]
            slow_here = ts == b
            m.d.comb += [
                p_rd.addr.eq(pseudo_addr[b]),
                p_wr.addr.eq(pseudo_addr[b]),
                c_rd.addr.eq(corr_addr[b]),
                c_wr.addr.eq(corr_addr[b]),
            ]
            with m.If(drain_here):
                m.d.comb += [p_wr.data.eq(0), p_wr.en.eq(drain_step),
                             c_wr.data.eq(0), c_wr.en.eq(drain_step)]
            with m.Else():
                m.d.comb += [
                    p_wr.data.eq(p_rd.data + added.weight),
                    p_wr.en.eq(added.valid & (added.bank == b)),
                    c_wr.en.eq(slow_here & slow.valid & ~slow.marker),
                ]
                m.d.comb += [c_wr.data[t].eq(c_rd.data[t] + Mux(word[t], 0, slow.weight))
                             for t in range(T)]
            pseudo_rd.append(p_rd.data)
            corr_rd.append(c_rd.data)

        # -- fast path: pseudo accumulator (weights added as the inner join finds them) -----------
        fast_tile = fast.valid & fast.marker
        with m.If(fast_tile):
            m.d.sync += tf.eq(~tf)

        # -- slow path: word fetch, then corrections -----------------------------------------------
        match = Signal(slow_layout)
        addr = self.matches.payload.a_addr
        m.d.comb += [
            self.matches.ready.eq(1),          # the slow path never stalls
            match.valid.eq(self.matches.valid),
            match.marker.eq(self.matches.payload.marker),
            match.n.eq(self.matches.payload.n),
            match.weight.eq(self.matches.payload.weight),
        ]
        if self.address_stage:
            # Block RAM's address is registered anyway: the match FIFO's read ends at a
            # register, not in the banked address in front of it.
            addressed, addressed_addr = Signal(slow_layout), Signal.like(self.word_addr)
            m.d.sync += [addressed.eq(match), addressed_addr.eq(addr)]
            match, addr = addressed, addressed_addr
        m.d.comb += [self.word_addr.eq(addr), self.word_en.eq(1)]
        m.d.sync += [fetch.eq(match), word.eq(self.word_data)]
        reading = fetch
        for k in range(self.word_latency - 1):
            later = Signal(slow_layout, name=f"fetch{k + 2}")
            m.d.sync += later.eq(reading)
            reading = later
        m.d.sync += slow.eq(reading)
        m.d.sync += [corr_addr[b].eq(Mux(drain_next[b], col_next, reading.n)) for b in range(2)]
        m.d.sync += [pseudo_addr[b].eq(Mux(drain_next[b], col_next, fast.n)) for b in range(2)]
        slow_tile = slow.valid & slow.marker
        with m.If(slow_tile):
            m.d.sync += ts.eq(~ts)

        # -- drain -------------------------------------------------------------------------------
        base_col = Signal(range(cfg.n_max + cfg.tile_n + 1))     # td * tile_n
        # Whether `col` is its tile's or the run's last column: a register, from the next
        # cycle's column (its sum and comparison ran on into the inner join's stall). It reads
        # `n_cols` a cycle before it applies: `n_cols` may change up to a run's `start` cycle.
        # The columns through `col` and through the next one (`base_col + col + 1` and `+ 2`)
        # and the first of the next tile's (`base_col + tile_n + 1`) are counters of their
        # own: each case compares a register with `n_cols`, no adder chain in front.
        last_col = Signal(init=1)
        through_range = range(cfg.n_max + 2 * cfg.tile_n + 3)
        through_col = Signal(through_range, init=1)
        through_next = Signal(through_range, init=2)
        through_tile = Signal(through_range, init=tn + 1)
        out = self.currents
        with m.If(out.valid & out.ready):
            m.d.sync += out.valid.eq(0)
        m.d.comb += drain_step.eq(draining & (~out.valid | out.ready))
        pv = Mux(td[0], pseudo_rd[1], pseudo_rd[0])
        cv = data.View(corr_layout, Mux(td[0], corr_rd[1].as_value(), corr_rd[0].as_value()))
        with m.If(drain_step):
            m.d.sync += [out.valid.eq(1), out.payload.col.eq(base_col + col)]
            m.d.sync += [out.payload.o[t].eq(pv - cv[t]) for t in range(T)]
            with m.If(last_col):
                m.d.sync += td.eq(td + 1)
        drained_tile = drain_step & last_col
        base_next = Signal.like(base_col)
        col_inc, base_inc = Signal.like(col), Signal.like(base_col)
        m.d.comb += [col_inc.eq(col + 1), base_inc.eq(base_col + tn),
                     col_next.eq(Mux(self.start | drained_tile, 0, Mux(drain_step, col_inc, col))),
                     base_next.eq(Mux(self.start, 0, Mux(drained_tile, base_inc, base_col)))]

        def is_last(col_is_last, columns_through):
            return col_is_last | (columns_through >= self.n_cols)
        one_col = C(tn == 1, 1)
        next_is_tiles_last = col == tn - 2 if tn >= 2 else C(0, 1)
        # Each case's answer is compared from registers; the drain's step (from the bank flags
        # and the output's ready) only picks one.
        m.d.sync += [col.eq(col_next), base_col.eq(base_next),
                     last_col.eq(Mux(self.start, is_last(one_col, C(1, 1)),
                                     Mux(drained_tile, is_last(one_col, through_tile),
                                         Mux(drain_step, is_last(next_is_tiles_last, through_next),
                                             is_last(col == tn - 1, through_col)))))]
        with m.If(self.start):
            m.d.sync += [through_col.eq(1), through_next.eq(2), through_tile.eq(tn + 1)]
        with m.Elif(drained_tile):
            m.d.sync += [through_col.eq(through_tile), through_next.eq(through_tile + 1),
                         through_tile.eq(through_tile + tn)]
        with m.Elif(drain_step):
            m.d.sync += [through_col.eq(through_next), through_next.eq(through_next + 1)]

        fast_next = Signal.like(fast_ahead)
        m.d.comb += [fast_next.eq(Mux(self.start, 0, fast_ahead + fast_tile - drained_tile)),
                     self.hold_next.eq(fast_next == 2)]
        # The next bank flags, found for a drained tile and for none; the drain's step (from
        # the output's ready) only picks one: it does not run through the count's sum and its
        # zero test into every accumulator's address.
        slow_kept = slow_ahead + slow_tile
        kept_bank = Mux(self.start | (slow_kept == 0), 0, Mux(td[0], 0b10, 0b01))
        left_bank = Mux(self.start | (slow_kept == 1), 0, Mux(td[0], 0b01, 0b10))
        m.d.sync += [slow_ahead.eq(slow_kept - drained_tile), fast_ahead.eq(fast_next),
                     drain_bank.eq(drain_next)]
        m.d.comb += drain_next.eq(Mux(drained_tile, left_bank, kept_bank))

        with m.If(self.start):
            m.d.sync += [tf.eq(0), ts.eq(0), td.eq(0), out.valid.eq(0), slow_ahead.eq(0)]
        return m
