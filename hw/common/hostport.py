"""The one host port every snnforge core top exposes.

A host reaches a core through a command stream and a response stream::

    cmd: {write, addr, data}  ->  core  ->  rsp: data      (one response per read, none per write)

Behind the port sits a register map (:class:`RegisterMap`): plain registers (read-write, read-only
status, write-pulse commands) and *windows* -- address ranges forwarded to a target such as an
on-chip buffer (:class:`SramWindow`) or a FIFO (:class:`StreamWindow`). The map is built by the core
from its parameters, is emitted in the generator manifest, and drives the one Python driver
(:class:`snnforge.host.HostDriver`) used by cocotb benches, ``snnforge run`` and board bridges.

Elements wider than the data word span several word addresses, lowest word first, at a
power-of-two stride (``RegisterMap.stride``) so that hardware splits element and word with wires.
Writing an element's last word commits the whole element; reading any word reads the element.
"""

from __future__ import annotations

import dataclasses
import math
import operator
from dataclasses import asdict, dataclass
from functools import reduce

from amaranth import *
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["Field", "Register", "Window", "RegisterMap", "HostPort", "WindowSignature", "SramWindow",
           "StreamWindow", "command_layout", "host_port_members"]

ACCESS_REG = ("rw", "ro", "pulse")
ACCESS_WIN = ("rw", "ro", "wo")


@dataclass(frozen=True)
class Field:
    """A named bit field of a register: ``width`` bits from bit ``offset``."""
    name: str
    offset: int
    width: int
    doc: str = ""


@dataclass(frozen=True)
class Register:
    """One word-sized register. ``rw``: stored here, drives the core; ``ro``: status read from the
    core; ``pulse``: a write drives each bit written as 1 high for the one cycle of the write
    (reads give 0). A register may be cut into named :class:`Field` s (``fields``); the core then
    sees it as a struct of them, and drivers write and read it by field name."""
    name: str
    width: int
    access: str = "rw"
    reset: int = 0
    doc: str = ""
    address: int = -1
    fields: tuple = ()

    def field(self, name) -> Field:
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(f"register {self.name!r} has no field {name!r}; fields: "
                       f"{', '.join(f.name for f in self.fields) or 'none'}")

    def encode(self, **values) -> int:
        """The register value with the named fields set (the others 0)."""
        word = 0
        for name, value in values.items():
            f = self.field(name)
            value = int(value)
            if not 0 <= value < (1 << f.width):
                raise ValueError(f"register {self.name!r}: field {name}={value} does not fit "
                                 f"{f.width} bits")
            word |= value << f.offset
        return word

    def decode(self, value: int) -> dict:
        """Field name -> value of a register value."""
        return {f.name: (int(value) >> f.offset) & ((1 << f.width) - 1) for f in self.fields}

    @property
    def shape(self):
        """The register as the core sees it: a struct of its fields, or plain bits."""
        if not self.fields:
            return self.width
        return data.StructLayout({f.name: f.width for f in self.fields})


@dataclass(frozen=True)
class Window:
    """An address range forwarded to a target. ``depth`` elements of ``element_width`` bits each;
    ``stream`` windows ignore the address within the window (every access pushes / pops).
    ``block`` (if not 0): the elements form consecutive blocks of ``block`` elements, one per
    unit such as a PE (element ``unit * block + i``)."""
    name: str
    depth: int
    element_width: int
    access: str = "rw"
    stream: bool = False
    doc: str = ""
    address: int = -1
    span: int = 0
    block: int = 0


@dataclass(frozen=True)
class Target:
    """A bulk target of the core's command processor: ``load`` targets take LOAD beats, ``store``
    targets give STORE beats; ``doc`` says what the beats hold (the memory format) and what the
    command's select and argument mean."""
    name: str
    id: int
    direction: str
    doc: str = ""


