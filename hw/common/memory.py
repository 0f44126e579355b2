"""Memory helpers shared by the cores: buffers with a synthesis hint, power-of-two spans."""

from __future__ import annotations

from amaranth.lib import memory

__all__ = ["buffer", "pow2"]


RAM_STYLES = ("distributed", "block")


def buffer(*, shape, depth, init=(), ram_style=None, banked_reads=False):
    """An ``amaranth.lib.memory.Memory`` of at least two entries (a one-entry memory would get a
    zero-width address, which Verilog spells ``[-1:0]``). ``ram_style`` (Yosys's attribute)
    asks synthesis for LUT RAM (``"distributed"``: where a block RAM's slow clock-to-out would
    sit on a critical path) or block RAM (``"block"``: where a wide, shallow memory would
    otherwise take scarce LUT RAM); ``None`` leaves the choice to it.

    ``banked_reads``: no read whose data is used meets a write to its entry in the same cycle
    (double-buffered banks: writes fill one bank while reads use the other), so synthesis may
    leave that case undefined (Yosys's ``no_rw_check``). Otherwise Yosys keeps a
    non-transparent read's "old data" on ECP5 block RAM with a register and a multiplexer per
    bit after the RAM's output (5.8 ns from clock to output without its output register)."""
    if ram_style is not None and ram_style not in RAM_STYLES:
        raise ValueError(f"ram_style must be None or one of {', '.join(RAM_STYLES)}, "
                         f"not {ram_style!r}")
    attrs = {**({"ram_style": ram_style} if ram_style else {}),
             **({"no_rw_check": 1} if banked_reads else {})}
    return memory.Memory(shape=shape, depth=max(2, depth), init=list(init), attrs=attrs or None)


def pow2(n: int) -> int:
    """The smallest power of two >= ``n`` (1 for ``n <= 1``): address spans and strides."""
    return 1 << max(0, (n - 1).bit_length())
