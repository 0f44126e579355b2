"""The host interface of every core top: one register map, two front ends, and an AXI4 master.

:class:`HostInterface` puts a core's :class:`~.hostport.RegisterMap` behind

* the command/response stream port (``cmd``/``rsp``: the internal form, and what a board's serial
  bridge drives) and an AXI4-Lite slave (``s_axil``) -- arbitrated, one access at a time;
* an AXI4 master (``m_axi``) shared by the :class:`~.cmdproc.CommandProcessor` (command
  fetches, LOADs into the core, STOREs from it) and the ``memory`` window, through which any
  host can reach the memory word by word (``mem_page`` selects its page);
* the registers of both (:func:`add_host_interface`) and their counters.

The core sees what a :class:`~.hostport.HostPort` gives (``regs``, ``status``, its windows) plus
the bulk ports of the command processor: ``load`` (LOAD beats), ``store_req``/``store`` (STORE
requests and the core's beats) and ``target_error``.
"""

from __future__ import annotations

from dataclasses import dataclass

from amaranth import *
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out, connect

from ...params import Config, param

from .axi import AXI4LiteBridge, AXI4LiteSignature, AXI4Signature
from .bits import popcount
from .cmdproc import CommandProcessor, load_layout, store_request_layout
from .counters import PerfCounters
from .dma import DMAReader, DMAWriter
from .hostport import HostPort, RegisterMap, WindowSignature, command_layout
from .streams import Gearbox, SkidBuffer

__all__ = ["HostInterface", "HostCore", "HostInterfaceParams", "add_host_interface",
           "READ_CYCLES", "HOST_COUNTERS", "HostArbiter", "MemoryWindow", "TAG_WINDOW",
           "FRONT_ENDS"]


@dataclass(frozen=True)
class HostInterfaceParams(Config):
    """The parameters of a core's AXI4 master (generator configurations inherit them)."""

    dma_width: int = param(128, "data width of the AXI4 master (bits)", lo=32, hi=512,
                           check=lambda c, v: v & (v - 1) == 0,
                           what=lambda c: "one of 32, 64, 128, 256, 512")
    max_burst: int = param(16, "longest AXI4 burst (beats)", lo=1, hi=256)
    outstanding: int = param(4, "AXI4 read bursts in flight", lo=1, hi=16)
    counter_width: int = param(32, "performance counter width (bits; a counter stops at "
                               "2**width - 1, which the driver reports as saturated)", lo=16,
                               hi=32)

TAG_WINDOW = 2

#: Cycles a register read holds the host port, from the cycle the arbiter takes it to the one
#: after its answer leaves (the command slice, the port, the response slice); a write takes one.
READ_CYCLES = 4

#: Counters of the host interface (name, description); all read-only registers of the core's
#: counter width, cleared by ``cp_control.go``.
HOST_COUNTERS = (
    ("total_cycles", "cycles from cp_control.go to the end of the command list"),
    ("commands", "commands executed"),
    ("dma_read_bytes", "bytes read from memory (commands, loads, memory window)"),
    ("dma_write_bytes", "bytes written to memory (stores, memory window)"),
    ("dma_read_bursts", "read bursts (AR)"),
    ("dma_write_bursts", "write bursts (AW)"),
    ("mem_stall_cycles", "cycles a LOAD's target or a STORE's beats waited on memory"),
)


def add_host_interface(rm: RegisterMap, *, window_bits: int = 14,
                       counter_width: int = 32) -> RegisterMap:
    """The registers and the ``memory`` window of :class:`HostInterface`, added to ``rm`` (its
    counters ``counter_width`` bits wide)."""
    rm.add_register("cp_base", 32, doc="byte address of the command list (16-byte and "
                                      "beat aligned)")
    rm.add_register("cp_control", access="pulse",
                    fields={"go": (1, "run the command list at cp_base (clears the counters "
                                      "of the host interface)")})
    rm.add_register("cp_status", access="ro", fields={
        "busy": (1, "the command list is running"),
        "done": (1, "the last list reached its END"),
        "error": (1, "the last list stopped at an error (cp_error)")})
    rm.add_register("cp_error", access="ro",
                    fields={"code": (4, "1 misaligned, 2 beyond mem_limit, 3 memory error, "
                                        "4 opcode, 5 target, 6 WAIT timeout")})
    rm.add_register("cp_error_at", 32, "ro", doc="byte address of the failing command")
    rm.add_register("mem_limit", 32, doc="bytes of memory the command list may use (0: any)")
    rm.add_register("wait_limit", 32, doc="polls a WAIT may take before an error (0: no limit)")
    rm.add_register("mem_page", 32 - (window_bits + 2),
                    doc=f"memory window page: window word i is byte (mem_page << "
                        f"{window_bits + 2}) + 4 i")
    for name, doc in HOST_COUNTERS:
        rm.add_register(name, counter_width, "ro", doc=doc)
    rm.add_window("memory", 1 << window_bits, 32, "rw",
                  doc="the memory behind the AXI4 master, one 32-bit word per address, page "
                      "mem_page")
    return rm


