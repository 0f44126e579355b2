"""A synthesizable AXI4 memory: the slave behind a core's ``m_axi`` on a board.

It serves what the host interface's DMA engines and memory window issue (``hw/common/dma.py``):
INCR bursts of full-width beats with byte strobes, any IDs (echoed), reads and writes
interleaved burst by burst. The storage is block RAM (``lib.memory``: ECP5 DP16KD, iCE40
SB_RAM40_4K) or the iCE40UP5K's single-port SB_SPRAM256KA (16K x 16 bits each, 4 on the
device).
"""

from __future__ import annotations

from amaranth import *
from amaranth.lib import data, memory, wiring
from amaranth.lib.wiring import In, Out

from .axi import AXI4Signature, RESP_OKAY
from .streams import StreamFIFO

__all__ = ["AXI4RAM", "STORAGES", "RESP_DECERR"]

RESP_DECERR = 3
#: The storages and what each is built from.
STORAGES = {"bram": "block RAM (lib.memory)", "spram": "iCE40UP5K SB_SPRAM256KA (16K x 16)"}
SPRAM_BYTES = 1 << 15
SPRAM_COUNT = 4
#: Beats the R FIFO holds: one a cycle with a read in flight and one waiting on the master.
R_DEPTH = 3


class _BlockStorage(wiring.Component):
    """``depth`` words with byte enables, one access a cycle: a read's data the cycle after
    ``rd_en``, held until the next ``rd_en``."""

    def __init__(self, width: int, depth: int):
        self._width, self._depth = width, depth
        super().__init__({"addr": In(range(depth)), "rd_en": In(1), "rd_data": Out(width),
                          "wr_en": In(1), "wr_data": In(width), "wr_strb": In(width // 8)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.mem = mem = memory.Memory(shape=self._width, depth=self._depth, init=[])
        wr = mem.write_port(granularity=8)
        rd = mem.read_port(transparent_for=())
        m.d.comb += [rd.addr.eq(self.addr), rd.en.eq(self.rd_en), self.rd_data.eq(rd.data),
                     wr.addr.eq(self.addr), wr.data.eq(self.wr_data),
                     wr.en.eq(Mux(self.wr_en, self.wr_strb, 0))]
        return m


class _SPRAMStorage(wiring.Component):
    """The same ports as :class:`_BlockStorage` on SB_SPRAM256KA cells: ``width / 16`` side by
    side, ``banks`` deep. An SPRAM reads its address every cycle it is not written, so the
    address of the last read is held between reads."""

    def __init__(self, width: int, depth: int):
        self._width, self._depth = width, depth
        self._lanes = width // 16
        self._banks = depth // (SPRAM_BYTES // 2)
        super().__init__({"addr": In(range(depth)), "rd_en": In(1), "rd_data": Out(width),
                          "wr_en": In(1), "wr_data": In(width), "wr_strb": In(width // 8)})

    def elaborate(self, platform):
        m = Module()
        held = Signal(range(self._depth))
        with m.If(self.rd_en):
            m.d.sync += held.eq(self.addr)
        addr = Mux(self.rd_en | self.wr_en, self.addr, held)
        bank_bits = (self._banks - 1).bit_length()
        row, bank = addr[:14], addr[14:14 + bank_bits] if bank_bits else C(0, 1)
        outputs = []
        for b in range(self._banks):
            lanes = []
            for lane in range(self._lanes):
                out = Signal(16, name=f"spram{b}_{lane}_out")
                # Two nibble enables per byte strobe.
                mask = Cat(*[self.wr_strb[2 * lane + i].replicate(2) for i in range(2)])
                m.submodules[f"spram{b}_{lane}"] = Instance(
                    "SB_SPRAM256KA",
                    i_ADDRESS=row, i_DATAIN=self.wr_data[16 * lane:16 * (lane + 1)],
                    i_MASKWREN=mask, i_WREN=self.wr_en, i_CHIPSELECT=bank == b,
                    i_CLOCK=ClockSignal(), i_STANDBY=0, i_SLEEP=0, i_POWEROFF=1,
                    o_DATAOUT=out)
                lanes.append(out)
            outputs.append(Cat(*lanes))
        read_bank = Signal.like(bank)
        with m.If(self.rd_en):
            m.d.sync += read_bank.eq(bank)
        m.d.comb += self.rd_data.eq(Array(outputs)[read_bank] if self._banks > 1 else outputs[0])
        return m


class AXI4RAM(wiring.Component):
    """``size`` bytes of on-chip memory behind an AXI4 slave.

    One burst at a time; when reads and writes both wait they take turns. Bursts are taken as
    INCR of full-width beats (the only kind the snnforge DMA issues; ``*burst`` and ``*size``
    are not looked at), byte addresses are rounded down to a beat, and a beat beyond ``size``
    answers DECERR (reads give 0, writes are dropped).

    Latency: a read burst's first beat is valid 3 cycles after AR is taken (the storage's output
    lands in a register before the R channel: a block RAM's clock-to-out is most of a cycle on
    the ECP5, and the master's logic sits behind R); a write's response the cycle after its
    last beat. Throughput: one beat per cycle within a burst, plus a cycle between bursts.

    Parameters
    ----------
    data_width : int
        Beat width (32..512 bits, a power of two; SPRAM: 16 x the cells side by side).
    size : int
        Bytes; a power of two of at least two beats (SPRAM: 32 KiB a cell).
    addr_width, id_width : int
        Of the AXI4 interface (the master's).
    storage : str
        ``bram`` or ``spram`` (:data:`STORAGES`).

    Members
    -------
    axi : In(AXI4Signature(addr_width, data_width, id_width))
    """

    def __init__(self, *, data_width: int, size: int, addr_width: int = 32, id_width: int = 1,
                 storage: str = "bram"):
        if storage not in STORAGES:
            raise ValueError(f"storage must be one of {', '.join(STORAGES)}, not {storage!r}")
        sig = AXI4Signature(addr_width=addr_width, data_width=data_width, id_width=id_width)
        bpb = data_width // 8
        if not isinstance(size, int) or size < 2 * bpb or size & (size - 1) \
                or size > 1 << addr_width:
            raise ValueError(f"size must be a power of two of bytes, from two beats "
                             f"({2 * bpb}) to 2**addr_width, not {size!r}")
        if storage == "spram":
            lanes = data_width // 16
            if lanes > SPRAM_COUNT:
                raise ValueError(f"data_width must be at most {16 * SPRAM_COUNT} bits on SPRAM "
                                 f"(16 bits a cell, {SPRAM_COUNT} cells), not {data_width}")
            if size < SPRAM_BYTES * lanes or size > SPRAM_BYTES * SPRAM_COUNT:
                raise ValueError(f"size must be {SPRAM_BYTES * lanes}..{SPRAM_BYTES * SPRAM_COUNT}"
                                 f" bytes on SPRAM with data_width {data_width} (32 KiB a cell, "
                                 f"{lanes} side by side), not {size}")
        self._dw, self._size, self._storage = data_width, size, storage
        super().__init__({"axi": In(sig)})

    def elaborate(self, platform):
        m = Module()
        bus, dw = self.axi, self._dw
        bpb = dw // 8
        shift = (bpb - 1).bit_length()
        depth = self._size // bpb
        store = (_SPRAMStorage if self._storage == "spram" else _BlockStorage)(dw, depth)
        m.submodules.storage = store

        def beat(addr):
            return addr[shift:]

        def inside(index):
            return (index >> (depth - 1).bit_length()) == 0

        m.submodules.r_fifo = r_fifo = StreamFIFO(
            data.StructLayout({"data": dw, "bad": 1}), R_DEPTH)
        landing = Signal()                            # a read's data is at the storage's output
        r_bad = Signal()                              # ... from beyond ``size``
        m.d.comb += [r_fifo.i.valid.eq(landing),
                     r_fifo.i.payload.data.eq(Mux(r_bad, 0, store.rd_data)),
                     r_fifo.i.payload.bad.eq(r_bad)]
        index = Signal(len(bus.araddr) - shift)       # beat index of the next access
        count = Signal(9)                             # beats of the burst done (issued)
        length = Signal(9)                            # beats of the burst
        burst_id = Signal(len(bus.arid))
        delivered = Signal(9)
        bad = Signal()                                # a write beat fell outside
        reads_next = Signal()                         # whose turn when both wait

        m.d.comb += store.addr.eq(index[:(depth - 1).bit_length()])
        with m.FSM():
            with m.State("IDLE"):
                take_read = bus.arvalid & (~bus.awvalid | reads_next)
                with m.If(take_read):
                    m.d.comb += bus.arready.eq(1)
                    m.d.sync += [index.eq(beat(bus.araddr)), length.eq(bus.arlen + 1),
                                 burst_id.eq(bus.arid), count.eq(0), delivered.eq(0),
                                 reads_next.eq(0)]
                    m.next = "READ"
                with m.Elif(bus.awvalid):
                    m.d.comb += bus.awready.eq(1)
                    m.d.sync += [index.eq(beat(bus.awaddr)), length.eq(bus.awlen + 1),
                                 burst_id.eq(bus.awid), count.eq(0), bad.eq(0),
                                 reads_next.eq(1)]
                    m.next = "WRITE"
            with m.State("READ"):
                # A beat read in one cycle is written into the R FIFO in the next; a read is
                # issued only while the FIFO has room for it and for the one landing now.
                issue = (count != length) & (r_fifo.level + landing < R_DEPTH)
                m.d.comb += store.rd_en.eq(issue)
                with m.If(issue):
                    m.d.sync += [index.eq(index + 1), count.eq(count + 1),
                                 r_bad.eq(~inside(index))]
                m.d.sync += landing.eq(issue)
                m.d.comb += [bus.rvalid.eq(r_fifo.o.valid), bus.rid.eq(burst_id),
                             bus.rdata.eq(r_fifo.o.payload.data),
                             bus.rresp.eq(Mux(r_fifo.o.payload.bad, RESP_DECERR, RESP_OKAY)),
                             bus.rlast.eq(delivered + 1 == length),
                             r_fifo.o.ready.eq(bus.rready)]
                with m.If(bus.rvalid & bus.rready):
                    m.d.sync += delivered.eq(delivered + 1)
                    with m.If(delivered + 1 == length):
                        m.next = "IDLE"
            with m.State("WRITE"):
                m.d.comb += [bus.wready.eq(1), store.wr_data.eq(bus.wdata),
                             store.wr_strb.eq(bus.wstrb),
                             store.wr_en.eq(bus.wvalid & inside(index))]
                with m.If(bus.wvalid):
                    m.d.sync += [index.eq(index + 1), count.eq(count + 1)]
                    with m.If(~inside(index)):
                        m.d.sync += bad.eq(1)
                    with m.If(count + 1 == length):
                        m.next = "RESPOND"
            with m.State("RESPOND"):
                m.d.comb += [bus.bvalid.eq(1), bus.bid.eq(burst_id),
                             bus.bresp.eq(Mux(bad, RESP_DECERR, RESP_OKAY))]
                with m.If(bus.bready):
                    m.next = "IDLE"
        return m
