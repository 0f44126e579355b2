"""The 1x1-convolution engine of the TT-SNN datapath: G1 (spike input) and G4 (multi-bit input).

Per position (one pixel of one time step) it computes, exactly as :mod:`snnforge.golden.ttsnn.fixed`::

    out[o] = fit(sum_i G[o, i] * a[i], shift, out_width)     o < c_out, i < c_in
    fit(x, k, w) = saturate((x + (2**k >> 1)) >> k, w)      round half up; k = 0 is exact

G1 sees spikes (``a[i]`` in {0, 1}): each product is an AND of the weight with the spike, no
multiplier. G4 sees signed ``in_width``-bit activations: one multiplier per lane.
"""

from __future__ import annotations

from amaranth import *
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from ...golden.common.lif_params import signed_range
from ..common.memory import buffer

__all__ = ["PointwiseConv", "fit_value", "half_step", "position_cycles"]


def position_cycles(c_in: int, c_out: int, lanes: int, ways: int = 1) -> int:
    """Cycles a :class:`PointwiseConv` of these sizes takes a position, back to back and without
    back-pressure: ``ceil(c_out / lanes) * chunks + max(0, 3 - chunks)``, ``chunks =
    ceil(c_in / ways)`` (its :attr:`~PointwiseConv.cycles_per_position`)."""
    chunks = -(-c_in // ways)
    return -(-c_out // lanes) * chunks + max(0, 3 - chunks)


def half_step(m: Module, shift: Value, name: str) -> Signal:
    """``2**shift >> 1``, registered: the rounding constant of a :func:`fit_value` whose shift is
    a register that holds while values pass (one cycle behind it)."""
    # Wide enough for 2**31 >> 1: a shift past x's width still adds its half (and rounds to 0).
    half = Signal(2 ** len(shift), name=name)
    m.d.sync += half.eq((C(1, len(half) + 1) << shift) >> 1)
    return half


def fit_value(m: Module, x: Value, shift: Value, width: int, name: str,
              half: Value | None = None) -> Signal:
    """``saturate((x + (2**shift >> 1)) >> shift, width)``, ``x`` signed: the golden ``fit``
    (round half up, arithmetic shift, then clamp to a signed ``width``-bit range); ``half``: the
    rounding constant from :func:`half_step` (else computed here)."""
    if half is None:
        half = Signal(max(len(x), 2 ** len(shift)) + 1, name=f"{name}_half")
        m.d.comb += half.eq((C(1, len(half)) << shift) >> 1)
    rounded = Signal(signed(max(len(x), len(half)) + 2), name=f"{name}_rounded")
    m.d.comb += rounded.eq((x + half) >> shift)
    lo, hi = signed_range(width)
    out = Signal(signed(width), name=name)
    with m.If(rounded > hi):
        m.d.comb += out.eq(hi)
    with m.Elif(rounded < lo):
        m.d.comb += out.eq(lo)
    with m.Else():
        m.d.comb += out.eq(rounded)
    return out


class PointwiseConv(wiring.Component):
    """A 1x1 convolution of one position at a time, ``lanes`` output channels by ``ways`` input
    channels per cycle.

    Computes ``o.payload[o] = fit(sum_i G[o, i] * i.payload[i], shift, out_width)`` with exact
    sums (the accumulators are wide enough for any ``c_in`` products) -- or, with ``fit=False``,
    the exact sums themselves (``acc_width`` bits, ``shift`` unused), for a stage that adds two
    engines' sums before fitting (PTT's ``G2 * a1 + G3 * a1``). With ``spike_input``
    each product is ``G[o, i] if a[i] else 0`` (AND + accumulate, no multipliers, the G1 engine);
    otherwise ``a[i]`` is signed ``in_width`` bits and each lane multiplies (the G4 engine). A
    MAC row is ``lanes x ways`` products: each lane adds its ``ways`` products (inputs
    ``k * ways .. k * ways + ways - 1`` of chunk ``k``; past ``c_in``, zero) to its accumulator.

    Weights live in a memory of ``ceil(c_out / lanes) * ceil(c_in / ways)`` rows of ``lanes *
    ways`` weights, written one weight per beat through ``load`` (index ``o * c_in + i``; the
    write lands a cycle after the beat) while no position is in flight.

    Throughput: one position per ``rows + max(0, 3 - chunks)`` cycles without back-pressure,
    ``rows = ceil(c_out / lanes) * chunks``, ``chunks = ceil(c_in / ways)``
    (:attr:`cycles_per_position`): one MAC row per cycle, the next position taken in the cycle
    of the last row (each row's activations travel with it); the read pipeline, the fit and the
    offer of a position overlap the next one's rows (a row whose fit would overwrite an output
    not yet taken waits: with fewer than 3 chunks the next position's first group waits for the
    previous fit). Latency: input beat accepted to output beat offered, ``rows + 3`` cycles.

    Ports
    -----
    i : In(stream of ``c_in`` activations: ``unsigned(1)`` spikes or ``signed(in_width)``)
    o : Out(stream of ``c_out`` values, ``signed(out_width)`` or ``signed(acc_width)``)
    load : In(stream of {index, value}): a weight ``G[o, i]`` (signed ``w_width``); always ready
    shift : In(5): the right shift of ``fit`` (a register of the core: set a cycle before a
        position's first row)
    busy : Out(1): a position is being computed or offered
    issuing : Out(1): a row of ``lanes x ways`` multiply-accumulates issued this cycle
        (utilization)
    """

    def __init__(self, *, c_in: int, c_out: int, lanes: int, ways: int = 1, w_width: int = 8,
                 spike_input: bool = True, in_width: int = 16, out_width: int = 16,
                 fit: bool = True):
        for name, value, lo in (("c_in", c_in, 1), ("c_out", c_out, 1), ("lanes", lanes, 1),
                                ("ways", ways, 1), ("w_width", w_width, 2),
                                ("in_width", in_width, 2), ("out_width", out_width, 2)):
            if isinstance(value, bool) or not isinstance(value, int) or value < lo:
                raise ValueError(f"{name} must be an integer >= {lo}, not {value!r}")
        if lanes > c_out:
            raise ValueError(f"lanes must be at most c_out={c_out}, not {lanes}")
        if ways > c_in:
            raise ValueError(f"ways must be at most c_in={c_in}, not {ways}")
        for name, value in (("spike_input", spike_input), ("fit", fit)):
            if not isinstance(value, bool):
                raise ValueError(f"{name} must be a bool, not {value!r}")
        self.c_in, self.c_out, self.lanes, self.ways = c_in, c_out, lanes, ways
        self.w_width, self.spike_input = w_width, spike_input
        self.in_width = 1 if spike_input else in_width
        self.fit = fit
        self.groups = -(-c_out // lanes)
        self.chunks = -(-c_in // ways)
        self.out_width = out_width if fit else self.acc_width
        in_shape = unsigned(1) if spike_input else signed(in_width)
        super().__init__({
            "i": In(stream.Signature(data.ArrayLayout(in_shape, c_in))),
            "o": Out(stream.Signature(data.ArrayLayout(signed(self.out_width), c_out))),
            "load": In(stream.Signature(data.StructLayout({
                "index": range(c_out * c_in), "value": signed(w_width)}))),
            "shift": In(5),
            "busy": Out(1),
            "issuing": Out(1),
        })

    @property
    def cycles_per_position(self) -> int:
        return position_cycles(self.c_in, self.c_out, self.lanes, self.ways)

    @property
    def acc_width(self) -> int:
        """Exact width of a sum of ``c_in`` products."""
        product = self.w_width + (0 if self.spike_input else self.in_width)
        return product + max(1, (self.c_in - 1).bit_length()) + 1

    def elaborate(self, platform):
        m = Module()
        L, K, W, G = self.lanes, self.ways, self.w_width, self.groups
        chunks, c_in = self.chunks, self.c_in
        m.submodules.weights = weights = buffer(shape=unsigned(L * K * W), depth=G * chunks)

        # Weight loads: index o * c_in + i lands in row (o // lanes) * chunks + i // ways, word
        # (o % lanes) * ways + i % ways -- written the cycle after its beat, the index's
        # divisions by constants registered apart from the memory's write port.
        wr = weights.write_port(granularity=W)
        index = self.load.payload.index
        out_ch, in_ch = index // c_in, index % c_in
        m.d.comb += self.load.ready.eq(1)
        m.d.sync += [wr.addr.eq((out_ch // L) * chunks + in_ch // K),
                     wr.data.eq(self.load.payload.value.as_unsigned().replicate(L * K)),
                     wr.en.eq(Mux(self.load.valid, 1 << ((out_ch % L) * K + in_ch % K), 0))]

        elem = self.i.payload.shape().elem_shape
        # The activations, padded with zeros to whole chunks.
        acts = Signal(data.ArrayLayout(elem, chunks * K))
        group = Signal(range(max(2, G)))     # (a one-value counter would be zero bits wide)
        chan = Signal(range(max(2, chunks)))
        issuing = Signal()
        rd = weights.read_port()
        m.d.comb += rd.addr.eq(group * chunks + chan)

        # The read pipeline: the row addressed in cycle k arrives in cycle k + 1 with these tags.
        # The row's activations are registered with it, so that the next position may replace
        # ``acts`` in the cycle the last row issues.
        p_valid, p_first, p_last = Signal(), Signal(), Signal()
        p_group = Signal.like(group)
        p_act = Signal(data.ArrayLayout(elem, K))
        chunk = acts.as_value().word_select(chan, K * Shape.cast(elem).width)
        m.d.sync += [p_valid.eq(issuing), p_act.eq(chunk), p_first.eq(chan == 0),
                     p_last.eq(chan == chunks - 1), p_group.eq(group)]

        acc = [Signal(signed(self.acc_width), name=f"acc{lane}") for lane in range(L)]
        outs = Signal(data.ArrayLayout(signed(self.out_width), G * L))
        fit_now = Signal()
        fit_group = Signal(range(max(2, G)))
        m.d.sync += [fit_now.eq(p_valid & p_last), fit_group.eq(p_group)]
        half = half_step(m, self.shift, "half") if self.fit else None
        for lane in range(L):
            products = []
            for k in range(K):
                w = rd.data.word_select(lane * K + k, W).as_signed()
                a = p_act[k]
                products.append(Mux(a, w, 0) if self.spike_input else w * a)
            with m.If(p_valid):
                m.d.sync += acc[lane].eq(Mux(p_first, 0, acc[lane]) + sum(products))
            fitted = (fit_value(m, acc[lane], self.shift, self.out_width, f"fit{lane}", half)
                      if self.fit else acc[lane])
            with m.If(fit_now):
                with m.Switch(fit_group):
                    for g in range(G):
                        with m.Case(g):
                            m.d.sync += outs[g * L + lane].eq(fitted)

        m.d.comb += self.o.payload.eq(outs.as_value()[:len(self.o.payload.as_value())])
        # The output side: ``full`` while a finished position waits in ``outs``. A row whose fit
        # writes ``outs`` (a group's last) issues only once no finished position is waiting or
        # about to be (its last fit in the pipeline), or the waiting one leaves this cycle.
        full = Signal()
        finishing = ((p_valid & p_last & (p_group == G - 1))
                     | (fit_now & (fit_group == G - 1)))
        m.d.comb += self.o.valid.eq(full)
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += full.eq(0)
        with m.If(fit_now & (fit_group == G - 1)):
            m.d.sync += full.eq(1)
        free = ~finishing & (~full | self.o.ready)
        with m.FSM():
            with m.State("IDLE"):
                m.d.comb += self.i.ready.eq(1)
                with m.If(self.i.valid):
                    m.d.sync += [acts.as_value().eq(self.i.payload.as_value()), group.eq(0),
                                 chan.eq(0)]
                    m.next = "MAC"
            with m.State("MAC"):
                m.d.comb += self.busy.eq(1)
                with m.If((chan != chunks - 1) | free):
                    m.d.comb += [issuing.eq(1), self.issuing.eq(1)]
                    m.d.sync += chan.eq(Mux(chan == chunks - 1, 0, chan + 1))
                    with m.If(chan == chunks - 1):
                        m.d.sync += group.eq(group + 1)
                        with m.If(group == G - 1):
                            # The last row: the next position now, or wait for one. (Only from
                            # registers: ready must not hang on the consumer's ready.)
                            m.d.comb += self.i.ready.eq(~finishing & ~full)
                            with m.If(self.i.valid & ~finishing & ~full):
                                m.d.sync += [acts.as_value().eq(self.i.payload.as_value()),
                                             group.eq(0)]
                            with m.Else():
                                m.next = "IDLE"
        with m.If(full | p_valid | fit_now):
            m.d.comb += self.busy.eq(1)
        return m
