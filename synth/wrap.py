"""Serialized, registered I/O wrapper: fits any core into a few package pins.

nextpnr-ice40 has no out-of-context mode, and a core with hundreds of ports cannot be placed on an
iCE40UP5K (39 I/O in the sg48 package). :class:`SerialWrapper` gives the core a register for every
input and a capture register for every output, loaded and read through one shift chain:

* ``sin`` shifts into the input chain on every cycle; ``load`` copies the chain into the core's
  input registers;
* ``capture`` copies every core output into the output chain, which otherwise shifts out on
  ``sout``.

Every core port thus sits between flip-flops, so the reported Fmax is that of the core's own
paths, and no core logic is optimised away (every output reaches a pin through the chain).
"""

from __future__ import annotations

from amaranth import *
from amaranth.hdl import Shape
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["SerialWrapper"]


class SerialWrapper(wiring.Component):
    """Wraps ``core`` behind a serial load/capture chain (6 pins with clk and rst).

    Members
    -------
    sin : In(1)
    load : In(1)
    capture : In(1)
    sout : Out(1)
    """

    def __init__(self, core: wiring.Component):
        self.core = core
        self._inputs, self._outputs = [], []
        for path, member, value in core.signature.flatten(core):
            width = Shape.cast(member.shape).width
            (self._inputs if member.flow == wiring.In else self._outputs).append((value, width))
        super().__init__({"sin": In(1), "load": In(1), "capture": In(1), "sout": Out(1)})

    @property
    def input_bits(self):
        return sum(width for _, width in self._inputs)

    @property
    def output_bits(self):
        return sum(width for _, width in self._outputs)

    def elaborate(self, platform):
        m = Module()
        m.submodules.core = self.core
        n_in, n_out = max(1, self.input_bits), max(1, self.output_bits)

        chain_in = Signal(n_in)
        regs_in = Signal(n_in)
        m.d.sync += chain_in.eq(Cat(self.sin, chain_in[:-1]) if n_in > 1 else self.sin)
        with m.If(self.load):
            m.d.sync += regs_in.eq(chain_in)
        offset = 0
        for value, width in self._inputs:
            m.d.comb += value.eq(regs_in[offset:offset + width])
            offset += width

        outputs = Cat(*[value for value, _ in self._outputs]) if self._outputs else C(0, 1)
        chain_out = Signal(n_out)
        with m.If(self.capture):
            m.d.sync += chain_out.eq(outputs)
        with m.Else():
            m.d.sync += chain_out.eq(chain_out >> 1)
        m.d.comb += self.sout.eq(chain_out[0])
        return m
