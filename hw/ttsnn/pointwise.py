"""The 1x1-convolution engine of the TT-SNN datapath: G1 (spike input) and G4 (multi-bit input).

Per position (one pixel of one time step) it computes, exactly as :mod:`snnforge.golden.ttsnn.fixed`::

    out[o] = fit(sum_i G[o, i] * a[i], shift, out_width)     o < c_out, i < c_in
    fit(x, k, w) = saturate((x + (2**k >> 1)) >> k, w)      round half up; k = 0 is exact

G1 sees spikes (``a[i]`` in {0, 1}): each product is an AND of the weight with the spike, no
multiplier. G4 sees signed ``in_width``-bit activations: one multiplier per lane.
"""

from __future__ import annotations

from typing import NamedTuple

from amaranth import *
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from ...golden.common.lif_params import signed_range
from ..common.memory import buffer

__all__ = ["PointwiseConv", "AltConv", "fit_value", "half_step", "position_cycles"]


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


class AltConv(NamedTuple):
    """A second 1x1 convolution a :class:`PointwiseConv` computes on its own MACs: ``c_in`` ->
    ``c_out`` channels, spike inputs (AND through the multipliers: a spike is the value 1) or
    the engine's ``in_width``-bit ones, always fitted to ``out_width`` bits."""
    c_in: int
    c_out: int
    spike_input: bool
    out_width: int


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

    With ``alt`` (an :class:`AltConv`; multi-bit engines only) the same lanes also compute a
    second convolution, position by position: a position taken from ``alt_i`` (when ``i`` offers
    none) runs on its own weights (``alt_load``, its own index order ``o * alt.c_in + i``, in
    rows after the engine's) and leaves fitted by ``alt_shift`` on ``alt_o``, at
    :attr:`alt_cycles_per_position`. TT-SNN's HTT lends G2's and G3's multipliers to G4's and
    G1's work this way on its late steps, where G2 and G3 have none of their own.

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
    alt_i, alt_o, alt_load, alt_shift : as ``i``, ``o``, ``load``, ``shift``, for ``alt``'s
        convolution (``alt_load`` is ready while ``load`` is not valid)
    """

    def __init__(self, *, c_in: int, c_out: int, lanes: int, ways: int = 1, w_width: int = 8,
                 spike_input: bool = True, in_width: int = 16, out_width: int = 16,
                 fit: bool = True, alt: AltConv | None = None):
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
        if alt is not None:
            if not isinstance(alt, AltConv):
                raise ValueError(f"alt must be an AltConv or None, not {alt!r}")
            if spike_input:
                raise ValueError("alt needs a multi-bit engine (spike_input=False)")
            for name, lo in (("c_in", 1), ("c_out", 1), ("out_width", 2)):
                value = getattr(alt, name)
                if isinstance(value, bool) or not isinstance(value, int) or value < lo:
                    raise ValueError(f"alt.{name} must be an integer >= {lo}, not {value!r}")
        self.alt = alt
        self.c_in, self.c_out, self.lanes, self.ways = c_in, c_out, lanes, ways
        self.w_width, self.spike_input = w_width, spike_input
        self.in_width = 1 if spike_input else in_width
        self.fit = fit
        self.groups = -(-c_out // lanes)
        self.chunks = -(-c_in // ways)
        self.out_width = out_width if fit else self._sum_width(c_in)
        in_shape = unsigned(1) if spike_input else signed(in_width)

        def ports(prefix, c_in, c_out, in_shape, out_width):
            return {
                f"{prefix}i": In(stream.Signature(data.ArrayLayout(in_shape, c_in))),
                f"{prefix}o": Out(stream.Signature(data.ArrayLayout(signed(out_width), c_out))),
                f"{prefix}load": In(stream.Signature(data.StructLayout({
                    "index": range(c_out * c_in), "value": signed(w_width)}))),
                f"{prefix}shift": In(5)}
        alt_ports = {} if alt is None else ports(
            "alt_", alt.c_in, alt.c_out, unsigned(1) if alt.spike_input else signed(in_width),
            alt.out_width)
        super().__init__({
            **ports("", c_in, c_out, in_shape, self.out_width),
            "busy": Out(1),
            "issuing": Out(1),
            **alt_ports,
        })

    @property
    def cycles_per_position(self) -> int:
        return position_cycles(self.c_in, self.c_out, self.lanes, self.ways)

    @property
    def alt_cycles_per_position(self) -> int:
        """:attr:`cycles_per_position` of ``alt``'s convolution."""
        return position_cycles(self.alt.c_in, self.alt.c_out, self.lanes, self.ways)

    def _sum_width(self, terms: int) -> int:
        """Exact width of a sum of ``terms`` products."""
        product = self.w_width + (0 if self.spike_input else self.in_width)
        return product + max(1, (terms - 1).bit_length()) + 1

    @property
    def acc_width(self) -> int:
        """The accumulators' width: exact for ``c_in`` products (and ``alt.c_in``)."""
        return self._sum_width(max(self.c_in, self.alt.c_in if self.alt else 1))

    def elaborate(self, platform):
        m = Module()
        L, K, W = self.lanes, self.ways, self.w_width
        alt = self.alt
        # Per convolution (the engine's, then alt's): groups, chunks, first weight row.
        shapes = [(self.groups, self.chunks, 0)]
        if alt is not None:
            shapes.append((-(-alt.c_out // L), -(-alt.c_in // K), self.groups * self.chunks))
        G = max(groups for groups, _, _ in shapes)
        chunks = max(chunks for _, chunks, _ in shapes)
        m.submodules.weights = weights = buffer(
            shape=unsigned(L * K * W), depth=sum(groups * chunks for groups, chunks, _ in shapes))

        # Weight loads: index o * c_in + i lands in row (o // lanes) * chunks + i // ways, word
        # (o % lanes) * ways + i % ways -- written the cycle after its beat, the index's
        # divisions by constants registered apart from the memory's write port.
        wr = weights.write_port(granularity=W)
        m.d.comb += self.load.ready.eq(1)
        m.d.sync += wr.en.eq(0)
        loads = [(self.load, self.c_in, shapes[0])]
        if alt is not None:
            m.d.comb += self.alt_load.ready.eq(~self.load.valid)
            loads.append((self.alt_load, alt.c_in, shapes[1]))
        for load, c_in, (_, n_chunks, base) in reversed(loads):     # the engine's first
            out_ch, in_ch = load.payload.index // c_in, load.payload.index % c_in
            with m.If(load.valid):
                m.d.sync += [wr.addr.eq(base + (out_ch // L) * n_chunks + in_ch // K),
                             wr.data.eq(load.payload.value.as_unsigned().replicate(L * K)),
                             wr.en.eq(1 << ((out_ch % L) * K + in_ch % K))]

        elem = self.i.payload.shape().elem_shape
        # The activations, padded with zeros to whole chunks; ``is_alt``: they are alt's.
        acts = Signal(data.ArrayLayout(elem, chunks * K))
        is_alt = Signal()
        group = Signal(range(max(2, G)))     # (a one-value counter would be zero bits wide)
        chan = Signal(range(max(2, chunks)))
        issuing = Signal()
        rd = weights.read_port()

        def pick(flag, values):
            """The engine's value, or alt's where ``flag`` says."""
            return values[0] if alt is None else Mux(flag, values[1], values[0])

        last_chan = pick(is_alt, [chan == n - 1 for _, n, _ in shapes])
        last_group = pick(is_alt, [group == g - 1 for g, _, _ in shapes])
        m.d.comb += rd.addr.eq(pick(is_alt, [base + group * n + chan for _, n, base in shapes]))

        # The read pipeline: the row addressed in cycle k arrives in cycle k + 1 with these tags.
        # The row's activations are registered with it, so that the next position may replace
        # ``acts`` in the cycle the last row issues.
        p_valid, p_first, p_last, p_end, p_alt = Signal(), Signal(), Signal(), Signal(), Signal()
        p_group = Signal.like(group)
        p_act = Signal(data.ArrayLayout(elem, K))
        chunk = acts.as_value().word_select(chan, K * Shape.cast(elem).width)
        m.d.sync += [p_valid.eq(issuing), p_act.eq(chunk), p_first.eq(chan == 0),
                     p_last.eq(last_chan), p_end.eq(last_chan & last_group), p_group.eq(group),
                     p_alt.eq(is_alt)]

        acc = [Signal(signed(self.acc_width), name=f"acc{lane}") for lane in range(L)]
        outs_width = max(self.out_width, alt.out_width if alt else 0)
        outs = Signal(data.ArrayLayout(signed(outs_width), G * L))
        outs_alt = Signal()                  # the position in ``outs`` is alt's
        fit_now, fit_end, fit_alt = Signal(), Signal(), Signal()
        fit_group = Signal(range(max(2, G)))
        m.d.sync += [fit_now.eq(p_valid & p_last), fit_end.eq(p_valid & p_end),
                     fit_group.eq(p_group), fit_alt.eq(p_alt)]
        half = half_step(m, self.shift, "half") if self.fit else None
        alt_half = half_step(m, self.alt_shift, "alt_half") if alt else None
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
            if alt is not None:
                fitted = Mux(fit_alt, fit_value(m, acc[lane], self.alt_shift, alt.out_width,
                                                f"alt_fit{lane}", alt_half), fitted)
            with m.If(fit_now):
                with m.Switch(fit_group):
                    for g in range(G):
                        with m.Case(g):
                            m.d.sync += outs[g * L + lane].eq(fitted)

        # The output side: ``full`` while a finished position waits in ``outs``. A row whose fit
        # writes ``outs`` (a group's last) issues only once no finished position is waiting or
        # about to be (its last fit in the pipeline), or the waiting one leaves this cycle.
        outputs = [(self.o, self.c_out, C(1))]
        if alt is not None:
            outputs = [(self.o, self.c_out, ~outs_alt), (self.alt_o, alt.c_out, outs_alt)]
        full = Signal()
        leaving = Signal()
        for port, c_out, mine in outputs:
            m.d.comb += [port.valid.eq(full & mine),
                         *[port.payload[k].eq(outs[k]) for k in range(c_out)]]
            with m.If(port.valid & port.ready):
                m.d.comb += leaving.eq(1)
        finishing = (p_valid & p_end) | fit_end
        with m.If(leaving):
            m.d.sync += full.eq(0)
        with m.If(fit_end):
            m.d.sync += [full.eq(1), outs_alt.eq(fit_alt)]
        free = ~finishing & (~full | pick(outs_alt, [port.ready for port, _, _ in outputs]))

        def take(ready):
            """Take the next position (the engine's, else alt's) where ``ready``; the engine's
            ``i`` comes first, so alt's only fill cycles it leaves idle."""
            m.d.comb += self.i.ready.eq(ready)
            taken = self.i.valid
            if alt is not None:
                m.d.comb += self.alt_i.ready.eq(ready & ~self.i.valid)
                taken = self.i.valid | self.alt_i.valid
                alt_acts = Signal(data.ArrayLayout(elem, alt.c_in))
                m.d.comb += [alt_acts[k].eq(self.alt_i.payload[k]) for k in range(alt.c_in)]
                with m.If(ready & ~self.i.valid):
                    m.d.sync += [acts.as_value().eq(alt_acts.as_value()), is_alt.eq(1)]
            with m.If(ready & self.i.valid):
                m.d.sync += [acts.as_value().eq(self.i.payload.as_value()), is_alt.eq(0)]
            with m.If(ready & taken):
                m.d.sync += [group.eq(0), chan.eq(0)]
            return ready & taken

        with m.FSM():
            with m.State("IDLE"):
                with m.If(take(1)):
                    m.next = "MAC"
            with m.State("MAC"):
                m.d.comb += self.busy.eq(1)
                with m.If(~last_chan | free):
                    m.d.comb += [issuing.eq(1), self.issuing.eq(1)]
                    m.d.sync += chan.eq(Mux(last_chan, 0, chan + 1))
                    with m.If(last_chan):
                        m.d.sync += group.eq(group + 1)
                        with m.If(last_group):
                            # The last row: the next position now, or wait for one. (Only from
                            # registers: ready must not hang on the consumer's ready.)
                            with m.If(~take(~finishing & ~full)):
                                m.next = "IDLE"
        with m.If(full | p_valid | fit_now):
            m.d.comb += self.busy.eq(1)
        return m
