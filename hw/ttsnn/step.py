"""One time step of a TT conv layer over a map: G1, then G2 and G3 as the pipeline says, then
G4 -- the currents ``y`` its neurons integrate (or, as the baseline, a dense 3x3 conv's)."""

from __future__ import annotations

from amaranth import *
from amaranth.lib import data, enum, stream, wiring
from amaranth.lib.wiring import In, Out

from ..common.streams import StreamFIFO
from .pointwise import AltConv, PointwiseConv, fit_value, half_step
from .window import AxisConv, DenseConv

__all__ = ["TTStep", "Path", "CORES", "DENSE"]

#: The four cores, in the order of the ``load`` port's ``core`` field; then the dense 3x3 weight.
CORES = ("g1", "g2", "g3", "g4")
DENSE = len(CORES)


class Path(enum.Enum, shape=2):
    """The way a step's ``o1`` reaches G4."""
    STT = 0        # a3 = fit(G3 * fit(G2 * a1, z2), z3)
    PTT = 1        # a3 = fit(G2 * a1 + G3 * a1, z3), the two engines side by side
    BYPASS = 2     # a3 = a1: HTT's late steps, G2 and G3 skipped (no cycles spent on them)
    DENSE = 3      # y = fit(W * s, shift_y): the dense 3x3 engine alone (the TT engines idle)


