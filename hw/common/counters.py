"""Performance counters shared by every snnforge core."""

from __future__ import annotations

import operator

from amaranth import *
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["PerfCounters"]


class PerfCounters(wiring.Component):
    """A bank of named, saturating event counters.

    Each cycle, counter ``name`` adds ``inc.name`` (a small unsigned increment: 1 bit for
    "this cycle was busy / stalled", wider for "this many matches"). Counters saturate at
    ``2**width - 1`` instead of wrapping, so a long run can never report a small number.
    ``clear`` zeroes every counter (it wins over a simultaneous increment).

    Latency: a count is visible two cycles after its increment (increments are registered
    first, so that no counter's carry chain lies on a path from the logic it watches).
    Throughput: one increment per counter per cycle.

    Parameters
    ----------
    events : dict[str, int]
        Counter name -> increment width in bits.
    width : int
        Counter width.

    Members
    -------
    inc : In(StructLayout(events))
    clear : In(1)
    count : Out(StructLayout({name: width}))
    """

    def __init__(self, events: dict[str, int], *, width: int = 32):
        self._width = operator.index(width)
        if not 1 <= self._width <= 64:
            raise ValueError(f"width must be in 1..64, not {width}")
        if not events:
            raise ValueError("events must name at least one counter")
        for name, inc_width in events.items():
            if not name.isidentifier():
                raise ValueError(f"events: counter name {name!r} is not an identifier")
            if not 1 <= operator.index(inc_width) <= self._width:
                raise ValueError(f"events: increment width of {name!r} must be in 1..{self._width}")
        self._events = dict(events)
        super().__init__({
            "inc": In(data.StructLayout(self._events)),
            "clear": In(1),
            "count": Out(data.StructLayout({name: self._width for name in self._events})),
        })

    @property
    def names(self):
        return tuple(self._events)

    @property
    def width(self):
        return self._width

    def elaborate(self, platform):
        m = Module()
        top = (1 << self._width) - 1
        for name in self._events:
            count = getattr(self.count, name)
            inc = Signal.like(getattr(self.inc, name), name=f"{name}_inc")
            # A clear also drops the registered increment: the count after a clear is the same
            # as if the increment had been added at once.
            m.d.sync += inc.eq(Mux(self.clear, 0, getattr(self.inc, name)))
            total = Signal(self._width + 1, name=f"{name}_next")
            m.d.comb += total.eq(count + inc)
            with m.If(self.clear):
                m.d.sync += count.eq(0)
            with m.Elif(total[-1]):            # carry out: past 2**width - 1
                m.d.sync += count.eq(top)
            with m.Else():
                m.d.sync += count.eq(total)
        return m
