"""The command processor: runs a list of commands from memory, so that one start runs a whole job.

Each command is 16 bytes (four little-endian 32-bit words), fetched ahead of execution:

======  ==========================  ==================  ===================  ===============
opcode  meaning                     word 1              word 2               word 3
======  ==========================  ==================  ===================  ===============
0 END   stop; ``done``
1 WRITE register write              register address    value
2 WAIT  poll a register until       register address    mask                 value
        ``(reg & mask) == value``
3 LOAD  memory -> core target       byte address        beats                argument
4 STORE core target -> memory       byte address        beats                argument
======  ==========================  ==================  ===================  ===============

Word 0 holds the opcode (bits 0..3), the core's bulk *target* (bits 4..7) and its *select*
(bits 8..15, e.g. a first PE). A LOAD streams its beats to the core's ``load`` port tagged with
target, select and argument; a STORE asks the core's ``store`` port for that many beats. A
STORE is *posted*: once the core and the writer have taken it, LOADs that follow run while its
beats are written (the AXI read and write channels are independent); any other command waits
until the writes are done, so a WRITE never changes a bank a store still reads and a WAIT orders
a LOAD after the STORE whose bytes it reads back. The
list's address and every LOAD/STORE address are beat-aligned. The processor stops at the first
error with a code (:data:`ERRORS`) and the address of the failing command: a misaligned or
out-of-range address (beyond ``mem_limit`` bytes, if set), a memory error response, an unknown
opcode or target, a target that reports a format error, or a WAIT longer than ``wait_limit``
cycles -- never a hang.
"""

from __future__ import annotations

from amaranth import *
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .dma import read_request_layout, write_request_layout
from .hostport import command_layout
from .streams import StreamFIFO

#: Cycles a core may take to report a target error after the beat or request that caused it
#: (its checks end in registers); the host interface registers the verdict once more.
VERDICT_CYCLES = 2

__all__ = ["VERDICT_CYCLES", "CommandProcessor", "OPCODES", "ERRORS", "COMMAND_BYTES",
           "load_layout", "store_request_layout", "TAG_FETCH", "TAG_LOAD"]

OPCODES = {"END": 0, "WRITE": 1, "WAIT": 2, "LOAD": 3, "STORE": 4}
ERRORS = {1: "misaligned address", 2: "address beyond mem_limit", 3: "memory error response",
          4: "unknown opcode", 5: "bad target or target format error", 6: "WAIT timed out"}
COMMAND_BYTES = 16
TAG_FETCH, TAG_LOAD = 0, 1

_command_layout = data.StructLayout({
    "op": 4, "target": 4, "sel": 8, "reserved": 16, "addr": 32, "count": 32, "arg": 32})


def load_layout(data_width: int) -> data.StructLayout:
    """A LOAD beat at the core: the data, its target, select and argument, and the first/last
    beat of the LOAD."""
    return data.StructLayout({"data": data_width, "target": 4, "sel": 8, "arg": 32, "first": 1,
                              "last": 1})


def store_request_layout(max_beats: int) -> data.StructLayout:
    """What a STORE asks of the core: its target, select, argument and the number of beats."""
    return data.StructLayout({"target": 4, "sel": 8, "arg": 32, "beats": range(max_beats + 1)})