class HostArbiter(wiring.Component):
    """Several host-port masters onto one host port, one access at a time, round robin; a
    read keeps the port until its response has gone back to its master.

    Members
    -------
    ``m{i}_cmd`` : In(stream), ``m{i}_rsp`` : Out(stream) for each master; ``cmd`` : Out,
    ``rsp`` : In to the host port.
    """

    def __init__(self, masters: int, addr_width: int, data_width: int = 32):
        self._n = masters
        layout = command_layout(addr_width, data_width)
        members = {"cmd": Out(stream.Signature(layout)), "rsp": In(stream.Signature(data_width))}
        for i in range(masters):
            members[f"m{i}_cmd"] = In(stream.Signature(layout))
            members[f"m{i}_rsp"] = Out(stream.Signature(data_width))
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        n = self._n
        cmds = [getattr(self, f"m{i}_cmd") for i in range(n)]
        rsps = [getattr(self, f"m{i}_rsp") for i in range(n)]
        owner = Signal(range(max(2, n)))        # the master granted (round robin from here)
        reading = Signal()                      # a read is waiting for its response
        grant = Signal(range(max(2, n)))
        # The first requesting master from `owner` on.
        for k in reversed(range(n)):
            for i in range(n):
                with m.If((owner == i) & cmds[(i + k) % n].valid):
                    m.d.comb += grant.eq((i + k) % n)
        with m.If(~reading):
            with m.Switch(grant):
                for i in range(n):
                    with m.Case(i):
                        m.d.comb += [self.cmd.valid.eq(cmds[i].valid),
                                     self.cmd.payload.eq(cmds[i].payload),
                                     cmds[i].ready.eq(self.cmd.ready)]
            with m.If(self.cmd.valid & self.cmd.ready):
                m.d.sync += owner.eq(Mux(grant == n - 1, 0, grant + 1))
                with m.If(~self.cmd.payload.write):
                    m.d.sync += [reading.eq(1), owner.eq(grant)]
        with m.Else():
            with m.Switch(owner):
                for i in range(n):
                    with m.Case(i):
                        m.d.comb += [rsps[i].valid.eq(self.rsp.valid),
                                     self.rsp.ready.eq(rsps[i].ready)]
            with m.If(self.rsp.valid & self.rsp.ready):
                m.d.sync += [reading.eq(0), owner.eq(Mux(owner == n - 1, 0, owner + 1))]
        # Every master sees the response's payload (only its owner a valid): the payload does
        # not pass through the owner's decode.
        m.d.comb += [rsp.payload.eq(self.rsp.payload) for rsp in rsps]
        return m


