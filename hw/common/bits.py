"""Bit-vector helpers that keep Yosys and Verilator output small."""

from __future__ import annotations

from amaranth import *

__all__ = ["popcount", "sum_tree", "thermometer", "lowest_one", "onehot_index", "at_most",
           "at_most_one"]


def popcount(bits: Value) -> Value:
    """Balanced adder tree over the bits of ``bits``.

    Pass a Signal (or a slice of one): each bit is taken separately, and a compound expression
    would be re-emitted once per bit in the Verilog.
    """
    return sum_tree([bits[i] for i in range(len(bits))])


def sum_tree(terms: list) -> Value:
    """The sum of ``terms`` (unsigned values) by a balanced adder tree: ``log2(len(terms))``
    adders deep instead of a chain."""
    if not terms:
        return C(0, 1)
    while len(terms) > 1:
        terms = [terms[i] + terms[i + 1] if i + 1 < len(terms) else terms[i]
                 for i in range(0, len(terms), 2)]
    return terms[0]


def thermometer(pos: Value, width: int) -> Value:
    """``(1 << pos) - 1`` as ``width`` bits: bit ``i`` set iff ``i < pos``. Bits that ``pos``
    cannot reach are constant 0 (no always-false comparators)."""
    largest = (1 << len(pos)) - 1
    return Cat(*[pos > i if i < largest else C(0, 1) for i in range(width)])


def lowest_one(m: Module, bits: Value, name: str = "lowest") -> Signal:
    """One-hot of the lowest set bit of ``bits`` (all zeros if none): ``bits & -bits``."""
    out = Signal(len(bits), name=name)
    m.d.comb += out.eq(bits & (~bits + 1))
    return out


def onehot_index(onehot: Value) -> Value:
    """Index of the set bit of a one-hot vector: bit ``j`` of the index is the OR of the one-hot
    bits whose position has bit ``j`` set (no priority logic, no adders)."""
    width = len(onehot)
    return Cat(*[Cat(*[onehot[i] for i in range(width) if (i >> j) & 1]).any()
                 for j in range(max(1, (width - 1).bit_length()))])


def at_most(m: Module, bits: Value, n: int, name: str = "at_most") -> Signal:
    """Whether at most ``n`` bits of ``bits`` are set, by a balanced tree of thermometer-coded
    counts ("at least k" for k = 1..n+1, saturating): logarithmic depth and no carry chain, so
    it runs beside :func:`lowest_one` rather than after it (``at_most(bits, 2)`` is
    ``at_most(bits & ~lowest_one(bits), 1)``)."""
    if not isinstance(n, int) or n < 0:
        raise ValueError(f"n must be a non-negative integer, not {n!r}")
    cap = n + 1
    # Each node: ge[k] = "at least k + 1 of its bits are set", k < cap.
    level = [[bits[i]] + [C(0, 1)] * n for i in range(len(bits))]
    while len(level) > 1:
        pairs = []
        for j in range(0, len(level) - 1, 2):
            a, b = [C(1, 1)] + level[j], [C(1, 1)] + level[j + 1]
            pairs.append([Cat(*[a[i] & b[k + 1 - i] for i in range(k + 2)]).any()
                          for k in range(cap)])
        if len(level) % 2:
            pairs.append(level[-1])
        level = pairs
    out = Signal(name=name)
    m.d.comb += out.eq(~level[0][n] if level else 1)
    return out


def at_most_one(m: Module, bits: Value, name: str = "at_most_one") -> Signal:
    """Whether at most one bit of ``bits`` is set (:func:`at_most` with ``n = 1``)."""
    return at_most(m, bits, 1, name)

