"""The DMA engines of the AXI4 master: reads and writes of whole requests, cut into INCR bursts.

A request names a beat-aligned byte address and a length in beats (``data_width / 8`` bytes
each). Each engine cuts it into bursts of at most ``max_burst`` beats that never cross a 4 KiB
boundary (the AXI rule), and keeps up to ``outstanding`` bursts in flight. All IDs are 0, so
responses return in request order.
"""

from __future__ import annotations

from amaranth import *
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .axi import BURST_INCR, RESP_OKAY, AXI4Signature
from .streams import StreamFIFO

__all__ = ["DMAReader", "DMAWriter", "read_request_layout", "write_request_layout",
           "burst_beats"]


def read_request_layout(addr_width, max_beats, tag_bits):
    return data.StructLayout({"addr": addr_width, "beats": range(max_beats + 1),
                              "tag": max(1, tag_bits)})


def write_request_layout(addr_width, max_beats):
    return data.StructLayout({"addr": addr_width, "beats": range(max_beats + 1)})


def burst_beats(m: Module, addr, remaining, *, bytes_per_beat: int, max_burst: int, name: str):
    """The next burst, planned a cycle ahead: returns ``(beats, ends, planned)``, registers that
    hold ``min(remaining, max_burst, beats left before the next 4 KiB boundary)`` and whether
    that is all of ``remaining``, valid while ``planned``. The caller clears ``planned`` when
    it issues the burst or takes a new request (so that the comparisons never lie between the
    address channel's handshake and the next burst: a burst at most every other cycle, which
    bursts of two beats or more never notice)."""
    shift = (bytes_per_beat - 1).bit_length()
    beats_per_page = 4096 // bytes_per_beat
    to_page = Signal(range(beats_per_page + 1), name=f"{name}_to_page")
    m.d.comb += to_page.eq(beats_per_page - addr[shift:12])
    limit = min(max_burst, beats_per_page)
    beats = Signal(range(limit + 1), name=f"{name}_beats")
    ends = Signal(name=f"{name}_ends")
    planned = Signal(name=f"{name}_planned")
    # min(remaining, limit, to_page) from three comparisons side by side, not one after another.
    fits = (remaining <= limit) & (remaining <= to_page)
    n = Mux(fits, remaining, Mux((remaining > limit) & (to_page >= limit), limit, to_page))
    with m.If(~planned):
        m.d.sync += [beats.eq(n), ends.eq(fits), planned.eq(1)]
    return beats, ends, planned


def _axi_members(sig: AXI4Signature, prefixes):
    return {name: member for name, member in sig.members.items()
            if name.startswith(prefixes)}


