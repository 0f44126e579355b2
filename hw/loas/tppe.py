"""Temporal-parallel processing element: pseudo + T correction accumulators, output-stationary."""

from __future__ import annotations

from amaranth import *
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .config import LoASConfig, buffer
from .inner_join import fast_layout

__all__ = ["TPPE"]


class TPPE(wiring.Component):
    """The accumulators of one PE for ``tile_n`` output columns, double-buffered by tile parity.

    * **Fast path** (``fast``, from the inner join): every matched weight is added at once to the
      pseudo accumulator of its column, as if the neuron had fired at every step.
    * **Slow path** (``matches``, FIFO-mp/FIFO-B): the neuron's T-bit word is read
      (``word_addr``/``word_en``/``word_data``, one-cycle latency) and the weight is added to
      correction accumulator ``t`` of the column for every step ``t`` the neuron did *not* fire.
    * **Drain**: once the slow path has passed a tile's marker, ``O[t] = pseudo - corr[t]`` of each
      column of that tile leaves on ``currents`` in column order, and the tile's bank is free again.

    Accumulators are ``cfg.tppe_width`` bits and wrap: the difference ``O[t]`` is exact because
    ``|O[t]| <= 128 * k_max`` fits. Per-entry valid bits replace clearing: the first update of a
    column in a tile starts from 0. While the fast path would start a tile whose bank is still
    draining, ``hold`` stalls the inner join.

    Throughput: one match per cycle on each path; the drain emits one column per cycle.

    Members
    -------
    fast : In(fast_layout(cfg))
    hold : Out(1)
    matches : In(stream.Signature(cfg.match_layout))
    word_addr : Out(range(cfg.k_max)); word_en : Out(1); word_data : In(cfg.T)
    currents : Out(stream.Signature(cfg.currents_layout))
    n_cols : In(range(cfg.n_max + 1))  columns in this run
    start : In(1)                       pulse: new run
    tiles_done : Out(range(cfg.tiles_max + 1))
    """

    def __init__(self, cfg: LoASConfig):
        self.cfg = cfg
        super().__init__({
            "fast": In(fast_layout(cfg)),
            "hold": Out(1),
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
        depth = 2 * tn
        col_bits = (tn - 1).bit_length()

        def addr(bank, col):
            # Bank b (tile parity) holds entries b*tn .. b*tn + tn - 1.
            return Mux(bank, tn + col, col) if tn & (tn - 1) else Cat(col[:col_bits], bank)

        m.submodules.pseudo = pseudo = buffer(shape=signed(aw), depth=depth, init=[])
        m.submodules.corr = corr = buffer(shape=data.ArrayLayout(signed(aw), T),
                                                 depth=depth, init=[])
        p_wr, p_rmw, p_drain = pseudo.write_port(), pseudo.read_port(domain="comb"), \
            pseudo.read_port(domain="comb")
        c_wr, c_rmw, c_drain = corr.write_port(), corr.read_port(domain="comb"), \
            corr.read_port(domain="comb")
        p_valid = Signal(depth)
        c_valid = Signal(depth)

        tf = Signal(range(cfg.tiles_max + 2))   # tile of the fast path
        ts = Signal(range(cfg.tiles_max + 2))   # tile of the slow path
        td = self.tiles_done                    # tile being drained / tiles drained

        # -- fast path: pseudo accumulator -------------------------------------------------------
        m.d.comb += self.hold.eq(tf >= td + 2)
        fast = self.fast
        fa = Signal(range(depth))
        m.d.comb += [fa.eq(addr(tf[0], fast.n)), p_rmw.addr.eq(fa),
                     p_wr.addr.eq(fa),
                     p_wr.data.eq(Mux(p_valid.bit_select(fa, 1), p_rmw.data, 0) + fast.weight)]
        with m.If(fast.valid):
            with m.If(fast.marker):
                m.d.sync += tf.eq(tf + 1)
            with m.Else():
                m.d.comb += p_wr.en.eq(1)
                m.d.sync += p_valid.bit_select(fa, 1).eq(1)

        # -- slow path: word fetch, then corrections -----------------------------------------------
        m.d.comb += [
            self.matches.ready.eq(1),          # the slow path never stalls
            self.word_addr.eq(self.matches.payload.a_addr),
            self.word_en.eq(1),
        ]
        slow = Signal(data.StructLayout({"valid": 1, "marker": 1, "n": range(max(2, tn)),
                                         "weight": signed(8)}))
        m.d.sync += [
            slow.valid.eq(self.matches.valid),
            slow.marker.eq(self.matches.payload.marker),
            slow.n.eq(self.matches.payload.n),
            slow.weight.eq(self.matches.payload.weight),
        ]
        sa = Signal(range(depth))
        m.d.comb += [sa.eq(addr(ts[0], slow.n)), c_rmw.addr.eq(sa), c_wr.addr.eq(sa)]
        old = Mux(c_valid.bit_select(sa, 1), c_rmw.data.as_value(), 0)
        old_view = data.View(data.ArrayLayout(signed(aw), T), old)
        for t in range(T):
            m.d.comb += c_wr.data[t].eq(
                old_view[t] + Mux(self.word_data[t], 0, slow.weight))
        with m.If(slow.valid):
            with m.If(slow.marker):
                m.d.sync += ts.eq(ts + 1)
            with m.Else():
                m.d.comb += c_wr.en.eq(1)
                m.d.sync += c_valid.bit_select(sa, 1).eq(1)

        # -- drain -------------------------------------------------------------------------------
        col = Signal(range(max(2, tn)))
        base_col = Signal(range(cfg.n_max + cfg.tile_n + 1))     # td * tile_n
        last_col = Signal()
        m.d.comb += last_col.eq((col == tn - 1) | (base_col + col + 1 >= self.n_cols))
        draining = ts > td
        da = Signal(range(depth))
        m.d.comb += [da.eq(addr(td[0], col)), p_drain.addr.eq(da), c_drain.addr.eq(da)]
        out = self.currents
        with m.If(out.valid & out.ready):
            m.d.sync += out.valid.eq(0)
        with m.If(draining & (~out.valid | out.ready)):
            pv = Mux(p_valid.bit_select(da, 1), p_drain.data, 0)
            cv = Mux(c_valid.bit_select(da, 1), c_drain.data.as_value(), 0)
            cview = data.View(data.ArrayLayout(signed(aw), T), cv)
            m.d.sync += [out.valid.eq(1), out.payload.col.eq(base_col + col)]
            m.d.sync += [out.payload.o[t].eq(pv - cview[t]) for t in range(T)]
            with m.If(last_col):
                m.d.sync += [col.eq(0), td.eq(td + 1), base_col.eq(base_col + tn)]
                # The bank is free: forget its entries (the other bank may be written meanwhile).
                with m.If(td[0]):
                    m.d.sync += [p_valid[tn:].eq(0), c_valid[tn:].eq(0)]
                with m.Else():
                    m.d.sync += [p_valid[:tn].eq(0), c_valid[:tn].eq(0)]
            with m.Else():
                m.d.sync += col.eq(col + 1)

        with m.If(self.start):
            m.d.sync += [tf.eq(0), ts.eq(0), td.eq(0), col.eq(0), base_col.eq(0),
                         p_valid.eq(0), c_valid.eq(0), out.valid.eq(0)]
        return m
