"""Pack and unpack stream payloads with the Amaranth layouts the hardware itself uses.

Benches never hard-code bit positions: the same ``data.Layout`` that shapes a port in the RTL
turns a Python value into the integer driven on the flattened Verilog port and back.
Plain shapes map to ``int``; struct layouts to ``dict``; array layouts to ``list``.
"""

from __future__ import annotations

from amaranth.hdl import Shape
from amaranth.lib import data

__all__ = ["pack", "unpack", "command_encoder"]


def pack(layout, value) -> int:
    """Python value (int / dict / list, nested as the layout is) -> raw bits as an ``int``."""
    if isinstance(layout, data.Layout):
        return data.Const(layout, 0).as_bits() if value is None else layout.const(value).as_bits()
    shape = Shape.cast(layout)
    value = int(value)
    lo = -(1 << (shape.width - 1)) if shape.signed else 0
    hi = (1 << (shape.width - (1 if shape.signed else 0))) - 1
    if not lo <= value <= hi:
        raise ValueError(f"{value} does not fit {shape}")
    return value & ((1 << shape.width) - 1)


def _to_python(value):
    if isinstance(value, data.Const):
        layout = value.shape()
        if isinstance(layout, data.ArrayLayout):
            return [_to_python(value[i]) for i in range(layout.length)]
        return {name: _to_python(value[name]) for name, _ in layout}
    return int(value)


def unpack(layout, bits: int):
    """Raw bits -> Python value; signed fields come back negative where they are."""
    bits = int(bits)
    if isinstance(layout, data.Layout):
        return _to_python(data.Const(layout, bits))
    shape = Shape.cast(layout)
    if shape.signed and bits >> (shape.width - 1):
        return bits - (1 << shape.width)
    return bits


def command_encoder(layout):
    """A fast ``(write, addr, data) -> raw bits`` encoder for the host-port command layout
    (bulk transfers send tens of thousands of commands; building layout constants is slow)."""
    offsets = {name: field.offset for name, field in layout}
    ow, oa, od = offsets["write"], offsets["addr"], offsets["data"]

    def encode(write, addr, data):
        return (int(bool(write)) << ow) | (int(addr) << oa) | (int(data) << od)
    return encode