class DMAReader(wiring.Component):
    """Reads whole requests ``{addr, beats, tag}`` over the AR/R channels; every beat leaves on
    ``data`` with its request's ``tag``, ``last`` on the request's last beat and ``error`` if
    the memory answered with other than OKAY.

    Latency: a burst's address leaves two cycles after its request (or its predecessor burst)
    is taken. Throughput: one beat per cycle; up to ``outstanding`` bursts in flight.

    Members
    -------
    req : In(stream.Signature(read_request_layout(...)))
    data : Out(stream.Signature({data, tag, last, error}))
    bus : Out(the ar*/r* part of AXI4Signature)
    busy : Out(1)      a request is being cut or a burst is in flight
    burst : Out(1)     a burst address was accepted this cycle
    beat : Out(1)      a data beat was taken this cycle
    """

    def __init__(self, *, addr_width=32, data_width=128, max_burst=16, outstanding=4,
                 max_beats=1 << 20, tag_bits=2):
        if not isinstance(max_burst, int) or not 1 <= max_burst <= 256:
            raise ValueError(f"max_burst must be an integer in 1..256, not {max_burst!r}")
        if not isinstance(outstanding, int) or not 1 <= outstanding <= 64:
            raise ValueError(f"outstanding must be an integer in 1..64, not {outstanding!r}")
        self._sig = AXI4Signature(addr_width=addr_width, data_width=data_width)
        self._max_burst, self._outstanding = max_burst, outstanding
        self._tag_bits = max(1, tag_bits)
        super().__init__({
            "req": In(stream.Signature(read_request_layout(addr_width, max_beats, tag_bits))),
            "data": Out(stream.Signature(data.StructLayout({
                "data": data_width, "tag": self._tag_bits, "last": 1, "error": 1}))),
            "bus": Out(wiring.Signature(_axi_members(self._sig, ("ar", "r")))),
            "busy": Out(1), "burst": Out(1), "beat": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        sig, bus = self._sig, self.bus
        bpb = sig.bytes_per_beat
        # The request being cut into bursts.
        addr = Signal(sig.addr_width)
        left = Signal.like(self.req.payload.beats)
        tag = Signal(self._tag_bits)
        cutting = Signal()
        # Bursts in flight: their tag and whether they end their request.
        m.submodules.inflight = inflight = StreamFIFO(
            data.StructLayout({"tag": self._tag_bits, "end": 1}), self._outstanding)
        n, ends, planned = burst_beats(m, addr, left, bytes_per_beat=bpb,
                                       max_burst=self._max_burst, name="rd")
        m.d.comb += [
            self.req.ready.eq(~cutting),
            bus.arvalid.eq(cutting & planned & inflight.i.ready),
            bus.araddr.eq(addr), bus.arlen.eq(n - 1), bus.arsize.eq((bpb - 1).bit_length()),
            bus.arburst.eq(BURST_INCR), bus.arid.eq(0),
            inflight.i.valid.eq(bus.arvalid & bus.arready),
            inflight.i.payload.tag.eq(tag), inflight.i.payload.end.eq(ends),
            self.burst.eq(bus.arvalid & bus.arready),
        ]
        with m.If(self.req.valid & self.req.ready):
            m.d.sync += [addr.eq(self.req.payload.addr), left.eq(self.req.payload.beats),
                         tag.eq(self.req.payload.tag), cutting.eq(self.req.payload.beats != 0),
                         planned.eq(0)]
        with m.If(bus.arvalid & bus.arready):
            m.d.sync += [addr.eq(addr + n * bpb), left.eq(left - n), planned.eq(0)]
            with m.If(ends):
                m.d.sync += cutting.eq(0)
        head = inflight.o.payload
        m.d.comb += [
            self.data.valid.eq(bus.rvalid & inflight.o.valid),
            self.data.payload.data.eq(bus.rdata),
            self.data.payload.tag.eq(head.tag),
            self.data.payload.last.eq(bus.rlast & head.end),
            self.data.payload.error.eq(bus.rresp != RESP_OKAY),
            bus.rready.eq(self.data.ready & inflight.o.valid),
            inflight.o.ready.eq(bus.rvalid & bus.rready & bus.rlast),
            self.beat.eq(bus.rvalid & bus.rready),
            self.busy.eq(cutting | inflight.o.valid),
        ]
        return m


class DMAWriter(wiring.Component):
    """Writes whole requests ``{addr, beats}`` over the AW/W/B channels with the beats of
    ``data`` (``{data, strb}``); once every burst of the request is answered, ``done`` carries
    ``error`` (some response other than OKAY). One request at a time.

    Latency: the first burst address two cycles after the request; ``done`` the cycle after the
    last response. Throughput: one beat per cycle; addresses run up to ``outstanding`` bursts
    ahead of the data.

    Members
    -------
    req : In(stream.Signature(write_request_layout(...)))
    data : In(stream.Signature({data, strb}))
    done : Out(stream.Signature({error}))
    bus : Out(the aw*/w*/b* part of AXI4Signature)
    busy : Out(1)
    burst : Out(1)     a burst address was accepted this cycle
    beat : Out(1)      a data beat was accepted this cycle
    """

    def __init__(self, *, addr_width=32, data_width=128, max_burst=16, outstanding=4,
                 max_beats=1 << 20):
        if not isinstance(max_burst, int) or not 1 <= max_burst <= 256:
            raise ValueError(f"max_burst must be an integer in 1..256, not {max_burst!r}")
        if not isinstance(outstanding, int) or not 1 <= outstanding <= 64:
            raise ValueError(f"outstanding must be an integer in 1..64, not {outstanding!r}")
        self._sig = AXI4Signature(addr_width=addr_width, data_width=data_width)
        self._max_burst, self._outstanding = max_burst, outstanding
        super().__init__({
            "req": In(stream.Signature(write_request_layout(addr_width, max_beats))),
            "data": In(stream.Signature(data.StructLayout({"data": data_width,
                                                           "strb": data_width // 8}))),
            "done": Out(stream.Signature(data.StructLayout({"error": 1}))),
            "bus": Out(wiring.Signature(_axi_members(self._sig, ("aw", "w", "b")))),
            "busy": Out(1), "burst": Out(1), "beat": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        sig, bus = self._sig, self.bus
        bpb = sig.bytes_per_beat
        addr = Signal(sig.addr_width)
        left = Signal.like(self.req.payload.beats)
        active = Signal()                 # a request is being written
        cutting = Signal()                # its bursts are not all issued
        m.submodules.lengths = lengths = StreamFIFO(range(self._max_burst + 1), self._outstanding)
        n, ends, planned = burst_beats(m, addr, left, bytes_per_beat=bpb,
                                       max_burst=self._max_burst, name="wr")
        answers = Signal(16)              # bursts issued and not yet answered
        error = Signal()
        m.d.comb += [
            self.req.ready.eq(~active),
            bus.awvalid.eq(cutting & planned & lengths.i.ready),
            bus.awaddr.eq(addr), bus.awlen.eq(n - 1), bus.awsize.eq((bpb - 1).bit_length()),
            bus.awburst.eq(BURST_INCR), bus.awid.eq(0),
            lengths.i.valid.eq(bus.awvalid & bus.awready), lengths.i.payload.eq(n),
            self.burst.eq(bus.awvalid & bus.awready),
        ]
        with m.If(self.req.valid & self.req.ready):
            m.d.sync += [addr.eq(self.req.payload.addr), left.eq(self.req.payload.beats),
                         active.eq(1), cutting.eq(self.req.payload.beats != 0), error.eq(0),
                         planned.eq(0)]
        with m.If(bus.awvalid & bus.awready):
            m.d.sync += [addr.eq(addr + n * bpb), left.eq(left - n), planned.eq(0)]
            with m.If(ends):
                m.d.sync += cutting.eq(0)
        # W: the beats of the burst at the head of `lengths`.
        sent = Signal(range(self._max_burst + 1))
        last = sent + 1 == lengths.o.payload
        m.d.comb += [
            bus.wvalid.eq(lengths.o.valid & self.data.valid),
            bus.wdata.eq(self.data.payload.data), bus.wstrb.eq(self.data.payload.strb),
            bus.wlast.eq(last),
            self.data.ready.eq(lengths.o.valid & bus.wready),
            lengths.o.ready.eq(bus.wvalid & bus.wready & last),
            self.beat.eq(bus.wvalid & bus.wready),
        ]
        with m.If(bus.wvalid & bus.wready):
            m.d.sync += sent.eq(Mux(last, 0, sent + 1))
        # B: count the answers; the request is done when all are in.
        m.d.comb += bus.bready.eq(1)
        got_b = bus.bvalid & bus.bready
        m.d.sync += answers.eq(answers + (bus.awvalid & bus.awready) - got_b)
        with m.If(got_b & (bus.bresp != RESP_OKAY)):
            m.d.sync += error.eq(1)
        finished = active & ~cutting & (answers == 0) & ~lengths.o.valid
        m.d.comb += [self.done.valid.eq(finished), self.done.payload.error.eq(error),
                     self.busy.eq(active)]
        with m.If(self.done.valid & self.done.ready):
            m.d.sync += active.eq(0)
        return m