class MemoryWindow(wiring.Component):
    """A host-port window onto the memory: word ``i`` is byte ``(page << (window_bits + 2)) +
    4 i``; each access is one single-beat AXI transaction (a write completes when the memory
    answers, so a read after it sees it). One access at a time.

    Members
    -------
    bus : In(WindowSignature(span, 32))
    page : In(...)
    rd_req : Out(stream), rd_data : In(stream)     the DMA reader (tag TAG_WINDOW)
    wr_req : Out(stream), wr_data : Out(stream), wr_done : In(stream)   the DMA writer
    """

    def __init__(self, *, window_bits: int, data_width: int, rd_req_layout, rd_data_layout,
                 wr_req_layout):
        self._bits, self._dw = window_bits, data_width
        super().__init__({
            "bus": In(WindowSignature(1 << window_bits, 32)),
            "page": In(32 - (window_bits + 2)),
            "rd_req": Out(stream.Signature(rd_req_layout)),
            "rd_data": In(stream.Signature(rd_data_layout)),
            "wr_req": Out(stream.Signature(wr_req_layout)),
            "wr_data": Out(stream.Signature(data.StructLayout({"data": data_width,
                                                               "strb": data_width // 8}))),
            "wr_done": In(stream.Signature(data.StructLayout({"error": 1}))),
        })

    def elaborate(self, platform):
        m = Module()
        dw, bpb = self._dw, self._dw // 8
        req = self.bus.req
        byte_addr = Signal(32)
        m.d.comb += byte_addr.eq(Cat(C(0, 2), req.payload.addr, self.page))
        lanes = dw // 32
        lane = Signal(range(max(2, lanes)))
        word = Signal(32)
        shift = (bpb - 1).bit_length()
        beat_addr = Cat(C(0, shift), byte_addr[shift:])
        with m.FSM():
            with m.State("IDLE"):
                with m.If(req.valid & req.payload.write):
                    m.d.sync += [word.eq(req.payload.data),
                                 lane.eq(byte_addr[2:shift] if lanes > 1 else 0)]
                    m.d.comb += [self.wr_req.valid.eq(1), self.wr_req.payload.addr.eq(beat_addr),
                                 self.wr_req.payload.beats.eq(1)]
                    with m.If(self.wr_req.ready):
                        m.d.comb += req.ready.eq(1)
                        m.next = "WDATA"
                with m.Elif(req.valid):
                    m.d.sync += lane.eq(byte_addr[2:shift] if lanes > 1 else 0)
                    m.d.comb += [self.rd_req.valid.eq(1), self.rd_req.payload.addr.eq(beat_addr),
                                 self.rd_req.payload.beats.eq(1),
                                 self.rd_req.payload.tag.eq(TAG_WINDOW)]
                    with m.If(self.rd_req.ready):
                        m.d.comb += req.ready.eq(1)
                        m.next = "RDATA"
            with m.State("WDATA"):
                m.d.comb += [self.wr_data.valid.eq(1),
                             self.wr_data.payload.data.eq(Cat(*[word] * lanes)),
                             self.wr_data.payload.strb.eq(C(0b1111, 4) << (4 * lane))]
                with m.If(self.wr_data.ready):
                    m.next = "WDONE"
            with m.State("WDONE"):
                m.d.comb += self.wr_done.ready.eq(1)
                with m.If(self.wr_done.valid):
                    m.next = "IDLE"
            with m.State("RDATA"):
                m.d.comb += [self.bus.rsp.valid.eq(self.rd_data.valid),
                             self.bus.rsp.payload.eq(
                                 self.rd_data.payload.data.word_select(lane, 32)
                                 if lanes > 1 else self.rd_data.payload.data),
                             self.rd_data.ready.eq(self.bus.rsp.ready)]
                with m.If(self.rd_data.valid & self.bus.rsp.ready):
                    m.next = "IDLE"
        return m


#: The members a core behind the host interface exposes.
FRONT_ENDS = ("cmd", "rsp", "s_axil", "m_axi", "irq")


class HostCore(wiring.Component):
    """Base of a core behind the host interface: its register map ``rm`` (the core's registers
    and windows) gets ``counters`` (read-only ``counter_width``-bit registers, ``(name,
    description)``), the
    interface's own registers and the bulk ``targets`` (``(name, direction, description)``);
    the :class:`HostInterface` built on it (:attr:`host`) gives the core its members (the
    front ends, the AXI4 master, ``irq``). ``elaborate`` calls :meth:`add_host`.
    """

    def __init__(self, rm: RegisterMap, *, counters=(), targets=(), dma_width: int,
                 max_burst: int, outstanding: int, max_beats: int = 1 << 16,
                 counter_width: int = 32):
        for name, doc in counters:
            rm.add_register(name, counter_width, "ro", doc=doc)
        add_host_interface(rm, counter_width=counter_width)
        for name, direction, doc in targets:
            rm.add_target(name, direction, doc=doc)
        #: The bulk targets' numbers (a LOAD's or STORE's ``target`` field), by name.
        self.target_index = {name: k for k, (name, _, _) in enumerate(targets)}
        self.regmap = rm.freeze()
        self.host = HostInterface(rm, data_width=dma_width, max_burst=max_burst,
                                  outstanding=outstanding, max_beats=max_beats)
        super().__init__({name: member for name, member in self.host.signature.members.items()
                          if name in FRONT_ENDS})

    def add_host(self, m: Module) -> "HostInterface":
        """Add the host interface to ``m`` and connect it to the core's members."""
        m.submodules.host = host = self.host
        for name in ("cmd", "rsp", "s_axil", "m_axi"):
            connect(m, getattr(host, name), wiring.flipped(getattr(self, name)))
        m.d.comb += self.irq.eq(host.irq)
        return host

    def load_gearboxes(self, m: Module, host: "HostInterface", widths: dict,
                       direct: dict | None = None) -> tuple:
        """A :class:`~.streams.Gearbox` from the bus to items for each LOAD target of
        ``widths`` (name -> item width), fed that target's beats; the LOAD's ``ready`` is the
        gearbox's of its target, ``direct[name]`` for a target the core takes beat by beat
        itself, and 1 for the others, which the core takes whole. Returns the gearboxes and
        each target's match (the LOAD beat is for it), by name."""
        ld = host.load
        gears, mine, ready = {}, {}, C(1, 1)
        for name, width in widths.items():
            m.submodules[f"{name}_gear"] = gear = Gearbox(host.data_width, width)
            mine[name] = ld.payload.target == self.target_index[name]
            m.d.comb += [gear.i.valid.eq(ld.valid & mine[name]),
                         gear.i.payload.eq(ld.payload.data), gear.clear.eq(0), gear.flush.eq(0)]
            ready = Mux(mine[name], gear.i.ready, ready)
            gears[name] = gear
        for name, take in (direct or {}).items():
            ready = Mux(ld.payload.target == self.target_index[name], take, ready)
        m.d.comb += ld.ready.eq(ready)
        return gears, mine


class HostInterface(wiring.Component):
    """A core's register map behind two front ends, with the command processor and the AXI4
    master (see the module docstring). ``regmap`` must hold :func:`add_host_interface`'s
    registers and window, and declares the core's bulk targets (``RegisterMap.add_target``).

    Latency: a register access through ``cmd`` as through a :class:`~.hostport.HostPort`, plus a
    cycle of arbitration; through ``s_axil`` as :class:`~.axi.AXI4LiteBridge` adds. Throughput:
    one host access at a time; the DMA, one beat per cycle each way.

    Members
    -------
    cmd : In(stream), rsp : Out(stream)        the stream front end
    s_axil : In(AXI4LiteSignature)             the AXI4-Lite front end
    m_axi : Out(AXI4Signature)                 the memory
    irq : Out(1)                               the last command list ended (done or error)
    regs : Out, status : In (the core's read-only registers), and the core's windows: as a
    HostPort's; load : Out(stream), store_req : Out(stream), store : In(stream(data_width)),
    target_error : In(1)
    """

    #: Registers of the host interface itself (driven here, not by the core).
    OWN_STATUS = ("cp_status", "cp_error", "cp_error_at") + tuple(n for n, _ in HOST_COUNTERS)

    def __init__(self, regmap: RegisterMap, *, data_width: int = 128, max_burst: int = 16,
                 outstanding: int = 4, max_beats: int = 1 << 20):
        self.regmap = regmap.freeze()
        addr_width = 32
        self._dw, self._burst, self._outstanding = data_width, max_burst, outstanding
        self._max_beats, self._aw = max_beats, addr_width
        self.port = HostPort(regmap)
        self._window_bits = (regmap["memory"].span - 1).bit_length()
        core_status = {r.name: r.shape for r in regmap.registers
                       if r.access == "ro" and r.name not in self.OWN_STATUS}
        members = {
            "cmd": In(stream.Signature(command_layout(regmap.addr_width, regmap.data_width))),
            "rsp": Out(stream.Signature(regmap.data_width)),
            "s_axil": In(AXI4LiteSignature(addr_width=regmap.addr_width + 2)),
            "m_axi": Out(AXI4Signature(addr_width=addr_width, data_width=data_width)),
            "irq": Out(1),
            "regs": Out(self.port.regs.shape()),
            "status": In(data.StructLayout(core_status or {"_unused": 1})),
            "load": Out(stream.Signature(load_layout(data_width))),
            "store_req": Out(stream.Signature(store_request_layout(max_beats))),
            "store": In(stream.Signature(data_width)),
            "target_error": In(1),
        }
        for w in regmap.windows:
            if w.name != "memory":
                members[w.name] = Out(WindowSignature(w.span, regmap.data_width))
        super().__init__(members)

    @property
    def data_width(self) -> int:
        return self._dw

    def elaborate(self, platform):
        m = Module()
        rm, dw = self.regmap, self._dw
        m.submodules.port = port = self.port
        m.submodules.arbiter = arb = HostArbiter(3, rm.addr_width, rm.data_width)
        m.submodules.axil = axil = AXI4LiteBridge(addr_width=rm.addr_width + 2,
                                                  cmd_addr_width=rm.addr_width)
        dma = dict(addr_width=self._aw, data_width=dw, max_burst=self._burst,
                   outstanding=self._outstanding, max_beats=self._max_beats)
        m.submodules.reader = reader = DMAReader(**dma, tag_bits=2)
        m.submodules.writer = writer = DMAWriter(**dma)
        m.submodules.cp = cp = CommandProcessor(data_width=dw, host_addr_width=rm.addr_width,
                                                max_beats=self._max_beats, tag_bits=2)
        m.submodules.window = window = MemoryWindow(
            window_bits=self._window_bits, data_width=dw,
            rd_req_layout=reader.req.payload.shape(), rd_data_layout=reader.data.payload.shape(),
            wr_req_layout=writer.req.payload.shape())

        # -- front ends -> arbiter -> host port ---------------------------------------------------
        connect(m, wiring.flipped(self.cmd), arb.m0_cmd)
        connect(m, arb.m0_rsp, wiring.flipped(self.rsp))
        connect(m, wiring.flipped(self.s_axil), axil.axil)
        connect(m, axil.cmd, arb.m1_cmd)
        connect(m, arb.m1_rsp, axil.rsp)
        connect(m, cp.host_cmd, arb.m2_cmd)
        connect(m, arb.m2_rsp, cp.host_rsp)
        # A register slice before the decoder: the arbiter's grant, the AXI4-Lite bridge's state
        # and the command processor's fetch would otherwise share one path with the register
        # decode and every pulse it drives into the core.
        m.submodules.cmd_slice = cmd_slice = SkidBuffer(arb.cmd.payload.shape())
        connect(m, arb.cmd, cmd_slice.i)
        connect(m, cmd_slice.o, port.cmd)
        # And one after it: a response (a register's, or the memory window's) reaches the
        # arbiter and its master's state a cycle later (a read holds the port a cycle longer).
        m.submodules.rsp_slice = rsp_slice = SkidBuffer(arb.rsp.payload.shape())
        connect(m, port.rsp, rsp_slice.i)
        connect(m, rsp_slice.o, arb.rsp)
        m.d.comb += self.regs.eq(port.regs)
        for r in rm.registers:
            if r.access == "ro" and r.name not in self.OWN_STATUS:
                m.d.comb += getattr(port.status, r.name).eq(getattr(self.status, r.name))
        for w in rm.windows:
            if w.name != "memory":
                connect(m, getattr(port, w.name), wiring.flipped(getattr(self, w.name)))
        connect(m, port.memory, window.bus)
        m.d.comb += window.page.eq(port.regs.mem_page)

        # -- AXI4 master -------------------------------------------------------------------------
        for name in self.m_axi.signature.members:
            owner = reader.bus if name.startswith(("ar", "r")) else writer.bus
            member = self.m_axi.signature.members[name]
            if member.flow == Out:
                m.d.comb += getattr(self.m_axi, name).eq(getattr(owner, name))
            else:
                m.d.comb += getattr(owner, name).eq(getattr(self.m_axi, name))

        # -- reader: requests from the command processor first, then the window; data by tag -----
        with m.If(cp.rd_req.valid):
            connect(m, cp.rd_req, reader.req)
        with m.Else():
            connect(m, window.rd_req, reader.req)
        tag = reader.data.payload.tag
        for_window = tag == TAG_WINDOW
        m.d.comb += [
            cp.rd_data.payload.eq(reader.data.payload), window.rd_data.payload.eq(reader.data.payload),
            cp.rd_data.valid.eq(reader.data.valid & ~for_window),
            window.rd_data.valid.eq(reader.data.valid & for_window),
            reader.data.ready.eq(Mux(for_window, window.rd_data.ready, cp.rd_data.ready)),
            cp.rd_busy.eq(reader.busy),
        ]

        # -- writer: one request at a time, its data from whoever asked ---------------------------
        window_owns = Signal()
        with m.If(cp.wr_req.valid):
            connect(m, cp.wr_req, writer.req)
        with m.Else():
            connect(m, window.wr_req, writer.req)
        with m.If(writer.req.valid & writer.req.ready):
            m.d.sync += window_owns.eq(~cp.wr_req.valid)
        # The processor hears of its writes through a register slice: its next-state logic (a
        # posted STORE's end, the error it may carry) then starts at flip-flops, not at the
        # writer's response counting.
        m.submodules.done_slice = done_slice = SkidBuffer(writer.done.payload.shape())
        connect(m, done_slice.o, cp.wr_done)
        with m.If(window_owns):
            connect(m, window.wr_data, writer.data)
            connect(m, writer.done, window.wr_done)
        with m.Else():
            connect(m, writer.done, done_slice.i)
            with m.If(cp.store_flush):
                m.d.comb += [writer.data.valid.eq(1), writer.data.payload.strb.eq(0)]
            with m.Elif(cp.storing):
                m.d.comb += [writer.data.valid.eq(self.store.valid),
                             writer.data.payload.data.eq(self.store.payload),
                             writer.data.payload.strb.eq(-1),
                             self.store.ready.eq(writer.data.ready)]

        # -- command processor ---------------------------------------------------------------------
        # The target's verdict a cycle late (the processor waits for it: a STORE is posted the
        # cycle after the core took it, a LOAD ends once its beats have drained), so the
        # target's checks and the processor's next-state logic are not one path.
        target_error = Signal()
        m.d.sync += target_error.eq(self.target_error)
        regs = port.regs
        go = regs.cp_control.go
        # A register stage between the processor and the core's targets: the target's checks
        # (counts, a multiplier) would otherwise lie on one path with the processor's state, the
        # read channel's ready and the memory's response (the one-PE LoAS core's critical path).
        # A skid buffer, not a FIFO: its beat comes from flip-flops, not a LUT RAM read, since
        # each target decodes it in the same cycle.
        m.submodules.load_buffer = load_buffer = SkidBuffer(load_layout(dw))
        connect(m, cp.load, load_buffer.i)
        connect(m, load_buffer.o, wiring.flipped(self.load))
        m.d.comb += cp.load_drained.eq(~load_buffer.o.valid & load_buffer.i.ready)
        connect(m, cp.store_req, wiring.flipped(self.store_req))
        m.d.comb += [
            cp.go.eq(go), cp.base.eq(regs.cp_base), cp.mem_limit.eq(regs.mem_limit),
            cp.wait_limit.eq(regs.wait_limit), cp.targets.eq(rm.target_mask),
            cp.target_error.eq(target_error),
            port.status.cp_status.busy.eq(cp.busy), port.status.cp_status.done.eq(cp.done),
            port.status.cp_status.error.eq(cp.error), port.status.cp_error.code.eq(cp.code),
            port.status.cp_error_at.eq(cp.error_at),
            self.irq.eq(cp.done | cp.error),
        ]

        # -- counters ------------------------------------------------------------------------------
        bpb = dw // 8
        m.submodules.counters = counters = PerfCounters({
            "total_cycles": 1, "commands": 1, "dma_read_bytes": bpb.bit_length(),
            "dma_write_bytes": bpb.bit_length(), "dma_read_bursts": 1, "dma_write_bursts": 1,
            "mem_stall_cycles": 1}, width=self.regmap["total_cycles"].width)
        inc = counters.inc
        m.d.comb += [
            counters.clear.eq(go),
            inc.total_cycles.eq(cp.busy),
            inc.commands.eq(cp.executed),
            inc.dma_read_bytes.eq(Mux(reader.beat, bpb, 0)),
            inc.dma_write_bytes.eq(Mux(writer.beat, popcount(writer.bus.wstrb), 0)),
            inc.dma_read_bursts.eq(reader.burst),
            inc.dma_write_bursts.eq(writer.burst),
            inc.mem_stall_cycles.eq((cp.loading & load_buffer.i.ready & ~cp.load.valid)
                                    | (cp.storing & self.store.valid & ~self.store.ready)),
        ]
        for name, _ in HOST_COUNTERS:
            m.d.comb += getattr(port.status, name).eq(getattr(counters.count, name))
        return m
