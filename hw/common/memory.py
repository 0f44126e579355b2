"""Memory helpers shared by the cores: buffers with a synthesis hint, power-of-two spans."""

from __future__ import annotations

from amaranth.lib import memory

__all__ = ["buffer", "pow2"]


def buffer(*, shape, depth, init=(), distributed=False):
    """An ``amaranth.lib.memory.Memory`` of at least two entries (a one-entry memory would get a
    zero-width address, which Verilog spells ``[-1:0]``). ``distributed`` asks synthesis for
    LUT RAM (Yosys ``ram_style``) where a block RAM's slow clock-to-out would sit on a
    critical path."""
    attrs = {"ram_style": "distributed"} if distributed else None
    return memory.Memory(shape=shape, depth=max(2, depth), init=list(init), attrs=attrs)


def pow2(n: int) -> int:
    """The smallest power of two >= ``n`` (1 for ``n <= 1``): address spans and strides."""
    return 1 << max(0, (n - 1).bit_length())
