"""The forward pass of a TT conv layer over ``T`` steps: the step datapath map by map, the
currents buffered per position, then the shared LIF neuron over all steps of each neuron."""

from __future__ import annotations

from amaranth import *
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from ...golden.common.lif_params import LIFParams
from ..common.lif import LIFArray
from ..common.memory import buffer
from .step import Path, TTStep

__all__ = ["TTLayer", "MODES_RTL", "LEAK_FRAC"]

#: The ``mode`` register's values (``dense``: the dense 3x3 engine, where the core has one).
MODES_RTL = {"stt": 0, "ptt": 1, "htt": 2, "dense": 3}
#: Fraction bits of the leak factor: ``beta / 256`` (the paper's 0.25 is 64).
LEAK_FRAC = 8


class TTLayer(wiring.Component):
    """``golden.ttsnn.fixed_forward`` in hardware: spikes ``[T, c_in, H, W]`` in, every neuron's
    spike word, final membrane, per-step membranes and per-step currents ``y`` out.

    The ``T`` spike maps arrive one after another on ``i`` (positions in raster order). Map
    ``t`` runs through :class:`TTStep` on the path the ``mode`` register gives it (STT, PTT, or
    HTT: PTT for ``t < htt_full``, then G2/G3 bypassed; dense: the dense 3x3 engine, where
    there is one); the step's currents ``y[t]`` go to a buffer of one row per position (``T``
    lanes of ``c_out`` currents). Map ``t + 1`` enters right after map ``t``'s last position
    (its first row fills the windows while map ``t`` drains); at HTT's path change (map
    ``htt_full``) the late map's ``a1`` queues while G2 and G3 drain the last full map (the
    step's two paths follow the maps of ``a1`` and of ``a3``, each counted; with ``pool``, G2's
    and G3's engines then share G4's and G1's work, :class:`TTStep`). After map
    ``T - 1``, each position's row is read and its ``c_out`` neurons enter the shared
    :class:`LIFArray` (multiplicative leak ``leak_amount / 256``, hard reset, saturating
    ``mem_width`` membrane; a spike where ``H >= threshold``, i.e. the golden ``theta + 1``) with
    its per-step trace; their beats leave on ``o`` in the order position, then channel. Then the
    next ``T`` maps may come.

    Cycles: ``T`` maps of ``H * W`` positions at the step's throughput (plus its pipeline depth
    once), then ``H * W * (c_out + 1)`` for the neuron pass (one neuron per cycle, one
    cycle per position to read its row) and the LIF's latency.

    Ports
    -----
    i : In(stream of ``c_in`` spikes), one position of map ``t``
    o : Out(stream of ``lif_output_layout(T, mem_width, True, True, y_width)``): neuron
        ``(o, h, w)``: spikes, membrane, trace, current
    load : In(stream): the step's weight loads (:class:`TTStep`)
    mode : In(2) (:data:`MODES_RTL`); htt_full : In(range(T + 1))
    shift_o1, shift_z2, shift_z3, shift_y : In(5); threshold : In(mem_width - 1);
    leak_amount : In(8); width, height : In
    busy : Out(1): a layer is in flight
    a1_tap, a2_tap, a3_tap : Out: the step's activation monitors (:class:`TTStep`), map after
        map in raster order
    maps : Out(1): the step datapath's phase (maps in, currents out); issuing : Out(5): the
        engines' MAC rows (:class:`TTStep`)
    """

    def __init__(self, *, c_in: int, rank: int, c_out: int, T: int, max_width: int,
                 max_height: int, lanes=(1, 1, 1, 1), ways=(1, 1, 1, 1), dense_lanes: int = 0,
                 dense_ways: int = 1, w_width: int = 8, act_width: int = 16, y_width: int = 16,
                 mem_width: int = 16, pool: bool = False):
        if isinstance(T, bool) or not isinstance(T, int) or not 1 <= T <= 16:
            raise ValueError(f"T must be an integer in 1..16, not {T!r}")
        self.T, self.c_out = T, c_out
        self.step = TTStep(c_in=c_in, rank=rank, c_out=c_out, max_width=max_width,
                           max_height=max_height, lanes=lanes, ways=ways,
                           dense_lanes=dense_lanes, dense_ways=dense_ways, w_width=w_width,
                           act_width=act_width, y_width=y_width, pool=pool)
        self.lif_params = LIFParams(T=T, in_width=y_width, mem_width=mem_width, leak="mul",
                                    leak_frac=LEAK_FRAC, reset="hard", saturate=True,
                                    leak_mul=0, threshold=0)
        self.lif = LIFArray(self.lif_params, trace=True, echo_currents=True)
        step = self.step.signature.members
        super().__init__({
            "i": step["i"], "load": step["load"],
            "o": self.lif.signature.members["o"],
            "mode": In(2), "htt_full": In(range(T + 1)),
            **{f"shift_{n}": step[f"shift_{n}"] for n in ("o1", "z2", "z3", "y")},
            "threshold": In(self.lif_params.threshold_bits),
            "leak_amount": In(LEAK_FRAC),
            "width": step["width"], "height": step["height"],
            "busy": Out(1), "maps": Out(1), "issuing": step["issuing"],
            **{f"a{k}_tap": step[f"a{k}_tap"] for k in (1, 2, 3)},
        })

    def elaborate(self, platform):
        m = Module()
        T, c_out = self.T, self.c_out
        m.submodules.step = step = self.step
        m.submodules.lif = lif = self.lif
        wiring.connect(m, wiring.flipped(self.load), step.load)
        wiring.connect(m, lif.o, wiring.flipped(self.o))
        for name in ("width", "height", "shift_o1", "shift_z2", "shift_z3", "shift_y"):
            m.d.comb += getattr(step, name).eq(getattr(self, name))
        m.d.comb += self.issuing.eq(step.issuing)
        for k in (1, 2, 3):
            wiring.connect(m, getattr(step, f"a{k}_tap"),
                           wiring.flipped(getattr(self, f"a{k}_tap")))
        m.d.comb += [lif.threshold.eq(self.threshold), lif.leak_amount.eq(self.leak_amount),
                     lif.tmask.eq((1 << T) - 1), lif.clear.eq(0)]

        y_layout = step.o.payload.shape()
        positions = step.g2.window.max_width * step.g2.window.max_height
        m.submodules.currents = currents = buffer(shape=T * y_layout.size, depth=positions)
        wr, rd = currents.write_port(granularity=y_layout.size), currents.read_port()

        # Registered: the product is a long path into the map's bookkeeping, and the size holds
        # (from reset, the largest map's).
        total = Signal(range(positions + 1), init=positions)
        m.d.sync += total.eq(self.width * self.height)
        # t_in: the map being fed (T once all are); t: the map whose currents come out.
        t, t_in = Signal(range(T)), Signal(range(T + 1))
        fed, got = Signal(range(positions + 1)), Signal(range(positions + 1))
        # The maps of the a1 leaving G1 and of the a3 entering G4's operand register, counted by
        # position: HTT's path changes at different times on the two sides.
        sides = []
        for name, moved in (("a1", step.a1_tap.valid), ("a3", step.a3_in)):
            t_side = Signal(range(T), name=f"t_{name}")
            n_side = Signal(range(positions + 1), name=f"n_{name}")
            with m.If(moved):
                m.d.sync += n_side.eq(n_side + 1)
                with m.If(n_side + 1 == total):
                    m.d.sync += [n_side.eq(0), t_side.eq(Mux(t_side == T - 1, 0, t_side + 1))]
            sides.append(t_side)
        htt = self.mode == MODES_RTL["htt"]
        with m.Switch(self.mode):
            with m.Case(MODES_RTL["stt"]):
                m.d.comb += [step.path.eq(Path.STT), step.path_a3.eq(Path.STT)]
            with m.Case(MODES_RTL["dense"]):
                m.d.comb += [step.path.eq(Path.DENSE), step.path_a3.eq(Path.DENSE)]
            with m.Default():
                for port, t_side in zip((step.path, step.path_a3), sides):
                    m.d.comb += port.eq(Mux(htt & (t_side >= self.htt_full), Path.BYPASS,
                                            Path.PTT))

        # Currents of map t into lane t of their position's row.
        m.d.comb += [wr.addr.eq(got), wr.data.eq(step.o.payload.as_value().replicate(T)),
                     wr.en.eq(Mux(step.o.valid & step.o.ready, 1 << t, 0))]

        # The neuron pass reads position p's row, which holds while its channels go out.
        p = Signal(range(positions + 1))
        ch = Signal(range(c_out))
        out_left = Signal(range(positions * c_out + 1))
        row = data.View(data.ArrayLayout(y_layout, T), rd.data)
        m.d.comb += rd.addr.eq(p)
        for s in range(T):
            m.d.comb += lif.i.payload.current[s].eq(row[s][ch])

        with m.FSM():
            with m.State("MAPS"):
                feeding = t_in != T
                m.d.comb += [step.o.ready.eq(1),
                             step.i.valid.eq(self.i.valid & feeding),
                             step.i.payload.eq(self.i.payload),
                             self.i.ready.eq(step.i.ready & feeding),
                             self.busy.eq((t_in != 0) | (fed != 0)),
                             self.maps.eq((t_in != 0) | (fed != 0))]
                with m.If(self.i.valid & self.i.ready):
                    m.d.sync += fed.eq(fed + 1)
                    with m.If(fed + 1 == total):
                        m.d.sync += [fed.eq(0), t_in.eq(t_in + 1)]
                with m.If(step.o.valid):
                    m.d.sync += got.eq(got + 1)
                    with m.If(got + 1 == total):
                        # The map's currents are all in: the next map's, or the neurons.
                        m.d.sync += [got.eq(0), t.eq(t + 1)]
                        with m.If(t == T - 1):
                            m.d.sync += [t.eq(0), t_in.eq(0), p.eq(0), ch.eq(0),
                                         out_left.eq(total * c_out)]
                            m.next = "READ"
            with m.State("READ"):
                m.d.comb += self.busy.eq(1)
                m.next = "NEURONS"
            with m.State("NEURONS"):
                m.d.comb += [self.busy.eq(1), lif.i.valid.eq(1)]
                with m.If(lif.i.ready):
                    m.d.sync += ch.eq(Mux(ch == c_out - 1, 0, ch + 1))
                    with m.If(ch == c_out - 1):
                        m.d.sync += p.eq(p + 1)
                        with m.If(p + 1 == total):
                            m.next = "DRAIN"
                        with m.Else():
                            m.next = "READ"
            with m.State("DRAIN"):
                m.d.comb += self.busy.eq(1)
                with m.If(out_left == 0):
                    m.next = "MAPS"
        with m.If(self.o.valid & self.o.ready & (out_left != 0)):
            m.d.sync += out_left.eq(out_left - 1)
        return m