def _check_name(name):
    if not (isinstance(name, str) and name.isidentifier()):
        raise ValueError(f"name must be an identifier, not {name!r}")


class RegisterMap:
    """Description of a core's host-visible registers and windows, with addresses assigned.

    Registers take word addresses from 0 upwards, in the order added; each window then gets an
    aligned power-of-two span of word addresses.
    """

    def __init__(self, *, data_width: int = 32):
        if not isinstance(data_width, int) or data_width not in (8, 16, 32, 64):
            raise ValueError(f"data_width must be 8, 16, 32 or 64, not {data_width!r}")
        self.data_width = data_width
        self._registers: list[Register] = []
        self._windows: list[Window] = []
        self._targets: list[Target] = []
        self._frozen = False

    # -- building ---------------------------------------------------------------------------
    def _check_new(self, name):
        if self._frozen:
            raise ValueError("the register map is frozen once addresses are assigned")
        _check_name(name)
        if name in self.names:
            raise ValueError(f"duplicate register/window name {name!r}")

    def add_register(self, name, width=None, access="rw", *, reset=0, doc="", fields=None):
        """Add a register of ``width`` bits, or of named ``fields`` (``{name: (width, doc)}``,
        lowest bits first; the width is then their sum)."""
        self._check_new(name)
        if access not in ACCESS_REG:
            raise ValueError(f"access must be one of {', '.join(ACCESS_REG)}, not {access!r}")
        cut = ()
        if fields:
            offset = 0
            for fname, (fwidth, fdoc) in fields.items():
                _check_name(fname)
                if not isinstance(fwidth, int) or fwidth < 1:
                    raise ValueError(f"register {name}: field {fname} needs a positive width")
                cut += (Field(fname, offset, fwidth, fdoc),)
                offset += fwidth
            if width is not None and width != offset:
                raise ValueError(f"register {name}: width {width} is not the fields' {offset}")
            width = offset
        if not isinstance(width, int) or not 1 <= width <= self.data_width:
            raise ValueError(f"register {name}: width must be in 1..{self.data_width}, not {width!r}")
        if not 0 <= reset < (1 << width):
            raise ValueError(f"register {name}: reset value {reset} does not fit {width} bits")
        self._registers.append(Register(name, width, access, reset, doc, fields=cut))
        return self

    def add_window(self, name, depth, element_width, access="rw", *, stream=False, doc="",
                   block=0):
        self._check_new(name)
        if access not in ACCESS_WIN:
            raise ValueError(f"access must be one of {', '.join(ACCESS_WIN)}, not {access!r}")
        if not isinstance(depth, int) or depth < 1:
            raise ValueError(f"window {name}: depth must be a positive integer, not {depth!r}")
        if not isinstance(element_width, int) or element_width < 1:
            raise ValueError(f"window {name}: element_width must be positive, not {element_width!r}")
        if stream and element_width > self.data_width:
            raise ValueError(f"window {name}: a stream window carries one data word per element")
        if not isinstance(block, int) or block < 0 or (block and depth % block):
            raise ValueError(f"window {name}: block must divide depth={depth}, not {block!r}")
        self._windows.append(Window(name, depth, element_width, access, stream, doc, block=block))
        return self

    def add_target(self, name, direction, *, doc=""):
        """Declare bulk target ``name`` (``direction`` "load" or "store"); ids follow the order
        (at most 16)."""
        if self._frozen:
            raise ValueError("the register map is frozen once addresses are assigned")
        _check_name(name)
        if direction not in ("load", "store"):
            raise ValueError(f"target {name}: direction must be load or store, not {direction!r}")
        if name in [t.name for t in self._targets]:
            raise ValueError(f"duplicate target name {name!r}")
        if len(self._targets) == 16:
            raise ValueError("at most 16 bulk targets")
        self._targets.append(Target(name, len(self._targets), direction, doc))
        return self

    @property
    def targets(self):
        return list(self._targets)

    def target(self, name) -> Target:
        for t in self._targets:
            if t.name == name:
                return t
        raise KeyError(f"no bulk target named {name!r}; have "
                       f"{', '.join(t.name for t in self._targets) or 'none'}")

    @property
    def target_mask(self) -> int:
        return sum(1 << t.id for t in self._targets)

    def freeze(self):
        """Assign addresses. Called by :class:`HostPort`; idempotent."""
        if self._frozen:
            return self
        regs = [dataclasses.replace(r, address=i) for i, r in enumerate(self._registers)]
        base = len(regs)
        wins = []
        for w in self._windows:
            words = w.depth * self.stride(w.element_width)
            span = 1 << max(0, math.ceil(math.log2(words)))
            base = -(-base // span) * span
            wins.append(dataclasses.replace(w, address=base, span=span))
            base += span
        self._registers, self._windows = regs, wins
        self.addr_width = max(1, math.ceil(math.log2(max(base, 2))))
        self._frozen = True
        return self

    # -- queries ----------------------------------------------------------------------------
    def words_per_element(self, element_width):
        """Data words that carry one element."""
        return -(-element_width // self.data_width)

    def stride(self, element_width):
        """Word addresses between consecutive elements: words_per_element rounded up to a power
        of two."""
        return 1 << (self.words_per_element(element_width) - 1).bit_length()

    @property
    def names(self):
        return [r.name for r in self._registers] + [w.name for w in self._windows]

    @property
    def registers(self):
        return list(self._registers)

    @property
    def windows(self):
        return list(self._windows)

    def __getitem__(self, name):
        for item in self._registers + self._windows:
            if item.name == name:
                return item
        raise KeyError(f"no register or window named {name!r}; have {', '.join(self.names)}")

    def to_dict(self):
        self.freeze()
        return {
            "data_width": self.data_width,
            "addr_width": self.addr_width,
            "registers": [asdict(r) for r in self._registers],
            "windows": [asdict(w) for w in self._windows],
            "targets": [asdict(t) for t in self._targets],
        }

    @classmethod
    def from_dict(cls, d):
        regmap = cls(data_width=d["data_width"])
        regmap._registers = [Register(**{**r, "fields": tuple(Field(**f) for f in
                                                               r.get("fields", ()))})
                             for r in d["registers"]]
        regmap._windows = [Window(**w) for w in d["windows"]]
        regmap._targets = [Target(**t) for t in d.get("targets", ())]
        regmap.addr_width = d["addr_width"]
        regmap._frozen = True
        return regmap

    def markdown(self) -> str:
        """The register map as a Markdown table, for manifests and READMEs."""
        self.freeze()
        lines = ["| address | name | kind | width | reset | description |", "|---|---|---|---|---|---|"]
        for r in self._registers:
            doc = r.doc + "".join(
                f"{'; ' if r.doc or i else ''}bit{'s' if f.width > 1 else ''} "
                f"{f.offset if f.width == 1 else f'{f.offset}..{f.offset + f.width - 1}'} "
                f"`{f.name}`: {f.doc}" for i, f in enumerate(r.fields))
            lines.append(f"| 0x{r.address:x} | `{r.name}` | register ({r.access}) | {r.width} | "
                         f"{r.reset} | {doc} |")
        for w in self._windows:
            kind = "stream window" if w.stream else "window"
            lines.append(f"| 0x{w.address:x}..0x{w.address + w.span - 1:x} | `{w.name}` | {kind} "
                         f"({w.access}) | {w.depth} x {w.element_width} | | {w.doc} |")
        if self._targets:
            lines += ["", "| target | name | direction | beats |", "|---|---|---|---|"]
            lines += [f"| {t.id} | `{t.name}` | {t.direction} | {t.doc} |" for t in self._targets]
        return "\n".join(lines)


def command_layout(addr_width, data_width):
    return data.StructLayout({"write": 1, "addr": addr_width, "data": data_width})


def host_port_members(regmap: "RegisterMap") -> dict:
    """The ``cmd``/``rsp`` members a core top declares to expose its host port."""
    regmap.freeze()
    return {
        "cmd": In(stream.Signature(command_layout(regmap.addr_width, regmap.data_width))),
        "rsp": Out(stream.Signature(regmap.data_width)),
    }


class WindowSignature(wiring.Signature):
    """What the host port drives into a window target (seen from the host port).

    ``req`` carries ``{write, addr, data}`` with ``addr`` the word offset inside the window;
    the target answers every read request with exactly one beat on ``rsp``.
    """

    def __init__(self, span, data_width):
        self.span = span
        self.data_width = data_width
        super().__init__({
            "req": Out(stream.Signature(command_layout(max(1, (span - 1).bit_length()), data_width))),
            "rsp": In(stream.Signature(data_width)),
        })


class HostPort(wiring.Component):
    """Decodes host commands into register accesses and window transactions.

    Registers answer a read in two cycles; a pulse acts one cycle after its write. Window writes
    pass straight through (one per cycle while the target is ready); a read waits for the target's
    response. One read is outstanding at a time, so responses come back in command order. Unmapped
    addresses read as 0, writes to them and to read-only locations are ignored.

    Members
    -------
    cmd : In(stream.Signature(command_layout(addr_width, data_width)))
    rsp : Out(stream.Signature(data_width))
    regs : Out(StructLayout)  -- every ``rw`` and ``pulse`` register, by name
    status : In(StructLayout) -- every ``ro`` register, by name
    <window name> : Out(WindowSignature) -- one per window
    """

    def __init__(self, regmap: RegisterMap):
        self.regmap = regmap.freeze()
        dw = regmap.data_width
        driven = {r.name: r.shape for r in regmap.registers if r.access in ("rw", "pulse")}
        read = {r.name: r.shape for r in regmap.registers if r.access == "ro"}
        members = {
            "cmd": In(stream.Signature(command_layout(regmap.addr_width, dw))),
            "rsp": Out(stream.Signature(dw)),
            "regs": Out(data.StructLayout(driven or {"_unused": 1})),
            "status": In(data.StructLayout(read or {"_unused": 1})),
        }
        for w in regmap.windows:
            if w.name in members:
                raise ValueError(f"window name {w.name!r} clashes with a host-port member")
            members[w.name] = Out(WindowSignature(w.span, dw))
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        rm = self.regmap
        cmd = self.cmd.payload

        rw_regs = {}
        for r in rm.registers:
            if r.access == "rw":
                store = Signal(r.width, init=r.reset, name=f"reg_{r.name}")
                rw_regs[r.name] = store
                m.d.comb += getattr(self.regs, r.name).eq(store)

        rsp_data = Signal(rm.data_width)
        win_sel = Signal(range(len(rm.windows) + 1))  # which window a read waits on
        # Pulses leave a register: the address decode is not on one path with the logic they
        # start. A register read samples one cycle after its decode (READ), so that a read
        # issued right after a pulse still sees the pulse's effect.
        pulses = {r.name: Signal(r.width, name=f"pulse_{r.name}")
                  for r in rm.registers if r.access == "pulse"}
        for name, pulse in pulses.items():
            m.d.sync += pulse.eq(0)
            m.d.comb += getattr(self.regs, name).eq(pulse)
        readable = [r for r in rm.registers if r.access in ("rw", "ro")]
        # A read registers which register it hit, one bit each: no encoding of the address
        # decode into an index, and in READ an AND-OR of the registers' values.
        read_hit = Signal(max(1, len(readable)))

        with m.FSM():
            with m.State("IDLE"):
                m.d.comb += self.cmd.ready.eq(1)  # default: registers and unmapped accept at once
                # One parallel case per address (windows: their aligned span as a pattern) --
                # a priority chain of compares would cost a LUT level per register.
                aw = len(cmd.addr)
                with m.Switch(cmd.addr):
                    for r in rm.registers:
                        with m.Case(r.address):
                            with m.If(self.cmd.valid & cmd.write):
                                if r.access == "rw":
                                    m.d.sync += rw_regs[r.name].eq(cmd.data)
                                elif r.access == "pulse":
                                    m.d.sync += pulses[r.name].eq(cmd.data)
                            with m.If(self.cmd.valid & ~cmd.write):
                                m.d.sync += read_hit.eq(1 << readable.index(r) if r in readable
                                                        else 0)
                                m.next = "READ"
                    for k, w in enumerate(rm.windows):
                        port = getattr(self, w.name)
                        low = w.span.bit_length() - 1
                        pattern = format(w.address >> low, f"0{aw - low}b") + "-" * low
                        with m.Case(pattern):
                            m.d.comb += [
                                port.req.valid.eq(self.cmd.valid),
                                port.req.payload.write.eq(cmd.write),
                                port.req.payload.addr.eq(cmd.addr[:low] if low else 0),
                                port.req.payload.data.eq(cmd.data),
                                self.cmd.ready.eq(port.req.ready),
                            ]
                            with m.If(self.cmd.valid & port.req.ready & ~cmd.write):
                                m.d.sync += win_sel.eq(k)
                                m.next = "WAIT"
                    with m.Default():
                        with m.If(self.cmd.valid & ~cmd.write):
                            m.d.sync += read_hit.eq(0)
                            m.next = "READ"
            with m.State("READ"):
                values = [rw_regs[r.name] if r.access == "rw" else getattr(self.status, r.name)
                          for r in readable]
                m.d.sync += rsp_data.eq(reduce(operator.or_, [
                    Mux(read_hit[k], Value.cast(v), 0) for k, v in enumerate(values)], C(0)))
                m.next = "RESPOND"
            with m.State("RESPOND"):
                m.d.comb += [self.rsp.valid.eq(1), self.rsp.payload.eq(rsp_data)]
                with m.If(self.rsp.ready):
                    m.next = "IDLE"
            with m.State("WAIT"):
                with m.Switch(win_sel):
                    for k, w in enumerate(rm.windows):
                        port = getattr(self, w.name)
                        with m.Case(k):
                            m.d.comb += [
                                self.rsp.valid.eq(port.rsp.valid),
                                self.rsp.payload.eq(port.rsp.payload),
                                port.rsp.ready.eq(self.rsp.ready),
                            ]
                            with m.If(port.rsp.valid & self.rsp.ready):
                                m.next = "IDLE"
        return m


class SramWindow(wiring.Component):
    """Adapts a window to a memory with one-cycle read latency (an ``amaranth.lib.memory`` port
    pair, possibly behind the owner's mux).

    Elements of ``element_width`` bits span ``ceil(element_width / data_width)`` words. Lower words
    of an element are staged here; the write of the last word writes the element. A read returns
    the addressed word of the element two cycles after the request.

    Members
    -------
    bus : In(WindowSignature)
    addr : Out(range(depth))         element address, for both reads and writes
    w_data : Out(element_width)
    w_en : Out(1)
    r_en : Out(1)                    the memory must present ``r_data`` for ``addr`` next cycle
    r_data : In(element_width)
    """

    def __init__(self, window: Window, data_width: int):
        self._window = window
        self._dw = data_width
        self._wpe = -(-window.element_width // data_width)
        super().__init__({
            "bus": In(WindowSignature(window.span, data_width)),
            "addr": Out(range(max(2, window.depth))),
            "w_data": Out(window.element_width),
            "w_en": Out(1),
            "r_en": Out(1),
            "r_data": In(window.element_width),
        })

    def elaborate(self, platform):
        m = Module()
        req = self.bus.req
        wpe, dw, ew = self._wpe, self._dw, self._window.element_width
        lane_bits = (wpe - 1).bit_length()   # the address stride is 2**lane_bits words
        lane = req.payload.addr[:lane_bits] if wpe > 1 else C(0, 1)
        element = req.payload.addr[lane_bits:] if wpe > 1 else req.payload.addr
        # Stage lower words; the last lane commits the element.
        staged = Signal(max(1, (wpe - 1) * dw))
        full = Signal(wpe * dw)
        m.d.comb += full.eq(Cat(staged[:(wpe - 1) * dw] if wpe > 1 else C(0, 0), req.payload.data))

        pending = Signal()      # a read response is being formed
        read_lane = Signal(max(1, lane_bits))
        stage2 = Signal()
        m.d.comb += [
            req.ready.eq(~pending),
            self.addr.eq(element),
            self.w_data.eq(full[:ew]),
        ]
        with m.If(req.valid & req.ready & req.payload.write):
            if wpe > 1:
                with m.If(lane == wpe - 1):
                    m.d.comb += self.w_en.eq(self._window.access != "ro")
                with m.Else():
                    with m.Switch(lane):
                        for k in range(wpe - 1):
                            with m.Case(k):
                                m.d.sync += staged[k * dw:(k + 1) * dw].eq(req.payload.data)
            else:
                m.d.comb += self.w_en.eq(self._window.access != "ro")
        with m.If(req.valid & req.ready & ~req.payload.write):
            m.d.comb += self.r_en.eq(1)
            m.d.sync += [pending.eq(1), stage2.eq(0), read_lane.eq(lane)]
        # Cycle after r_en the memory data is valid; register the selected word, then answer.
        word = Signal(dw)
        with m.If(pending & ~stage2):
            lanes = [self.r_data[k * dw:(k + 1) * dw] for k in range(wpe)]
            m.d.sync += [word.eq(Array(lanes)[read_lane] if wpe > 1 else lanes[0]), stage2.eq(1)]
        m.d.comb += [self.bus.rsp.valid.eq(pending & stage2), self.bus.rsp.payload.eq(word)]
        with m.If(self.bus.rsp.valid & self.bus.rsp.ready):
            m.d.sync += [pending.eq(0), stage2.eq(0)]
        return m


class StreamWindow(wiring.Component):
    """Adapts a window to a pair of word streams: a write pushes its data word on ``o``, a read pops
    one word from ``i`` (the read waits until a word is available).

    Members
    -------
    bus : In(WindowSignature)
    o : Out(stream.Signature(data_width))
    i : In(stream.Signature(data_width))
    """

    def __init__(self, window: Window, data_width: int):
        self._window = window
        super().__init__({
            "bus": In(WindowSignature(window.span, data_width)),
            "o": Out(stream.Signature(data_width)),
            "i": In(stream.Signature(data_width)),
        })

    def elaborate(self, platform):
        m = Module()
        req = self.bus.req
        reading = Signal()
        writable = self._window.access != "ro"
        with m.If(req.payload.write):
            m.d.comb += [
                self.o.valid.eq(req.valid & writable & ~reading),
                self.o.payload.eq(req.payload.data),
                req.ready.eq(~reading & (self.o.ready | (not writable))),
            ]
        with m.Else():
            m.d.comb += req.ready.eq(~reading)
            with m.If(req.valid & ~reading):
                m.d.sync += reading.eq(1)
        if self._window.access != "wo":
            m.d.comb += [
                self.bus.rsp.valid.eq(reading & self.i.valid),
                self.bus.rsp.payload.eq(self.i.payload),
                self.i.ready.eq(reading & self.bus.rsp.ready),
            ]
        else:
            m.d.comb += [self.bus.rsp.valid.eq(reading), self.bus.rsp.payload.eq(0)]
        with m.If(self.bus.rsp.valid & self.bus.rsp.ready):
            m.d.sync += reading.eq(0)
        return m
