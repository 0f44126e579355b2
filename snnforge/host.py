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

from .hw.common.cmdproc import COMMAND_BYTES, ERRORS
from .hw.common.host_interface import HOST_COUNTERS
from .hw.common.hostport import RegisterMap
from .params import SnnforgeError

__all__ = ["Command", "Transport", "HostDriver", "MemoryImage", "CommandList"]

Command = tuple[bool, int, int]   # (write, word address, data); reads carry data 0


class Transport(Protocol):
    """How a :class:`HostDriver` reaches a core. Only :meth:`transact` is required; a transport
    that reaches the core's memory directly (a simulator's backdoor) adds ``write_memory(addr,
    data)`` and ``read_memory(addr, length)``, and one that can let time pass without traffic
    adds ``pause(cycles)``."""

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

    # -- memory and command lists (cores with a HostInterface) ----------------------------------
    async def write_memory(self, addr: int, data: bytes):
        """Bytes into the core's memory: through the transport's backdoor if it has one, else
        word by word through the ``memory`` window (``addr`` and the length multiples of 4)."""
        if hasattr(self.transport, "write_memory"):
            await self.transport.write_memory(addr, bytes(data))
            return
        if addr % 4 or len(data) % 4:
            raise ValueError("memory window accesses are whole 32-bit words")
        words = [int.from_bytes(data[i:i + 4], "little") for i in range(0, len(data), 4)]
        for page, offset, count, first in self._pages(addr, len(words)):
            await self.write("mem_page", page)
            await self.write_window("memory", words[first:first + count], offset=offset)

    async def read_memory(self, addr: int, length: int) -> bytes:
        if hasattr(self.transport, "read_memory"):
            return await self.transport.read_memory(addr, length)
        if addr % 4 or length % 4:
            raise ValueError("memory window accesses are whole 32-bit words")
        out = bytearray()
        for page, offset, count, _ in self._pages(addr, length // 4):
            await self.write("mem_page", page)
            for word in await self.read_window("memory", count, offset=offset):
                out += word.to_bytes(4, "little")
        return bytes(out)

    def _pages(self, addr, words):
        """(page, word offset, words, index of the first word) for each window page touched."""
        span = self.regmap["memory"].depth
        out, done = [], 0
        while done < words:
            page, offset = divmod(addr // 4 + done, span)
            count = min(words - done, span - offset)
            out.append((page, offset, count, done))
            done += count
        return out

    async def run_commands(self, image: "MemoryImage", commands: "CommandList", *,
                           wait_limit: int = 0, poll_pause: int = 64,
                           timeout_polls: int = 1 << 20) -> dict:
        """Write ``image`` (with the list placed in it) to memory, run the list and wait for its
        end; returns the host interface's counters. An error of the list raises
        :class:`~snnforge.params.SnnforgeError` naming the failing command; a list still
        running after ``timeout_polls`` polls (``poll_pause`` cycles apart where the transport
        can pause) raises ``TimeoutError``: a watchdog, never a hang."""
        base = image.put("commands", commands.to_bytes(), align=64)
        for addr, data in image.chunks:
            await self.write_memory(addr, data)
        await self.write_many({"cp_base": base, "mem_limit": image.size,
                               "wait_limit": wait_limit, "cp_control": {"go": 1}})
        pause = getattr(self.transport, "pause", None)
        for _ in range(timeout_polls):
            status = await self.read_fields("cp_status")
            if not status["busy"]:
                break
            if pause is not None:
                await pause(poll_pause)
        else:
            raise TimeoutError(f"the command list ({len(commands.commands)} commands) did not "
                               f"end after {timeout_polls} polls")
        if status["error"]:
            code = (await self.read_fields("cp_error"))["code"]
            at = await self.read("cp_error_at")
            index = (at - base) // COMMAND_BYTES
            raise SnnforgeError(f"command list stopped at command {index} "
                                f"({commands.describe(index)}): {ERRORS.get(code, code)}")
        return await self.read_many([name for name, _ in HOST_COUNTERS])

    async def wait_field(self, name: str, field: str, value: int, **kwargs) -> int:
        """Poll register ``name`` until its field ``field`` equals ``value``."""
        f = self._register(name).field(field)
        mask = (1 << f.width) - 1
        return await self.wait_until(name, lambda v: (v >> f.offset) & mask == value, **kwargs)


class MemoryImage:
    """The memory a job's command list and operands live in: regions allocated upwards from
    ``base``, each aligned (to ``align`` bytes at least), and the bytes to put there.

    Raises :class:`~snnforge.params.SnnforgeError` naming the region that does not fit ``size``
    bytes (the address space the core's memory offers)."""

    def __init__(self, size: int, *, align: int = 16, base: int = 0):
        self.size, self.align = size, align
        self.top = base
        self.regions: dict[str, tuple[int, int]] = {}      # name -> (address, bytes)
        self.chunks: list[tuple[int, bytes]] = []

    def alloc(self, name: str, nbytes: int, *, align: int | None = None) -> int:
        a = max(self.align, align or 1)
        addr = -(-self.top // a) * a
        if addr + nbytes > self.size:
            raise SnnforgeError(f"memory image: region {name} ({nbytes:,} bytes at {addr:#x}) "
                                f"does not fit the {self.size:,}-byte memory")
        self.regions[name] = (addr, nbytes)
        self.top = addr + nbytes
        return addr

    def put(self, name: str, data: bytes, *, align: int | None = None) -> int:
        """Allocate region ``name`` for ``data`` and keep the bytes to write there."""
        addr = self.alloc(name, len(data), align=align)
        self.chunks.append((addr, bytes(data)))
        return addr


class CommandList:
    """Builds a command list for a core's command processor by register, field and target name
    (the register map's), as 16-byte commands (``hw/common/cmdproc.py``)."""

    OPCODES = {"END": 0, "WRITE": 1, "WAIT": 2, "LOAD": 3, "STORE": 4}

    def __init__(self, regmap):
        self.regmap = regmap if isinstance(regmap, RegisterMap) else RegisterMap.from_dict(regmap)
        self.commands: list[tuple] = []        # (op, target, sel, word1, word2, word3, text)

    def _register(self, name):
        item = self.regmap[name]
        if hasattr(item, "depth"):
            raise KeyError(f"{name!r} is a window, not a register")
        return item

    def write(self, name: str, value: int | None = None, **fields):
        r = self._register(name)
        value = r.encode(**fields) if fields else int(value)
        if not 0 <= value < (1 << r.width):
            raise ValueError(f"register {name!r}: {value} does not fit {r.width} bits")
        self.commands.append((1, 0, 0, r.address, value, 0, f"WRITE {name}={value:#x}"))

    def write_many(self, values: dict):
        for name, value in values.items():
            if isinstance(value, dict):
                self.write(name, **value)
            else:
                self.write(name, value)

    def wait(self, name: str, **fields):
        """Until every named field of register ``name`` has the given value."""
        r = self._register(name)
        mask = sum(((1 << r.field(f).width) - 1) << r.field(f).offset for f in fields)
        self.commands.append((2, 0, 0, r.address, mask, r.encode(**fields),
                              f"WAIT {name} {fields}"))

    def _bulk(self, op, direction, target, addr, beats, sel, arg):
        t = self.regmap.target(target)
        if t.direction != direction:
            raise ValueError(f"target {target!r} is a {t.direction} target")
        self.commands.append((op, t.id, sel, addr, beats, arg,
                              f"{direction.upper()} {target}[{sel}] {beats} beats at {addr:#x}"))

    def load(self, target: str, addr: int, beats: int, *, sel: int = 0, arg: int = 0):
        self._bulk(3, "load", target, addr, beats, sel, arg)

    def store(self, target: str, addr: int, beats: int, *, sel: int = 0, arg: int = 0):
        self._bulk(4, "store", target, addr, beats, sel, arg)

    def end(self):
        self.commands.append((0, 0, 0, 0, 0, 0, "END"))

    def describe(self, index: int) -> str:
        return self.commands[index][6] if 0 <= index < len(self.commands) else "past the list"

    def to_bytes(self) -> bytes:
        out = bytearray()
        for op, target, sel, w1, w2, w3, _ in self.commands:
            for word in (op | (target << 4) | (sel << 8), w1, w2, w3):
                out += int(word).to_bytes(4, "little")
        return bytes(out)
