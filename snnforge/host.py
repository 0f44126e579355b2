"""The one Python driver for every snnforge core's host port.

:class:`HostDriver` turns register and window names from a core's
:class:`~snnforge.hw.common.hostport.RegisterMap` into host-port commands and hands them, in bulk, to
a *transport*: anything with an async ``transact(commands) -> read data`` method. Transports exist
for cocotb (:class:`snnforge.sim.cocotb_streams.CocotbTransport`) and Amaranth's simulator
(:class:`snnforge.sim.amaranth_host.AmaranthTransport`); a UART bridge on a board implements the
same method.
"""

from __future__ import annotations

from typing import Iterable, Protocol, Sequence

from .hw.common.hostport import RegisterMap

__all__ = ["Command", "Transport", "HostDriver"]

Command = tuple[bool, int, int]   # (write, word address, data); reads carry data 0


class Transport(Protocol):
    async def transact(self, commands: Sequence[Command]) -> list[int]:
        """Issue commands in order; return the data of the reads among them, in order."""


class HostDriver:
    """Register/window-level access to a core through its host port.

    Parameters
    ----------
    regmap : RegisterMap or dict
        The core's map (``component.regmap``, or the ``regmap`` entry of a generator manifest).
    transport : Transport
    """

    def __init__(self, regmap, transport: Transport):
        self.regmap = regmap if isinstance(regmap, RegisterMap) else RegisterMap.from_dict(regmap)
        self.regmap.freeze()
        self.transport = transport
        self._dw = self.regmap.data_width
        self._mask = (1 << self._dw) - 1

    # -- registers ---------------------------------------------------------------------------
    def _register(self, name):
        item = self.regmap[name]
        if not hasattr(item, "width") or hasattr(item, "depth"):
            raise KeyError(f"{name!r} is a window, not a register")
        return item

    def _write_command(self, name, value) -> Command:
        """``value``: an int, or a dict of field values (the other fields 0)."""
        r = self._register(name)
        if r.access == "ro":
            raise ValueError(f"register {name!r} is read-only")
        value = r.encode(**value) if isinstance(value, dict) else int(value)
        if not 0 <= value < (1 << r.width):
            raise ValueError(f"register {name!r}: {value} does not fit {r.width} bits")
        return (True, r.address, value)

    async def write(self, name: str, value: int | None = None, **fields):
        """Write a register: a whole value, or named fields (``write("control", start=1)``)."""
        if (value is None) == (not fields):
            raise ValueError(f"register {name!r}: give either a value or fields")
        command = self._write_command(name, fields or value)
        await self.transport.transact([command])

    async def write_many(self, values: dict):
        """Write several registers in one transaction (in the dict's order); a value may be a
        dict of field values."""
        commands = [self._write_command(n, v) for n, v in values.items()]
        await self.transport.transact(commands)

    async def read(self, name: str) -> int:
        r = self._register(name)
        return (await self.transport.transact([(False, r.address, 0)]))[0]

    async def read_fields(self, name: str) -> dict:
        """A register's fields by name."""
        return self._register(name).decode(await self.read(name))

    async def read_many(self, names: Iterable[str]) -> dict:
        names = list(names)
        data = await self.transport.transact([(False, self._register(n).address, 0) for n in names])
        return dict(zip(names, data))

    # -- windows -----------------------------------------------------------------------------
    def _window(self, name):
        item = self.regmap[name]
        if not hasattr(item, "depth"):
            raise KeyError(f"{name!r} is a register, not a window")
        return item

    def _words(self, element, wpe):
        return [(element >> (k * self._dw)) & self._mask for k in range(wpe)]

    async def write_window(self, name: str, elements: Sequence[int], offset: int = 0):
        """Write consecutive elements starting at element ``offset`` (lowest word of each first)."""
        w = self._window(name)
        if w.access == "ro":
            raise ValueError(f"window {name!r} is read-only")
        wpe = self.regmap.words_per_element(w.element_width)
        stride = self.regmap.stride(w.element_width)
        if not w.stream and (offset < 0 or offset + len(elements) > w.depth):
            raise ValueError(f"window {name!r}: elements {offset}..{offset + len(elements) - 1} "
                             f"exceed its depth {w.depth}")
        cmds = []
        for i, element in enumerate(elements):
            element = int(element)
            if not 0 <= element < (1 << w.element_width):
                raise ValueError(f"window {name!r}: element {element} does not fit "
                                 f"{w.element_width} bits")
            base = w.address + (0 if w.stream else (offset + i) * stride)
            cmds += [(True, base + (0 if w.stream else k), word)
                     for k, word in enumerate(self._words(element, wpe))]
        await self.transport.transact(cmds)

    async def read_window(self, name: str, count: int, offset: int = 0) -> list[int]:
        """Read ``count`` consecutive elements starting at element ``offset``."""
        w = self._window(name)
        if w.access == "wo":
            raise ValueError(f"window {name!r} is write-only")
        wpe = self.regmap.words_per_element(w.element_width)
        stride = self.regmap.stride(w.element_width)
        if not w.stream and (offset < 0 or offset + count > w.depth):
            raise ValueError(f"window {name!r}: elements {offset}..{offset + count - 1} exceed "
                             f"its depth {w.depth}")
        cmds = [(False, w.address + (0 if w.stream else (offset + i) * stride + k), 0)
                for i in range(count) for k in range(wpe)]
        data = await self.transport.transact(cmds)
        out = []
        for i in range(count):
            words = data[i * wpe:(i + 1) * wpe]
            out.append(sum(word << (k * self._dw) for k, word in enumerate(words)))
        return out

    async def wait_until(self, name: str, predicate, *, polls: int = 1_000_000) -> int:
        """Poll a register until ``predicate(value)`` holds; returns the value."""
        for _ in range(polls):
            value = await self.read(name)
            if predicate(value):
                return value
        raise TimeoutError(f"register {name!r} did not reach the expected value")

    async def wait_field(self, name: str, field: str, value: int, **kwargs) -> int:
        """Poll register ``name`` until its field ``field`` equals ``value``."""
        f = self._register(name).field(field)
        mask = (1 << f.width) - 1
        return await self.wait_until(name, lambda v: (v >> f.offset) & mask == value, **kwargs)
