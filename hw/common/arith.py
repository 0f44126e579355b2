"""Sequential integer arithmetic shared by the cores: a restoring divider and an integer square
root, one result bit a cycle."""

from __future__ import annotations

from amaranth import *
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["Divider", "ISqrt"]


def _check_bits(name, value, hi=256):
    if not isinstance(value, int) or not 1 <= value <= hi:
        raise ValueError(f"{name} must be an integer in 1..{hi}, not {value!r}")


class Divider(wiring.Component):
    """``quotient = num // den`` of unsigned integers (restoring division).

    ``start`` (one cycle, while not ``busy``) takes ``num`` and ``den``; ``busy`` is high for
    ``num_bits`` cycles, one quotient bit each, and ``quotient`` holds the result from the cycle
    it falls until the next ``start``. ``den = 0`` gives all ones.

    Members: ``num`` In(num_bits), ``den`` In(den_bits), ``start`` In(1), ``busy`` Out(1),
    ``quotient`` Out(num_bits).
    """

    def __init__(self, num_bits: int, den_bits: int):
        _check_bits("num_bits", num_bits)
        _check_bits("den_bits", den_bits)
        self.num_bits, self.den_bits = num_bits, den_bits
        super().__init__({"num": In(num_bits), "den": In(den_bits), "start": In(1),
                          "busy": Out(1), "quotient": Out(num_bits)})

    def elaborate(self, platform):
        m = Module()
        n = self.num_bits
        rem = Signal(self.den_bits + 1)
        num, den = Signal(n), Signal(self.den_bits)
        left = Signal(range(n + 1))
        m.d.comb += self.busy.eq(left != 0)
        trial = Cat(num[n - 1], rem)                    # the remainder with the next bit in
        with m.If(self.start & ~self.busy):
            m.d.sync += [num.eq(self.num), den.eq(self.den), rem.eq(0), left.eq(n),
                         self.quotient.eq(0)]
        with m.Elif(self.busy):
            fits = trial >= den
            m.d.sync += [rem.eq(Mux(fits, trial - den, trial)), num.eq(num << 1),
                         self.quotient.eq(Cat(fits, self.quotient)), left.eq(left - 1)]
        return m


class ISqrt(wiring.Component):
    """``root = isqrt(value)`` (the floor of the square root) of an unsigned integer.

    ``start`` (one cycle, while not ``busy``) takes ``value``; ``busy`` is high for
    ``ceil(value_bits / 2)`` cycles, one root bit each; ``root`` holds the result from then
    until the next ``start``.

    Members: ``value`` In(value_bits), ``start`` In(1), ``busy`` Out(1), ``root``
    Out(ceil(value_bits / 2)).
    """

    def __init__(self, value_bits: int):
        _check_bits("value_bits", value_bits)
        self.value_bits = value_bits
        self.root_bits = -(-value_bits // 2)
        super().__init__({"value": In(value_bits), "start": In(1), "busy": Out(1),
                          "root": Out(self.root_bits)})

    def elaborate(self, platform):
        m = Module()
        k = self.root_bits
        value = Signal(2 * k)
        rem = Signal(k + 2)
        left = Signal(range(k + 1))
        m.d.comb += self.busy.eq(left != 0)
        with m.If(self.start & ~self.busy):
            m.d.sync += [value.eq(self.value), rem.eq(0), left.eq(k), self.root.eq(0)]
        with m.Elif(self.busy):
            # Bring down the next two bits; the root's next bit is 1 if 4 root + 1 fits.
            cur = Cat(value[2 * k - 2:], rem)
            trial = Cat(C(1, 2), self.root)
            fits = cur >= trial
            m.d.sync += [rem.eq(Mux(fits, cur - trial, cur)), value.eq(value << 2),
                         self.root.eq(Cat(fits, self.root)), left.eq(left - 1)]
        return m