class CommandProcessor(wiring.Component):
    """Fetches and executes the command list (see the module docstring).

    Commands are prefetched in groups of ``prefetch`` into a FIFO of two groups; a group is
    requested only when the FIFO has room for all of it, so fetched commands never stall the read
    channel that the loads share. One command executes at a time: a WRITE takes two cycles, a
    WAIT four per poll, a LOAD or STORE one beat per cycle at best; a STORE's writes overlap the
LOADs after it.

    Members
    -------
    go : In(1)                  start at ``base``
    base, mem_limit, wait_limit : In(32)    (``wait_limit``: polls; 0 = no limit)
    busy, done, error : Out(1); code : Out(4); error_at : Out(32)
    executed : Out(1)           a command finished this cycle
    host_cmd : Out(stream), host_rsp : In(stream)      the host port, for WRITE and WAIT
    rd_req : Out(stream), rd_data : In(stream)         the DMA reader (tags TAG_FETCH, TAG_LOAD)
    rd_busy : In(1)             the reader has requests in flight
    wr_req : Out(stream), wr_done : In(stream)         the DMA writer (data: the core's store)
    load : Out(stream(load_layout)), store_req : Out(stream(store_request_layout))
    loading : Out(1)            a LOAD's beats go from the reader to the core
    storing : Out(1)            a STORE's beats go from the core to the writer (until its writes
                                are done: a posted STORE keeps it high)
    store_flush : Out(1)        a failed STORE: the writer gets empty beats (nothing written)
    targets : In(16)            bit t: the core has bulk target t
    target_error : In(1)        the core found a LOAD or STORE it cannot serve: for a STORE at
                                most ``VERDICT_CYCLES + 2`` cycles after the core took the
                                request, for a LOAD at most ``VERDICT_CYCLES`` cycles after its
                                beats drained
    load_drained : In(1)        every LOAD beat handed out has reached the core (a buffer may
                                sit between ``load`` and the core)
    """

    def __init__(self, *, data_width: int, host_addr_width: int, max_beats: int = 1 << 20,
                 prefetch: int = 4, tag_bits: int = 2):
        self._dw = data_width
        self._prefetch = prefetch
        super().__init__({
            "go": In(1), "base": In(32), "mem_limit": In(32), "wait_limit": In(32),
            "busy": Out(1), "done": Out(1), "error": Out(1), "code": Out(4), "error_at": Out(32),
            "executed": Out(1),
            "host_cmd": Out(stream.Signature(command_layout(host_addr_width, 32))),
            "host_rsp": In(stream.Signature(32)),
            "rd_req": Out(stream.Signature(read_request_layout(32, max_beats, tag_bits))),
            "rd_data": In(stream.Signature(data.StructLayout({
                "data": data_width, "tag": max(1, tag_bits), "last": 1, "error": 1}))),
            "rd_busy": In(1),
            "wr_req": Out(stream.Signature(write_request_layout(32, max_beats))),
            "wr_done": In(stream.Signature(data.StructLayout({"error": 1}))),
            "load": Out(stream.Signature(load_layout(data_width))),
            "store_req": Out(stream.Signature(store_request_layout(max_beats))),
            "loading": Out(1), "storing": Out(1), "store_flush": Out(1),
            "targets": In(16),
            "target_error": In(1), "load_drained": In(1),
        })

    def elaborate(self, platform):
        m = Module()
        dw, bpb = self._dw, self._dw // 8
        cmd_bits = 8 * COMMAND_BYTES
        beats_per_group = max(1, self._prefetch * cmd_bits // dw)
        depth = 2 * beats_per_group

        # -- prefetch: groups of command beats into the FIFO -------------------------------------
        # In block RAM; one entry more than the flow control below admits, so that the head
        # register (which a buffered FIFO counts in its depth) never makes a fetched beat wait.
        m.submodules.fifo = fifo = StreamFIFO(dw, depth + 1, buffered=True)
        running = Signal()        # between go and END/error
        fetching = Signal()       # more groups may be fetched
        flushing = Signal()       # after END or an error: what was fetched is dropped
        fetch_addr = Signal(32)
        owed = Signal(range(depth + 1))       # fetch beats requested, not yet arrived
        shift = (bpb - 1).bit_length()
        # A group never reads past mem_limit: the last one may be short, and none is fetched
        # once the list reaches the limit. The decision's comparisons end in registers: in the
        # cycle after a fetch or a go they are stale, and nothing is decided then (room only
        # grows otherwise, as commands leave the FIFO). The bytes left below the limit are a
        # register moved with `fetch_addr` (mem_limit holds still while a list runs): the
        # decision compares it, not a difference computed in the same cycle.
        left_bytes = Signal(signed(34))       # mem_limit - fetch_addr
        left_beats = Signal(32)
        m.d.comb += left_beats.eq(Mux(left_bytes < 0, 0, left_bytes[shift:33]))
        unlimited = self.mem_limit == 0
        beats = Signal(range(beats_per_group + 1))
        in_range = Signal()
        room = Signal()
        stale = Signal()
        fetched = Signal()
        m.d.sync += [
            beats.eq(Mux(unlimited | (left_beats >= beats_per_group), beats_per_group,
                         left_beats)),
            in_range.eq(unlimited | (left_beats != 0)),
            room.eq(fifo.level + owed + beats_per_group <= depth),
            stale.eq(fetched | self.go),
        ]
        fetch = Signal()
        m.d.comb += fetch.eq(running & fetching & in_range & room & ~stale)
        m.d.comb += [
            self.rd_req.valid.eq(fetch),
            self.rd_req.payload.addr.eq(fetch_addr),
            self.rd_req.payload.beats.eq(beats),
            self.rd_req.payload.tag.eq(TAG_FETCH),
        ]
        is_fetch = self.rd_data.payload.tag == TAG_FETCH
        m.d.comb += [fifo.i.valid.eq(self.rd_data.valid & is_fetch & ~flushing),
                     fifo.i.payload.eq(self.rd_data.payload.data)]
        load_ready = Signal()
        m.d.comb += self.rd_data.ready.eq(flushing | Mux(is_fetch, fifo.i.ready, load_ready))
        m.d.comb += fetched.eq(self.rd_req.valid & self.rd_req.ready
                               & (self.rd_req.payload.tag == TAG_FETCH))
        # Written without `rd_data.ready`: that mux also carries a LOAD's ready from the core.
        arrived = self.rd_data.valid & is_fetch & (flushing | fifo.i.ready)
        m.d.sync += owed.eq(owed + Mux(fetched, beats, 0) - arrived)
        with m.If(fetched):
            m.d.sync += [fetch_addr.eq(fetch_addr + (beats << shift)),
                         left_bytes.eq(left_bytes - (beats << shift))]
        with m.If(running & fetching & ~in_range & ~stale):
            m.d.sync += fetching.eq(0)            # the list would run past mem_limit

        # Beats -> 128-bit commands.
        command = Signal(_command_layout)
        command_valid = Signal()
        take = Signal()
        if dw >= cmd_bits:
            per_beat = dw // cmd_bits
            part = Signal(range(max(2, per_beat)))
            m.d.comb += [command.eq(fifo.o.payload.word_select(part, cmd_bits)
                                    if per_beat > 1 else fifo.o.payload),
                         command_valid.eq(fifo.o.valid),
                         fifo.o.ready.eq(flushing | (take & (part == per_beat - 1)))]
            with m.If(take):
                m.d.sync += part.eq(Mux(part == per_beat - 1, 0, part + 1))
            with m.If(flushing):
                m.d.sync += part.eq(0)
        else:
            per_command = cmd_bits // dw
            acc = Signal(cmd_bits)
            have = Signal(range(per_command + 1))
            m.d.comb += [command.eq(acc), command_valid.eq(have == per_command),
                         fifo.o.ready.eq(flushing | (have < per_command))]
            with m.If(fifo.o.valid & fifo.o.ready & ~flushing):
                m.d.sync += [acc.eq(Cat(acc[dw:], fifo.o.payload)), have.eq(have + 1)]
            with m.If(take | flushing):
                m.d.sync += have.eq(0)

        # -- execution ---------------------------------------------------------------------------
        cmd = Signal(_command_layout)
        cmd_at = Signal(32)       # address of the executing command
        next_at = Signal(32)
        beats_left = Signal(32)
        # A LOAD beat's first/last flags are registers moved with `beats_left`, and the LOAD's
        # payload is driven in every state (it means something only with `valid`): no state
        # decode or 32-bit comparison gates the load buffer's wide registers.
        first_beat = Signal()
        last_beat = Signal()
        m.d.comb += [
            self.load.payload.data.eq(self.rd_data.payload.data),
            self.load.payload.target.eq(cmd.target),
            self.load.payload.sel.eq(cmd.sel),
            self.load.payload.arg.eq(cmd.arg),
            self.load.payload.first.eq(first_beat),
            self.load.payload.last.eq(last_beat),
        ]
        polls = Signal(32)
        code = Signal(4)
        store_issued = Signal()
        # Cycles since the core took the STORE (or since the LOAD's beats drained), up to the
        # verdict's latency: then its verdict is in.
        settle = Signal(range(VERDICT_CYCLES + 3))
        store_settled = settle == VERDICT_CYCLES + 2
        drained_for = Signal(range(VERDICT_CYCLES + 1))
        load_settled = drained_for == VERDICT_CYCLES
        with m.If(~self.load_drained):
            m.d.sync += drained_for.eq(0)
        with m.Elif(~load_settled):
            m.d.sync += drained_for.eq(drained_for + 1)
        matched = Signal()        # the last poll's value matched
        timed_out = Signal()      # ... and it was the last poll allowed
        write_issued = Signal()
        store_pending = Signal()  # a posted STORE's writes are not done yet
        store_at = Signal(32)
        m.d.comb += self.storing.eq(store_pending)
        m.d.comb += [self.code.eq(code), self.error.eq(code != 0), self.busy.eq(running)]

        # The failing command's address goes to error_at a cycle after the failure, from a
        # register naming its source (each source holds still by then): the failure's decision
        # then ends in two flip-flops, not in the enables of 32.
        err_src = Signal(2)       # 0 the command, 1 the next fetch, 2 base, 3 a posted STORE
        err_load = Signal()
        m.d.sync += err_load.eq(0)
        with m.If(err_load):
            m.d.sync += self.error_at.eq(Array([cmd_at, next_at, self.base, store_at])[err_src])

        def error_at(source):
            return [err_src.eq(source), err_load.eq(1)]

        def fail(reason):
            m.d.sync += [code.eq(reason), *error_at(0), running.eq(0),
                         fetching.eq(0), flushing.eq(1)]

        aligned = (cmd.addr[:shift] == 0) if shift else C(1)
        end_addr = Signal(33)             # cmd's end, summed as the command is taken
        fits = (self.mem_limit == 0) | (end_addr <= self.mem_limit)
        known = self.targets.bit_select(cmd.target, 1)
        base_shift = max(4, shift)
        load_beat = self.rd_data.valid & ~is_fetch

        with m.FSM():
            with m.State("IDLE"):
                with m.If(self.go):
                    m.d.sync += [code.eq(0), self.done.eq(0), fetch_addr.eq(self.base),
                                 left_bytes.eq(self.mem_limit - self.base),
                                 next_at.eq(self.base), owed.eq(0)]
                    with m.If(self.base[:base_shift] != 0):
                        m.d.sync += [code.eq(1), *error_at(2)]
                    with m.Else():
                        m.d.sync += [running.eq(1), fetching.eq(1), flushing.eq(0)]
                        m.next = "NEXT"
            with m.State("NEXT"):
                m.d.comb += take.eq(command_valid)
                with m.If(command_valid):
                    m.d.sync += [cmd.eq(command), cmd_at.eq(next_at),
                                 end_addr.eq(command.addr + command.count * bpb),
                                 next_at.eq(next_at + COMMAND_BYTES), polls.eq(0),
                                 beats_left.eq(command.count), first_beat.eq(1),
                                 last_beat.eq(command.count == 1), store_issued.eq(0),
                                 settle.eq(0), write_issued.eq(0)]
                    m.next = "DECODE"
                with m.Elif(~fetching & (owed == 0) & (fifo.level == 0)):
                    # The list ran past mem_limit without an END.
                    m.d.sync += [code.eq(2), *error_at(1), running.eq(0),
                                 flushing.eq(1)]
                    m.next = "DRAIN"
            with m.State("DECODE"):
                with m.If(store_pending & (cmd.op != OPCODES["LOAD"])):
                    m.next = "STORE_WAIT"
                with m.Else():
                    with m.Switch(cmd.op):
                        with m.Case(OPCODES["END"]):
                            m.d.sync += [running.eq(0), fetching.eq(0), flushing.eq(1)]
                            m.d.comb += self.executed.eq(1)
                            m.next = "DRAIN"
                        with m.Case(OPCODES["WRITE"]):
                            m.next = "WRITE"
                        with m.Case(OPCODES["WAIT"]):
                            m.next = "POLL"
                        with m.Case(OPCODES["LOAD"], OPCODES["STORE"]):
                            with m.If(~aligned):
                                fail(1)
                                m.next = "DRAIN"
                            with m.Elif(~fits):
                                fail(2)
                                m.next = "DRAIN"
                            with m.Elif(~known):
                                fail(5)
                                m.next = "DRAIN"
                            with m.Elif(cmd.count == 0):
                                m.d.comb += self.executed.eq(1)
                                m.next = "NEXT"
                            with m.Elif(cmd.op == OPCODES["LOAD"]):
                                m.next = "LOAD_REQ"
                            with m.Else():
                                m.next = "STORE"
                        with m.Default():
                            fail(4)
                            m.next = "DRAIN"
            with m.State("WRITE"):
                m.d.comb += [self.host_cmd.valid.eq(1), self.host_cmd.payload.write.eq(1),
                             self.host_cmd.payload.addr.eq(cmd.addr),
                             self.host_cmd.payload.data.eq(cmd.count)]
                with m.If(self.host_cmd.ready):
                    m.d.comb += self.executed.eq(1)
                    m.next = "NEXT"
            with m.State("POLL"):
                m.d.comb += [self.host_cmd.valid.eq(1), self.host_cmd.payload.write.eq(0),
                             self.host_cmd.payload.addr.eq(cmd.addr)]
                with m.If(self.host_cmd.ready):
                    m.d.sync += polls.eq(polls + 1)
                    m.next = "POLL_RSP"
            with m.State("POLL_RSP"):
                # The comparison ends in a register: the response comes through the arbiter.
                m.d.comb += self.host_rsp.ready.eq(1)
                with m.If(self.host_rsp.valid):
                    m.d.sync += [matched.eq((self.host_rsp.payload & cmd.count) == cmd.arg),
                                 timed_out.eq((self.wait_limit != 0)
                                              & (polls >= self.wait_limit))]
                    m.next = "POLL_CHECK"
            with m.State("POLL_CHECK"):
                with m.If(matched):
                    m.d.comb += self.executed.eq(1)
                    m.next = "NEXT"
                with m.Elif(timed_out):
                    fail(6)
                    m.next = "DRAIN"
                with m.Else():
                    m.next = "POLL"
            with m.State("LOAD_REQ"):
                # The load's request goes before any further fetch (this state owns rd_req).
                m.d.comb += [self.rd_req.valid.eq(1), self.rd_req.payload.addr.eq(cmd.addr),
                             self.rd_req.payload.beats.eq(cmd.count),
                             self.rd_req.payload.tag.eq(TAG_LOAD)]
                with m.If(self.rd_req.ready):
                    m.next = "LOAD"
            with m.State("LOAD"):
                m.d.comb += [
                    self.load.valid.eq(load_beat),
                    load_ready.eq(self.load.ready),
                    self.loading.eq(1),
                ]
                with m.If(load_beat & self.load.ready):
                    m.d.sync += [beats_left.eq(beats_left - 1), first_beat.eq(0),
                                 last_beat.eq(beats_left == 2)]
                    with m.If(self.rd_data.payload.error):
                        m.d.sync += code.eq(3)
                    with m.If(last_beat):
                        m.next = "LOAD_END"
                with m.If(self.target_error):
                    fail(5)
                    m.next = "DRAIN"
            with m.State("LOAD_END"):
                # Until the last beat has reached the target, which reports a format error in
                # the cycle it takes a beat.
                with m.If(self.target_error):
                    fail(5)
                    m.next = "DRAIN"
                with m.Elif(~load_settled):
                    pass
                with m.Elif(code != 0):
                    fail(3)
                    m.next = "DRAIN"
                with m.Else():
                    m.d.comb += self.executed.eq(1)
                    m.next = "NEXT"
            with m.State("STORE"):
                m.d.comb += [
                    self.store_req.valid.eq(~store_issued),
                    self.store_req.payload.target.eq(cmd.target),
                    self.store_req.payload.sel.eq(cmd.sel),
                    self.store_req.payload.arg.eq(cmd.arg),
                    self.store_req.payload.beats.eq(cmd.count),
                    self.wr_req.valid.eq(~write_issued),
                    self.wr_req.payload.addr.eq(cmd.addr),
                    self.wr_req.payload.beats.eq(cmd.count),
                    self.storing.eq(1),
                ]
                with m.If(self.store_req.valid & self.store_req.ready):
                    m.d.sync += store_issued.eq(1)
                with m.If(store_issued & ~store_settled):
                    m.d.sync += settle.eq(settle + 1)
                with m.If(self.wr_req.valid & self.wr_req.ready):
                    m.d.sync += write_issued.eq(1)
                with m.If(self.target_error):
                    fail(5)
                    m.next = "FLUSH_STORE"
                with m.Elif(store_settled & write_issued):
                    # Posted: the writes finish on their own (see STORE_WAIT).
                    m.d.sync += [store_pending.eq(1), store_at.eq(cmd_at)]
                    m.d.comb += self.executed.eq(1)
                    m.next = "NEXT"
            with m.State("STORE_WAIT"):
                m.d.comb += self.wr_done.ready.eq(1)
                with m.If(self.wr_done.valid):
                    m.d.sync += store_pending.eq(0)
                    with m.If(self.wr_done.payload.error):
                        m.d.sync += [code.eq(3), *error_at(3), running.eq(0),
                                     fetching.eq(0), flushing.eq(1)]
                        m.next = "DRAIN"
                    with m.Else():
                        m.next = "DECODE"
            with m.State("FLUSH_STORE"):
                # The writer still wants its beats: it gets empty ones (no byte written).
                m.d.comb += [self.wr_req.valid.eq(~write_issued),
                             self.wr_req.payload.addr.eq(cmd.addr),
                             self.wr_req.payload.beats.eq(cmd.count),
                             self.store_flush.eq(1), self.wr_done.ready.eq(1)]
                with m.If(self.wr_req.valid & self.wr_req.ready):
                    m.d.sync += write_issued.eq(1)
                with m.If(self.wr_done.valid):
                    m.next = "DRAIN"
            with m.State("DRAIN"):
                # Beats still in flight (fetched commands, the rest of a failed load) are
                # dropped and a posted store finishes; then the processor is free.
                m.d.comb += self.wr_done.ready.eq(store_pending)
                with m.If(self.wr_done.valid & store_pending):
                    m.d.sync += store_pending.eq(0)
                with m.If(~self.rd_busy & ~self.rd_data.valid & (fifo.level == 0)
                          & ~store_pending & self.load_drained):
                    m.d.sync += [flushing.eq(0), self.done.eq(code == 0), owed.eq(0)]
                    m.next = "IDLE"
        return m
