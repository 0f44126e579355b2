"""AXI4 and AXI4-Lite interfaces, and the AXI4-Lite front end of the host port.

Signals are named as in the AMBA specification (``awaddr``, ``rdata``, ...), so that a member
``m_axi`` of a core top becomes the Verilog ports ``m_axi__awaddr`` ... -- what third-party
models such as cocotbext-axi find with the prefix ``m_axi_``. Bursts are always INCR; the
master's IDs are constant (responses come back in order).
"""

from __future__ import annotations

from amaranth import *
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from .hostport import command_layout

__all__ = ["AXI4Signature", "AXI4LiteSignature", "AXI4LiteBridge", "RESP_OKAY", "RESP_SLVERR",
           "BURST_INCR"]

RESP_OKAY, RESP_SLVERR = 0, 2
BURST_INCR = 1


class AXI4Signature(wiring.Signature):
    """An AXI4 memory-mapped interface, seen from its master (``Out``: driven by the master).

    Parameters: ``addr_width`` (byte address), ``data_width`` (32..512, a power of two),
    ``id_width``."""

    def __init__(self, *, addr_width=32, data_width=128, id_width=1):
        if data_width not in (32, 64, 128, 256, 512):
            raise ValueError(f"data_width must be one of 32, 64, 128, 256, 512, not "
                             f"{data_width!r}")
        if not isinstance(addr_width, int) or not 12 <= addr_width <= 64:
            raise ValueError(f"addr_width must be an integer in 12..64, not {addr_width!r}")
        self.addr_width, self.data_width, self.id_width = addr_width, data_width, id_width
        super().__init__({
            "awid": Out(id_width), "awaddr": Out(addr_width), "awlen": Out(8), "awsize": Out(3),
            "awburst": Out(2), "awvalid": Out(1), "awready": In(1),
            "wdata": Out(data_width), "wstrb": Out(data_width // 8), "wlast": Out(1),
            "wvalid": Out(1), "wready": In(1),
            "bid": In(id_width), "bresp": In(2), "bvalid": In(1), "bready": Out(1),
            "arid": Out(id_width), "araddr": Out(addr_width), "arlen": Out(8), "arsize": Out(3),
            "arburst": Out(2), "arvalid": Out(1), "arready": In(1),
            "rid": In(id_width), "rdata": In(data_width), "rresp": In(2), "rlast": In(1),
            "rvalid": In(1), "rready": Out(1),
        })

    @property
    def bytes_per_beat(self) -> int:
        return self.data_width // 8


class AXI4LiteSignature(wiring.Signature):
    """An AXI4-Lite interface, seen from its master; 32-bit data."""

    def __init__(self, *, addr_width=16):
        self.addr_width = addr_width
        super().__init__({
            "awaddr": Out(addr_width), "awprot": Out(3), "awvalid": Out(1), "awready": In(1),
            "wdata": Out(32), "wstrb": Out(4), "wvalid": Out(1), "wready": In(1),
            "bresp": In(2), "bvalid": In(1), "bready": Out(1),
            "araddr": Out(addr_width), "arprot": Out(3), "arvalid": Out(1), "arready": In(1),
            "rdata": In(32), "rresp": In(2), "rvalid": In(1), "rready": Out(1),
        })


class AXI4LiteBridge(wiring.Component):
    """The AXI4-Lite slave front end of a host port: each AXI4-Lite access becomes one host
    command (``addr`` = byte address / 4), each read's response its read data.

    One access at a time, reads and writes alternating when both wait. A write is accepted with
    its address and data together; a write with a partial byte strobe is refused (SLVERR, nothing
    written), as the register map's registers and windows are whole 32-bit words. Latency: a
    write's response two cycles after it is accepted (command, then response); a read's data as
    soon as the host port answers (two cycles for a register). Throughput: one access per three
    cycles at best.

    Members
    -------
    axil : In(AXI4LiteSignature(addr_width))
    cmd : Out(stream.Signature(command_layout(cmd_addr_width, 32)))
    rsp : In(stream.Signature(32))
    """

    def __init__(self, *, addr_width: int, cmd_addr_width: int):
        self._cmd_aw = cmd_addr_width
        super().__init__({
            "axil": In(AXI4LiteSignature(addr_width=addr_width)),
            "cmd": Out(stream.Signature(command_layout(cmd_addr_width, 32))),
            "rsp": In(stream.Signature(32)),
        })

    def elaborate(self, platform):
        m = Module()
        bus = self.axil
        addr = Signal(self._cmd_aw)
        data = Signal(32)
        refused = Signal()
        read_next = Signal()                 # alternate when both a read and a write wait
        take_write = bus.awvalid & bus.wvalid & (~bus.arvalid | ~read_next)
        take_read = bus.arvalid & (~(bus.awvalid & bus.wvalid) | read_next)
        with m.FSM():
            with m.State("IDLE"):
                with m.If(take_write):
                    m.d.comb += [bus.awready.eq(1), bus.wready.eq(1)]
                    m.d.sync += [addr.eq(bus.awaddr[2:]), data.eq(bus.wdata),
                                 refused.eq(bus.wstrb != 0b1111), read_next.eq(1)]
                    m.next = "WRITE"
                with m.Elif(take_read):
                    m.d.comb += bus.arready.eq(1)
                    m.d.sync += [addr.eq(bus.araddr[2:]), read_next.eq(0)]
                    m.next = "READ"
            with m.State("WRITE"):
                m.d.comb += [self.cmd.valid.eq(~refused), self.cmd.payload.write.eq(1),
                             self.cmd.payload.addr.eq(addr), self.cmd.payload.data.eq(data)]
                with m.If(refused | self.cmd.ready):
                    m.next = "BRESP"
            with m.State("BRESP"):
                m.d.comb += [bus.bvalid.eq(1), bus.bresp.eq(Mux(refused, RESP_SLVERR, RESP_OKAY))]
                with m.If(bus.bready):
                    m.next = "IDLE"
            with m.State("READ"):
                m.d.comb += [self.cmd.valid.eq(1), self.cmd.payload.write.eq(0),
                             self.cmd.payload.addr.eq(addr)]
                with m.If(self.cmd.ready):
                    m.next = "RDATA"
            with m.State("RDATA"):
                m.d.comb += [bus.rvalid.eq(self.rsp.valid), bus.rdata.eq(self.rsp.payload),
                             bus.rresp.eq(RESP_OKAY), self.rsp.ready.eq(bus.rready)]
                with m.If(self.rsp.valid & bus.rready):
                    m.next = "IDLE"
        return m
