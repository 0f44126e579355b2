"""The taps of G2's 3x1 (along H) and G3's 1x3 (along W) convolutions: a line buffer that turns a
map's positions into three-position windows, zero beyond the map's edges; and the dense 3x3
convolution (both windows in a row), the baseline TT is measured against."""

from __future__ import annotations

from amaranth import *
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from ..common.memory import buffer
from .pointwise import AltConv, PointwiseConv

__all__ = ["AxisWindow", "AxisConv", "DenseConv", "AXES"]

AXES = ("h", "w")


class AxisWindow(wiring.Component):
    """Three taps along one axis of a ``height x width`` map of ``c_in``-channel positions.

    Positions come in raster order (row by row, ``w`` fastest). For each position ``p`` it emits,
    in the same order, ``[a[p - step], a[p], a[p + step]]`` (``3 * c_in`` values, tap ``k`` holding
    ``a[p + (k - 1) * step]``) with ``step = 1`` along W (``axis="w"``) or ``width`` along H
    (``axis="h"``), and zeros where that neighbour is outside the map (zero padding): exactly
    the operand of ``golden.ttsnn.kw_conv`` / ``kh_conv``, so that G3 / G2 is a
    :class:`~snnforge.hw.ttsnn.pointwise.PointwiseConv` of ``3 * c_in`` inputs behind it.

    The last ``step`` positions of a map are emitted after its last input (their ``p + step`` is
    past the end); the next map may start right after. Along H the line buffer holds two rows
    (``2 * max_width`` positions, block RAM); along W, two positions.

    Throughput: a position per 3 cycles (take, read the line buffer, offer). Latency: ``step``
    positions (the window of ``p`` needs ``p + step``) plus 2 cycles.

    Ports
    -----
    i : In(stream of ``c_in`` values of ``shape``)
    o : Out(stream of ``3 * c_in`` values of ``shape``)
    width : In(range(1, max_width + 1)), height : In(range(1, max_height + 1)): the map's size,
        held while a map is in flight and set a cycle before its first position
    """

    def __init__(self, *, c_in: int, shape, axis: str, max_width: int, max_height: int):
        for name, value in (("c_in", c_in), ("max_width", max_width),
                            ("max_height", max_height)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, not {value!r}")
        if axis not in AXES:
            raise ValueError(f"axis must be one of {', '.join(AXES)}, not {axis!r}")
        self.c_in, self.axis, self.shape = c_in, axis, Shape.cast(shape)
        self.max_width, self.max_height = max_width, max_height
        super().__init__({
            "i": In(stream.Signature(data.ArrayLayout(shape, c_in))),
            "o": Out(stream.Signature(data.ArrayLayout(shape, 3 * c_in))),
            "width": In(range(1, max_width + 1)),
            "height": In(range(1, max_height + 1)),
        })

    def elaborate(self, platform):
        m = Module()
        along_h = self.axis == "h"
        vec = data.ArrayLayout(self.shape, self.c_in)
        span = 2 * (self.max_width if along_h else 1)
        m.submodules.line = line = buffer(shape=vec.size, depth=span)
        wr, rd_far, rd_mid = line.write_port(), line.read_port(), line.read_port()

        width, height = self.width, self.height
        step = Signal(range(self.max_width + 1))
        m.d.comb += step.eq(width if along_h else 1)
        # Registered (the size holds while a map runs); from reset the largest map's, never 0:
        # a zero would pass for a map's end.
        total = Signal(range(self.max_width * self.max_height + 1),
                       init=self.max_width * self.max_height)
        m.d.sync += total.eq(width * height)

        # The position taken next: a real one below `total`, then `step` virtual ones.
        q = Signal(range(self.max_width * (self.max_height + 1) + 1))
        slot = Signal(range(span))             # q mod 2 * step: holds a[q - 2 * step]
        h, w = Signal(range(self.max_height)), Signal(range(self.max_width))   # of p = q - step
        cur = Signal(vec)
        zero_far, zero_near = Signal(), Signal()
        m.d.comb += [wr.addr.eq(slot), wr.data.eq(self.i.payload),
                     rd_far.addr.eq(slot),
                     rd_mid.addr.eq(Mux(slot >= step, slot - step, slot + step))]
        if along_h:
            edge_far, edge_near = h == 0, h == height - 1
        else:
            edge_far, edge_near = w == 0, w == width - 1
        taps = Signal(data.ArrayLayout(self.shape, 3 * self.c_in))
        m.d.comb += self.o.payload.eq(taps)
        real = q < total

        with m.FSM():
            with m.State("TAKE"):
                # A real position is written where a[q - 2 * step] was read (read before write).
                m.d.comb += [self.i.ready.eq(real), wr.en.eq(self.i.valid & real)]
                with m.If(~real | self.i.valid):
                    m.d.sync += [cur.eq(Mux(real, self.i.payload, 0)),
                                 zero_far.eq(edge_far), zero_near.eq(edge_near)]
                    m.next = "READ"
            with m.State("READ"):
                far = Mux(zero_far, 0, rd_far.data)
                near = Mux(zero_near, 0, cur.as_value())
                m.d.sync += taps.eq(Cat(far, rd_mid.data, near))
                with m.If(q >= step):
                    m.next = "OFFER"
                with m.Else():
                    m.d.sync += [q.eq(q + 1), slot.eq(Mux(slot + 1 == 2 * step, 0, slot + 1))]
                    m.next = "TAKE"
            with m.State("OFFER"):
                m.d.comb += self.o.valid.eq(1)
                with m.If(self.o.ready):
                    last_w = w == width - 1
                    m.d.sync += [w.eq(Mux(last_w, 0, w + 1)), h.eq(Mux(last_w, h + 1, h)),
                                 q.eq(q + 1), slot.eq(Mux(slot + 1 == 2 * step, 0, slot + 1))]
                    with m.If(q + 1 == total + step):
                        m.d.sync += [q.eq(0), slot.eq(0), h.eq(0), w.eq(0)]
                    m.next = "TAKE"
        return m


class AxisConv(wiring.Component):
    """G2's 3x1 (``axis="h"``) or G3's 1x3 (``axis="w"``) convolution of a map, position by
    position: an :class:`AxisWindow` in front of a :class:`PointwiseConv` of ``3 * c_in`` inputs,
    so ``o[p][o] = fit(sum_{i, k} G[o, i, k] * a[p + (k - 1) * step][i], shift, out_width)``
    (or the exact sums, ``fit=False``) -- ``golden.ttsnn.kh_conv`` / ``kw_conv`` and ``fit``.

    Weights load through ``load`` with index ``(o * 3 + k) * c_in + i`` for ``G[o, i, k]``
    (:meth:`weight_index`). Throughput: a position per the engine's
    :attr:`~PointwiseConv.cycles_per_position` (``ceil(c_out / lanes) * ceil(3 * c_in / ways)``
    and at least 3: the window's three cycles overlap it). Latency: ``step`` positions and the
    engine's latency.

    With ``alt`` (an :class:`~snnforge.hw.ttsnn.pointwise.AltConv`) the engine also takes
    positions of another 1x1 convolution on ``alt_i`` in cycles the window leaves it idle.

    Ports: ``i``, ``width``, ``height`` of the window; ``o``, ``load``, ``shift``, ``busy``,
    ``issuing`` (and ``alt_i``, ``alt_o``, ``alt_load``, ``alt_shift``) of the engine.
    """

    def __init__(self, *, c_in: int, c_out: int, lanes: int, axis: str, max_width: int,
                 max_height: int, ways: int = 1, w_width: int = 8, in_width: int = 16,
                 out_width: int = 16, fit: bool = True, alt: AltConv | None = None):
        self.window = AxisWindow(c_in=c_in, shape=signed(in_width), axis=axis,
                                 max_width=max_width, max_height=max_height)
        self.engine = PointwiseConv(c_in=3 * c_in, c_out=c_out, lanes=lanes, ways=ways,
                                    w_width=w_width, spike_input=False, in_width=in_width,
                                    out_width=out_width, fit=fit, alt=alt)
        self.c_in, self.c_out = c_in, c_out
        win, eng = self.window.signature.members, self.engine.signature.members
        self._alt_ports = ("alt_i", "alt_o", "alt_load", "alt_shift") if alt else ()
        super().__init__({"i": win["i"], "width": win["width"], "height": win["height"],
                          "o": eng["o"], "load": eng["load"], "shift": eng["shift"],
                          "busy": eng["busy"], "issuing": eng["issuing"],
                          **{name: eng[name] for name in self._alt_ports}})

    def weight_index(self, o: int, i: int, k: int) -> int:
        return (o * 3 + k) * self.c_in + i

    @property
    def cycles_per_position(self) -> int:
        return self.engine.cycles_per_position

    def elaborate(self, platform):
        m = Module()
        m.submodules.window = window = self.window
        m.submodules.engine = engine = self.engine
        wiring.connect(m, wiring.flipped(self.i), window.i)
        wiring.connect(m, window.o, engine.i)
        wiring.connect(m, engine.o, wiring.flipped(self.o))
        wiring.connect(m, wiring.flipped(self.load), engine.load)
        m.d.comb += [window.width.eq(self.width), window.height.eq(self.height),
                     engine.shift.eq(self.shift), self.busy.eq(engine.busy),
                     self.issuing.eq(engine.issuing)]
        if self._alt_ports:
            wiring.connect(m, wiring.flipped(self.alt_i), engine.alt_i)
            wiring.connect(m, engine.alt_o, wiring.flipped(self.alt_o))
            wiring.connect(m, wiring.flipped(self.alt_load), engine.alt_load)
            m.d.comb += engine.alt_shift.eq(self.alt_shift)
        return m


class DenseConv(wiring.Component):
    """A dense 3x3 convolution of a spike map (zero padding), ``lanes`` output channels by
    ``ways`` inputs per cycle: ``o[p][o] = fit(sum_{i, kh, kw} W[o, i, kh, kw] * s[h + kh - 1,
    w + kw - 1][i], shift, out_width)`` -- ``golden.ttsnn.fixed_dense_forward``'s currents.

    An :class:`AxisWindow` along W (``3 * c_in`` spikes a position), one along H behind it
    (``9 * c_in``: the position's 3x3 patch, ``(kh * 3 + kw) * c_in + i``) and a spike-input
    :class:`PointwiseConv` of ``9 * c_in`` inputs: AND + accumulate like G1, no multipliers.
    Weights load through ``load`` at :meth:`weight_index`. Throughput: a position per
    ``ceil(c_out / lanes) * ceil(9 * c_in / ways)`` cycles, at least 3
    (:attr:`cycles_per_position`).
    Latency: a row and a position of the windows, plus the engine's (its rows ``+ 3``).

    Ports: ``i`` (``c_in`` spikes), ``width``, ``height`` of the windows; ``o`` (``c_out``
    currents ``signed(out_width)``), ``load``, ``shift``, ``busy``, ``issuing`` of the engine.
    """

    def __init__(self, *, c_in: int, c_out: int, lanes: int, max_width: int, max_height: int,
                 ways: int = 1, w_width: int = 8, out_width: int = 16):
        self.c_in, self.c_out = c_in, c_out
        self.along_w = AxisWindow(c_in=c_in, shape=unsigned(1), axis="w", max_width=max_width,
                                  max_height=max_height)
        self.along_h = AxisWindow(c_in=3 * c_in, shape=unsigned(1), axis="h",
                                  max_width=max_width, max_height=max_height)
        self.engine = PointwiseConv(c_in=9 * c_in, c_out=c_out, lanes=lanes, ways=ways,
                                    w_width=w_width, spike_input=True, out_width=out_width)
        win, eng = self.along_w.signature.members, self.engine.signature.members
        super().__init__({"i": win["i"], "width": win["width"], "height": win["height"],
                          "o": eng["o"], "load": eng["load"], "shift": eng["shift"],
                          "busy": Out(1), "issuing": eng["issuing"]})

    def weight_index(self, o: int, i: int, kh: int, kw: int) -> int:
        return ((o * 3 + kh) * 3 + kw) * self.c_in + i

    @property
    def cycles_per_position(self) -> int:
        return self.engine.cycles_per_position

    def elaborate(self, platform):
        m = Module()
        m.submodules.along_w = along_w = self.along_w
        m.submodules.along_h = along_h = self.along_h
        m.submodules.engine = engine = self.engine
        wiring.connect(m, wiring.flipped(self.i), along_w.i)
        wiring.connect(m, along_w.o, along_h.i)
        wiring.connect(m, along_h.o, engine.i)
        wiring.connect(m, engine.o, wiring.flipped(self.o))
        wiring.connect(m, wiring.flipped(self.load), engine.load)
        for window in (along_w, along_h):
            m.d.comb += [window.width.eq(self.width), window.height.eq(self.height)]
        m.d.comb += [engine.shift.eq(self.shift), self.issuing.eq(engine.issuing),
                     self.busy.eq(engine.busy | along_w.o.valid | along_h.o.valid)]
        return m