class TTStep(wiring.Component):
    """``y = fit(G4 * a3, shift_y, y_width)`` for every position of one step's spike map, with
    ``a1 = fit(G1 * s, shift_o1, act_width)`` and ``a3`` as :class:`Path` ``path`` says --
    exactly one step of ``golden.ttsnn.fixed_forward`` (its ``y[t]``).

    Four engines in a pipeline: G1 (:class:`PointwiseConv` on spikes, ``lanes[0]`` lanes of
    ``ways[0]`` inputs), G2
    (:class:`AxisConv` along H) and G3 (along W), both giving exact sums that are fitted where
    the path needs (STT: G2's by ``shift_z2`` into G3, G3's by ``shift_z3``; PTT: their sum by
    ``shift_z3``), and G4 (:class:`PointwiseConv`); G3 and G4 take their operands from a
    register. Under PTT both take ``a1``; G3's input passes a FIFO of ``max_width + 4``
    positions, so that G3 runs ahead of G2 (whose window of ``p`` waits for ``p + width``)
    without stalling the fork. G2's input passes one too: at the end of a map G2's window
    emits its last row with no input, and G1 goes on with the next map meanwhile.

    With ``dense_lanes`` > 0 a :class:`DenseConv` (``dense_ways`` inputs a lane) sits beside
    them (weights: ``load`` core :data:`DENSE`, index :meth:`DenseConv.weight_index`);
    ``Path.DENSE`` sends the spikes through it alone, ``y = fit(W * s, shift_y, y_width)``, at its
    :attr:`~DenseConv.cycles_per_position`.

    Two path inputs, as a map's positions may be on two paths at once when the path changes
    (HTT, PTT -> BYPASS): ``path`` routes ``a1`` as it leaves G1 (the path of the map whose
    ``a1`` comes next), ``path_a3`` picks where G4's operand comes from (the path of the map
    whose ``a3`` comes next; :attr:`a3_in` marks each). On BYPASS ``a1`` passes a FIFO of
    ``max_width + 4`` positions, so G1 goes on with the late maps while G2 and G3 drain the
    last full one. STT, PTT and DENSE must not follow another path with a map in flight;
    ``width``, ``height`` and the shifts must hold while a map is in flight (until ``busy``
    falls after its last ``y``; the size set a cycle before its first position). Throughput: a
    position per ``max(cycles_per_position)`` of the engines on the path; latency about a row
    along H (G2) plus the engines' latencies (BYPASS: G1's, the FIFO's and G4's).

    With ``pool``, G2's and G3's multipliers, idle on BYPASS maps, take part of G1's and G4's
    work there: G3's engine also holds G1's weights and G2's G4's (each load of G1 or G4 writes
    both), and while ``path_a3`` is BYPASS (G2 and G3 have finished every full map) the
    positions are shared between G1 and G3's engine, and the ``a3`` of BYPASS maps between G4
    and G2's engine, by speed (of every ``c1 + c3'`` positions G1 takes ``c3'``; ``c3'``,
    ``c2'``: the engines' :attr:`~PointwiseConv.alt_cycles_per_position`); a FIFO of one bit
    per position on each side gives the order in which their results leave. Spikes that
    arrive while ``path_a3`` is BYPASS must be of BYPASS maps. A BYPASS position then costs,
    in steady state, about ``max(c1 c3' / (c1 + c3'), c4 c2' / (c4 + c2'))`` cycles.

    Ports
    -----
    i : In(stream of ``c_in`` spikes); o : Out(stream of ``c_out`` currents ``signed(y_width)``)
    load : In(stream of {core, index, value}): a weight of core ``CORES[core]`` at the index of
        its engine (``G1``/``G4``: ``o * c_in + i``; ``G2``/``G3``: :meth:`AxisConv.weight_index`;
        :data:`DENSE`: :meth:`DenseConv.weight_index`), always ready; written two cycles after
        its beat
    path, path_a3 : In(Path); width, height : In; shift_o1, shift_z2, shift_z3, shift_y : In(5)
    busy : Out(1): an engine holds a position
    a3_in : Out(1): a position's ``a3`` entered G4's operand register (of the map on
        ``path_a3``)
    issuing : Out(5): engine k (G1..G4, then the dense one) issued a MAC row this cycle
    a1_tap, a2_tap, a3_tap : Out(stream of ``rank`` activations): monitors of ``a1``, ``a2``
        (STT) and ``a3`` (G4's input) for the backward pass -- ``valid`` marks a transfer,
        ``ready`` is ignored
    """

    def __init__(self, *, c_in: int, rank: int, c_out: int, max_width: int, max_height: int,
                 lanes=(1, 1, 1, 1), ways=(1, 1, 1, 1), dense_lanes: int = 0,
                 dense_ways: int = 1, w_width: int = 8, act_width: int = 16, y_width: int = 16,
                 pool: bool = False):
        lanes, ways = tuple(lanes), tuple(ways)
        if len(lanes) != 4:
            raise ValueError(f"lanes must give the lanes of G1, G2, G3, G4, not {lanes!r}")
        if len(ways) != 4:
            raise ValueError(f"ways must give the ways of G1, G2, G3, G4, not {ways!r}")
        if isinstance(dense_lanes, bool) or not isinstance(dense_lanes, int) or dense_lanes < 0:
            raise ValueError(f"dense_lanes must be an integer >= 0, not {dense_lanes!r}")
        if not isinstance(pool, bool):
            raise ValueError(f"pool must be a bool, not {pool!r}")
        self.c_in, self.rank, self.c_out = c_in, rank, c_out
        self.act_width, self.pool = act_width, pool
        axis = dict(c_in=rank, c_out=rank, max_width=max_width, max_height=max_height,
                    w_width=w_width, in_width=act_width, fit=False)
        self.g1 = PointwiseConv(c_in=c_in, c_out=rank, lanes=lanes[0], ways=ways[0],
                                w_width=w_width, spike_input=True, out_width=act_width)
        # With pool, G2's engine also computes G4's convolution and G3's G1's.
        alt_g2 = AltConv(c_in=rank, c_out=c_out, spike_input=False, out_width=y_width)
        alt_g3 = AltConv(c_in=c_in, c_out=rank, spike_input=True, out_width=act_width)
        self.g2 = AxisConv(lanes=lanes[1], ways=ways[1], axis="h", **axis,
                           alt=alt_g2 if pool else None)
        self.g3 = AxisConv(lanes=lanes[2], ways=ways[2], axis="w", **axis,
                           alt=alt_g3 if pool else None)
        self.g4 = PointwiseConv(c_in=rank, c_out=c_out, lanes=lanes[3], ways=ways[3],
                                w_width=w_width, spike_input=False, in_width=act_width,
                                out_width=y_width)
        self.dense = (DenseConv(c_in=c_in, c_out=c_out, lanes=dense_lanes, ways=dense_ways,
                                max_width=max_width, max_height=max_height, w_width=w_width,
                                out_width=y_width)
                      if dense_lanes else None)
        weights = max(rank * c_in, 3 * rank * rank, c_out * rank,
                      9 * c_in * c_out if dense_lanes else 0)
        g1 = self.g1.signature.members
        super().__init__({
            "i": g1["i"],
            "o": self.g4.signature.members["o"],
            "load": In(stream.Signature(data.StructLayout({
                "core": range(len(CORES) + 1), "index": range(weights),
                "value": signed(w_width)}))),
            "path": In(Path), "path_a3": In(Path),
            "width": In(range(1, max_width + 1)),
            "height": In(range(1, max_height + 1)),
            **{f"shift_{name}": In(5) for name in ("o1", "z2", "z3", "y")},
            "busy": Out(1), "a3_in": Out(1),
            "issuing": Out(5),
            **{f"a{k}_tap": Out(stream.Signature(data.ArrayLayout(signed(act_width), rank)))
               for k in (1, 2, 3)},
        })

    def elaborate(self, platform):
        m = Module()
        g1, g2, g3, g4 = self.g1, self.g2, self.g3, self.g4
        # Weight beats pass a register before the engines: their write addresses come from
        # divisions of the index, and the beats from the backward unit's SGD pass.
        load = Signal.like(self.load.payload)
        load_valid = Signal()
        m.d.sync += [load.eq(self.load.payload), load_valid.eq(self.load.valid)]

        def feed(port, core):
            return [port.valid.eq(load_valid & (load.core == core)),
                    port.payload.index.eq(load.index), port.payload.value.eq(load.value)]
        for name, engine in zip(CORES, (g1, g2, g3, g4)):
            m.submodules[name] = engine
            m.d.comb += feed(engine.load, CORES.index(name))
        if self.pool:
            m.d.comb += [*feed(g3.alt_load, CORES.index("g1")),
                         *feed(g2.alt_load, CORES.index("g4")),
                         g3.alt_shift.eq(self.shift_o1), g2.alt_shift.eq(self.shift_y)]
        m.d.comb += self.load.ready.eq(1)      # every engine takes a weight in any cycle
        for axis in (g2, g3):
            m.d.comb += [axis.width.eq(self.width), axis.height.eq(self.height)]
        m.d.comb += [g1.shift.eq(self.shift_o1), g4.shift.eq(self.shift_y)]
        # (Without a dense engine, Path.DENSE runs as BYPASS: no way to hang a map.)
        dense = (self.path == Path.DENSE) if self.dense is not None else C(0)
        a3_bypass = Signal()         # G4's operand register holds a BYPASS map's a3

        def pooled(name, engine, helper, shared):
            """``(i, o)``: streams into ``engine``'s input and out of its output; with ``pool``,
            through the positions' order while ``shared`` lets ``helper`` (whose ``alt_i`` /
            ``alt_o`` compute the same convolution) take its share."""
            if not self.pool:
                return engine.i, engine.o
            src = stream.Signature(engine.i.payload.shape()).create(path=(f"{name}_i",))
            out = stream.Signature(engine.o.payload.shape()).create(path=(f"{name}_o",))
            m.submodules[f"{name}_order"] = order = StreamFIFO(unsigned(1), 8)
            # Shares by speed: of every c + c' positions the engine (c cycles a position) takes
            # c' and the helper (c') c, so that both finish theirs together -- the helper when
            # the credit has reached c' (it gains c per position the engine takes).
            c, c_helper = engine.cycles_per_position, helper.engine.alt_cycles_per_position
            credit = Signal(range(c + c_helper), name=f"{name}_credit")
            to_helper = shared & (credit >= c_helper)
            target_ready = Mux(to_helper, helper.alt_i.ready, engine.i.ready)
            m.d.comb += [engine.i.payload.eq(src.payload), helper.alt_i.payload.eq(src.payload),
                         engine.i.valid.eq(src.valid & order.i.ready & ~to_helper),
                         helper.alt_i.valid.eq(src.valid & order.i.ready & to_helper),
                         src.ready.eq(order.i.ready & target_ready),
                         order.i.valid.eq(src.valid & target_ready),
                         order.i.payload.eq(to_helper)]
            with m.If(src.valid & src.ready & shared):
                m.d.sync += credit.eq(Mux(to_helper, credit - c_helper, credit + c))
            head = order.o.payload
            m.d.comb += [out.valid.eq(order.o.valid & Mux(head, helper.alt_o.valid,
                                                          engine.o.valid)),
                         out.payload.eq(Mux(head, helper.alt_o.payload, engine.o.payload)),
                         engine.o.ready.eq(out.ready & order.o.valid & ~head),
                         helper.alt_o.ready.eq(out.ready & order.o.valid & head),
                         order.o.ready.eq(out.valid & out.ready)]
            return src, out

        # G3 has finished its full maps once G4's operands are BYPASS ones; G2, once the
        # register holds one.
        g1_i, a1 = pooled("g1", g1, g3, self.path_a3 == Path.BYPASS)
        g4_i, g4_o = pooled("g4", g4, g2, a3_bypass)
        # The spikes go to G1, or to the dense engine; y comes from G4, or from it.
        m.d.comb += [g1_i.payload.eq(self.i.payload), g1_i.valid.eq(self.i.valid & ~dense),
                     self.i.ready.eq(Mux(dense, 0, g1_i.ready)),
                     self.o.payload.eq(g4_o.payload), self.o.valid.eq(g4_o.valid & ~dense),
                     g4_o.ready.eq(self.o.ready & ~dense)]
        dense_busy = C(0)
        if self.dense is not None:
            m.submodules.dense = de = self.dense
            m.d.comb += [*feed(de.load, DENSE),
                         de.width.eq(self.width), de.height.eq(self.height),
                         de.shift.eq(self.shift_y),
                         de.i.payload.eq(self.i.payload), de.i.valid.eq(self.i.valid & dense),
                         de.o.ready.eq(self.o.ready & dense)]
            with m.If(dense):
                m.d.comb += [self.i.ready.eq(de.i.ready), self.o.payload.eq(de.o.payload),
                             self.o.valid.eq(de.o.valid)]
            dense_busy = de.busy

        act = data.ArrayLayout(signed(self.act_width), self.rank)
        m.submodules.g3_queue = queue = StreamFIFO(act, g2.window.max_width + 4)
        wiring.connect(m, queue.o, g3.i)
        m.submodules.g2_queue = g2_in = StreamFIFO(act, g2.window.max_width + 4)
        wiring.connect(m, g2_in.o, g2.i)
        m.submodules.bypass_queue = bypass = StreamFIFO(act, g2.window.max_width + 4)
        # G3's and G4's operands through a register each, holding the exact sums (or a1, which
        # needs no fit): each fit lies between that register and the engine's operand register,
        # apart from the sum and the engines' output multiplexers. A position per
        # cycles_per_position leaves a register's half rate unfelt.
        raw = len(g2.o.payload[0])
        m.submodules.a2_reg = a2 = StreamFIFO(data.ArrayLayout(signed(raw), self.rank), 1)
        m.submodules.a3_reg = a3 = StreamFIFO(data.ArrayLayout(signed(raw + 1), self.rank), 1)
        stt = self.path == Path.STT
        half_z2 = half_step(m, self.shift_z2, "half_z2")
        half_z3 = half_step(m, self.shift_z3, "half_z3")

        def fitted(sums, shift, half, name):
            return Cat(*[fit_value(m, sums[k], shift, self.act_width, f"{name}{k}", half)
                         for k in range(self.rank)])

        def narrow(values):
            return Cat(*[values[k][:self.act_width] for k in range(self.rank)])

        def widen(target, values):
            return [target[k].eq(values[k]) for k in range(self.rank)]

        # a2 -> G3's queue: fitted by shift_z2 under STT; a1 as it is under PTT.
        a2_out = Mux(stt, fitted(a2.o.payload, self.shift_z2, half_z2, "fit_z2_"),
                     narrow(a2.o.payload))
        m.d.comb += [queue.i.valid.eq(a2.o.valid), queue.i.payload.eq(a2_out),
                     a2.o.ready.eq(queue.i.ready)]
        # a3 -> G4: fitted by shift_z3 (G3's sums, or G2's and G3's); a1 as it is on BYPASS --
        # as the path was when it entered (the register may hold a full map's last a3 while
        # path_a3 is already BYPASS).
        with m.If(a3.i.valid & a3.i.ready):
            m.d.sync += a3_bypass.eq(self.path_a3 == Path.BYPASS)
        m.d.comb += self.a3_in.eq(a3.i.valid & a3.i.ready)
        a3_out = Mux(a3_bypass, narrow(a3.o.payload),
                     fitted(a3.o.payload, self.shift_z3, half_z3, "fit_z3_"))
        m.d.comb += [g4_i.valid.eq(a3.o.valid), g4_i.payload.eq(a3_out),
                     a3.o.ready.eq(g4_i.ready)]

        ptt_sum = [g2.o.payload[k] + g3.o.payload[k] for k in range(self.rank)]
        sent_g2, sent_queue = Signal(), Signal()         # the fork's outputs already served

        # Where a1 goes.
        with m.Switch(self.path):
            with m.Case(Path.STT):
                m.d.comb += [g2_in.i.valid.eq(a1.valid), g2_in.i.payload.eq(a1.payload),
                             a1.ready.eq(g2_in.i.ready)]
            with m.Case(Path.PTT):
                # Eager fork: each side takes a1 once; a1 leaves when both have it.
                take_g2 = g2_in.i.ready | sent_g2
                take_queue = a2.i.ready | sent_queue
                m.d.comb += [g2_in.i.valid.eq(a1.valid & ~sent_g2),
                             g2_in.i.payload.eq(a1.payload),
                             a2.i.valid.eq(a1.valid & ~sent_queue),
                             *widen(a2.i.payload, a1.payload),
                             a1.ready.eq(take_g2 & take_queue)]
                with m.If(a1.valid & take_g2 & take_queue):
                    m.d.sync += [sent_g2.eq(0), sent_queue.eq(0)]
                with m.Else():
                    m.d.sync += [sent_g2.eq(sent_g2 | (a1.valid & g2_in.i.ready)),
                                 sent_queue.eq(sent_queue | (a1.valid & a2.i.ready))]
            with m.Default():
                m.d.comb += [bypass.i.valid.eq(a1.valid), bypass.i.payload.eq(a1.payload),
                             a1.ready.eq(bypass.i.ready)]
        # Where a3 comes from.
        with m.Switch(self.path_a3):
            with m.Case(Path.STT):
                m.d.comb += [a2.i.valid.eq(g2.o.valid), *widen(a2.i.payload, g2.o.payload),
                             g2.o.ready.eq(a2.i.ready),
                             a3.i.valid.eq(g3.o.valid), *widen(a3.i.payload, g3.o.payload),
                             g3.o.ready.eq(a3.i.ready)]
            with m.Case(Path.PTT):
                both = g2.o.valid & g3.o.valid
                m.d.comb += [a3.i.valid.eq(both), *widen(a3.i.payload, ptt_sum),
                             g2.o.ready.eq(both & a3.i.ready), g3.o.ready.eq(both & a3.i.ready)]
            with m.Default():
                m.d.comb += [a3.i.valid.eq(bypass.o.valid),
                             *widen(a3.i.payload, bypass.o.payload),
                             bypass.o.ready.eq(a3.i.ready)]
        for tap, src, payload in ((self.a1_tap, a1, a1.payload), (self.a3_tap, g4_i, g4_i.payload),
                                  (self.a2_tap, a2.o, queue.i.payload)):
            m.d.comb += [tap.valid.eq(src.valid & src.ready), tap.payload.eq(payload)]
        with m.If(self.path != Path.STT):
            m.d.comb += self.a2_tap.valid.eq(0)       # the queue carries a1 then
        m.d.comb += self.issuing.eq(Cat(g1.issuing, g2.issuing, g3.issuing, g4.issuing,
                                        self.dense.issuing if self.dense is not None else 0))
        m.d.comb += self.busy.eq(dense_busy | g1.busy | g2.busy | g3.busy | g4.busy
                                 | queue.o.valid | g2_in.o.valid | a2.o.valid | a3.o.valid
                                 | bypass.o.valid
                                 | g2.window.o.valid | g3.window.o.valid)
        return m
