"""The crossbar tile: a bit-exact digital twin of an analog IMC array with bit-serial inputs,
bit-sliced differential weights and ADCs shared across columns."""

from __future__ import annotations

from amaranth import *
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from ...golden.trex.params import XbarParams
from ..common.bits import popcount
from ..common.memory import buffer
from ..common.streams import StreamFIFO

__all__ = ["CrossbarTile", "ROW_GROUP", "GROUPS_PER_SUM"]

#: Rows summed per first-stage popcount, and popcounts per second-stage sum (the column sum
#: is three pipeline stages).
ROW_GROUP = 8
GROUPS_PER_SUM = 4


class CrossbarTile(wiring.Component):
    """``y = x @ w`` per input vector, exactly as ``golden.trex.xbar.xbar_mvm`` computes it.

    The cells (``rows x cols`` levels of ``cell_bits``, :func:`~snnforge.golden.trex.xbar.
    xbar_cells`) sit in one memory word per *conversion round*: round ``c`` holds physical
    columns ``c * n_adc .. c * n_adc + n_adc - 1``, ADC ``a``'s column at bits ``(a * rows + r)
    * cell_bits`` (row ``r``). Each vector is applied plane by plane, most significant first
    (spiking: its one binary plane, weight +1); while a plane is applied the ``n_adc`` ADCs
    convert the ``cols_per_adc`` rounds one per cycle. Vectors wait in a two-deep queue (its
    ``ready`` a register). Pipeline per round: cell read and the plane's bits,
    per-``ROW_GROUP`` popcounts, their sums by ``GROUPS_PER_SUM``, the column sum, the ADC, the
    sign plane's negation, shift-and-add into the column's accumulator (Horner: ``P = 2P +-
    code``); after the last round of the last plane the differential pairs are subtracted and
    shifted by the ADC's LSB, then the slices combined into ``y``.

    With ``code_input`` the tile also takes its ADC codes from outside (``codes``, while
    ``inject`` is set): an analog front end modelled elsewhere (``golden.trex.xbar.NonIdeal``)
    gives, per vector, plane and round, the ``n_adc`` codes that the digital back end then
    shifts and adds instead of its own ADCs'; each round waits for its codes.

    Throughput: one vector per ``planes * cols_per_adc`` cycles (``cols_per_adc`` per spiking
    step), vectors back to back. Latency: ``planes * cols_per_adc +`` :attr:`FIXED_LATENCY`
    cycles from a vector's transfer on ``i`` to its ``y`` on ``o``. The pipeline never stalls:
    a vector starts only when the output FIFO has room for it and every vector ahead of it.

    Ports
    -----
    cells : In(stream of {round, chunk, data}): ``chunk_width`` bits of round ``round``'s word
        (chunk ``chunk``, lowest bits first); writes only while no vector is in flight
    i : In(stream of ``ArrayLayout(signed(in_bits), rows)``): one input vector (spiking: 0/1)
    o : Out(stream of ``ArrayLayout(signed(y_bits), n_out)``): its logical columns
    planes : In: input width in bits (2..in_bits; ignored when spiking)
    spiking : In(1): one binary plane of weight +1 per vector
    adc_bits : In: the ADC resolution used (1..adc_bits); shift : In: the ADC's LSB as 2^shift
    codes : In(stream of ``ArrayLayout(code_bits, n_adc)``), inject : In(1) (``code_input``
        only): a round's codes, ADC ``a``'s at index ``a``, in issue order
    busy : Out(1): a vector is in flight
    read : Out(1): a crossbar read starts (a plane is applied) this cycle
    converting : Out(1): the ``n_adc`` ADCs convert a round this cycle
    """

    #: Cycles after a vector's last round until its ``y`` is offered (pipeline and FIFO).
    FIXED_LATENCY = 11

    def __init__(self, p: XbarParams, *, chunk_width: int = 128, code_input: bool = False):
        if not isinstance(p, XbarParams):
            raise TypeError(f"p must be an XbarParams, not {p!r}")
        if not isinstance(chunk_width, int) or chunk_width < 8:
            raise ValueError(f"chunk_width must be an integer >= 8, not {chunk_width!r}")
        self.p = p
        self.chunk_width = chunk_width
        self.code_input = bool(code_input)
        self.word_bits = p.rows * p.n_adc * p.cell_bits
        self.chunks = -(-self.word_bits // chunk_width)
        self.acc_bits = p.column_bits(True)
        self.y_bits = p.y_bits(True)
        # Room for every vector the pipeline can hold (one per round in the worst case).
        self.out_depth = self.FIXED_LATENCY + 3
        injection = {"codes": In(stream.Signature(data.ArrayLayout(p.code_bits, p.n_adc))),
                     "inject": In(1)} if self.code_input else {}
        super().__init__({
            **injection,
            "cells": In(stream.Signature(data.StructLayout({
                "round": range(max(2, p.cols_per_adc)), "chunk": range(max(2, self.chunks)),
                "data": chunk_width}))),
            "i": In(stream.Signature(data.ArrayLayout(signed(p.in_bits), p.rows))),
            "o": Out(stream.Signature(data.ArrayLayout(signed(self.y_bits), p.n_out))),
            "planes": In(range(p.in_bits + 1)),
            "spiking": In(1),
            "adc_bits": In(range(p.adc_bits + 1)),
            "shift": In(range(p.max_shift + 1)),
            "busy": Out(1),
            "read": Out(1),
            "converting": Out(1),
        })

    def cycles_per_vector(self, planes: int) -> int:
        """Issue cycles of one vector: ``planes * cols_per_adc`` (spiking: planes = 1)."""
        return planes * self.p.cols_per_adc

    def elaborate(self, platform):
        m = Module()
        p = self.p
        rows, n_adc, cb, rounds = p.rows, p.n_adc, p.cell_bits, p.cols_per_adc

        # -- the cells: one word per round, written a chunk at a time ---------------------------
        m.submodules.cells = mem = buffer(shape=self.chunks * self.chunk_width, depth=rounds)
        wr = mem.write_port(granularity=self.chunk_width)
        rd = mem.read_port()
        m.d.comb += [self.cells.ready.eq(1), wr.addr.eq(self.cells.payload.round),
                     wr.data.eq(self.cells.payload.data.replicate(self.chunks))]
        with m.If(self.cells.valid):
            m.d.comb += wr.en.eq(Cat(*[self.cells.payload.chunk == k
                                         for k in range(self.chunks)]))

        # -- sequencer: vector, plane, round ---------------------------------------------------
        m.submodules.out_fifo = out_fifo = StreamFIFO(self.o.payload.shape(), self.out_depth)
        wiring.connect(m, out_fifo.o, wiring.flipped(self.o))
        # The vectors queue in front (a registered ready); the vector in flight is its head,
        # read in place (no wide register to load) and released after its last issue.
        m.submodules.in_queue = queue = StreamFIFO(rows * p.in_bits, 2)
        m.d.comb += [queue.i.valid.eq(self.i.valid), queue.i.payload.eq(self.i.payload),
                     self.i.ready.eq(queue.i.ready)]
        x = queue.o.payload
        active = Signal()
        plane = Signal(range(p.in_bits))
        rnd = Signal(range(max(2, rounds)))
        top = Signal(range(p.in_bits))              # the sign plane of the vector in flight
        spiking = Signal()
        final = Signal()                            # this cycle's issue is the vector's last
        inflight = Signal(range(self.out_depth + 1))
        # Room for one more vector in the output FIFO, a cycle late: the FIFO keeps a slot for
        # the vector that may start meanwhile.
        room = Signal()
        m.d.sync += room.eq(out_fifo.level + inflight + 2 <= self.out_depth)
        last_round = rnd == rounds - 1
        # An issue waits for its codes when they come from outside.
        injecting = Signal()
        go = Signal()
        if self.code_input:
            m.d.comb += [go.eq(~injecting | self.codes.valid),
                         self.codes.ready.eq(active & injecting)]
        else:
            m.d.comb += go.eq(1)
        last_issue = active & final & go
        # Start on an idle tile, or right after the last issue when the next vector waits.
        start = room & Mux(active, final & go & (queue.level == 2), queue.o.valid)
        m.d.comb += queue.o.ready.eq(last_issue)
        with m.If(start):
            first_plane = Mux(self.spiking, 0, self.planes - 1)
            m.d.sync += [active.eq(1), rnd.eq(0),
                         plane.eq(first_plane), top.eq(first_plane), spiking.eq(self.spiking),
                         final.eq((first_plane == 0) & (rounds == 1))]
            if self.code_input:
                m.d.sync += injecting.eq(self.inject)
        with m.Elif(last_issue):
            m.d.sync += [active.eq(0), final.eq(0)]
        with m.Elif(active & go):
            rnd_next = Mux(last_round, 0, rnd + 1)
            plane_next = Mux(last_round, plane - 1, plane)
            m.d.sync += [rnd.eq(rnd_next), plane.eq(plane_next),
                         final.eq((rnd_next == rounds - 1) & (plane_next == 0))]
        m.d.comb += [rd.addr.eq(rnd), rd.en.eq(1),
                     self.read.eq(active & go & (rnd == 0)), self.converting.eq(active & go)]

        # Each stage's control: valid, round, first plane, sign plane, last round of the vector.
        ctrl = data.StructLayout({"valid": 1, "round": range(max(2, rounds)), "first": 1, "neg": 1,
                                  "end": 1, "inject": 1})

        def stage(name):
            return Signal(ctrl, name=name)

        s1 = stage("s1")
        m.d.sync += [s1.valid.eq(active & go), s1.inject.eq(injecting), s1.round.eq(rnd),
                     s1.first.eq(plane == top),
                     s1.neg.eq((plane == top) & ~spiking), s1.end.eq(last_issue)]
        bits = Signal(rows)
        m.d.sync += bits.eq(Cat(*[x[r * p.in_bits:(r + 1) * p.in_bits].bit_select(plane, 1)
                                    for r in range(rows)]))

        # -- column sums: popcounts per row group, then their weighted sum ---------------------
        groups = [(g, min(g + ROW_GROUP, rows)) for g in range(0, rows, ROW_GROUP)]
        word = rd.data
        s2 = stage("s2")
        m.d.sync += s2.eq(s1)
        part = [[[Signal(range(hi - lo + 1), name=f"part_{a}_{b}_{k}")
                  for k, (lo, hi) in enumerate(groups)] for b in range(cb)] for a in range(n_adc)]
        for a in range(n_adc):
            for b in range(cb):
                cell_bits = Cat(*[word[(a * rows + r) * cb + b] for r in range(rows)])
                hits = Signal(rows, name=f"hits_{a}_{b}")
                m.d.comb += hits.eq(bits & cell_bits)
                for k, (lo, hi) in enumerate(groups):
                    m.d.sync += part[a][b][k].eq(popcount(hits[lo:hi]))
        # Then sums of up to GROUPS_PER_SUM popcounts, then the column sum.
        s2b = stage("s2b")
        m.d.sync += s2b.eq(s2)
        runs = [list(range(k, min(k + GROUPS_PER_SUM, len(groups))))
                for k in range(0, len(groups), GROUPS_PER_SUM)]
        psum = [[[Signal(range(sum(groups[k][1] - groups[k][0] for k in run) + 1),
                         name=f"psum_{a}_{b}_{q}") for q, run in enumerate(runs)]
                 for b in range(cb)] for a in range(n_adc)]
        for a in range(n_adc):
            for b in range(cb):
                for q, run in enumerate(runs):
                    m.d.sync += psum[a][b][q].eq(sum(part[a][b][k] for k in run))
        s3 = stage("s3")
        m.d.sync += s3.eq(s2b)
        colsum = [Signal(p.sum_bits, name=f"colsum_{a}") for a in range(n_adc)]
        for a in range(n_adc):
            m.d.sync += colsum[a].eq(sum((sum(psum[a][b]) << b) for b in range(cb)))

        # -- the ADCs -------------------------------------------------------------------------
        s4 = stage("s4")
        m.d.sync += s4.eq(s3)
        code_max = Signal(p.adc_bits)
        m.d.comb += code_max.eq((C(1, p.adc_bits + 1) << self.adc_bits) - 1)
        half = Signal(p.max_shift + 1)
        m.d.comb += half.eq((C(1, p.max_shift + 1) << self.shift) >> 1)
        code = [Signal(p.code_bits, name=f"code_{a}") for a in range(n_adc)]
        # Outside codes travel with their round's stages to the ADCs' place.
        if self.code_input:
            outside = self.codes.payload
            for k in range(4):          # s1, s2, s2b, s3
                reg = Signal.like(self.codes.payload, name=f"codes_s{k}")
                m.d.sync += reg.eq(outside)
                outside = reg
        for a in range(n_adc):
            level = Signal(p.sum_bits + 1, name=f"level_{a}")
            m.d.comb += level.eq((colsum[a] + half) >> self.shift)
            mine = Mux(level > code_max, code_max, level)
            # the round's own choice: a vector queued behind it may set inject otherwise
            m.d.sync += code[a].eq(Mux(s3.inject, outside[a], mine) if self.code_input
                                   else mine)

        # -- shift-and-add per physical column (Horner over the planes) ------------------------
        # The sign plane's negation a stage ahead: each code feeds every round's adder.
        s5 = stage("s5")
        m.d.sync += s5.eq(s4)
        term = [Signal(signed(p.code_bits + 1), name=f"term_{a}") for a in range(n_adc)]
        m.d.sync += [term[a].eq(Mux(s4.neg, -code[a], code[a])) for a in range(n_adc)]
        acc = [[Signal(signed(self.acc_bits), name=f"acc_{c}_{a}") for a in range(n_adc)]
               for c in range(rounds)]
        with m.If(s5.valid):
            with m.Switch(s5.round):
                for c in range(rounds):
                    with m.Case(c):
                        for a in range(n_adc):
                            before = Mux(s5.first, 0, acc[c][a] << 1)
                            m.d.sync += acc[c][a].eq(before + term[a])
        finish = Signal()
        m.d.sync += finish.eq(s5.valid & s5.end)

        # -- the differential pairs, then the slices ------------------------------------------
        columns = [acc[c][a] for c in range(rounds) for a in range(n_adc)]
        diff = [[Signal(signed(self.acc_bits + 1 + p.max_shift), name=f"diff_{n}_{j}")
                 for j in range(p.slices)] for n in range(p.n_out)]
        # Two stages: the differential pairs shifted by the ADC's LSB, then the slices
        # combined (into a register: the FIFO's memory takes it).
        summed, ready_y = Signal(), Signal()
        m.d.sync += [summed.eq(finish), ready_y.eq(summed)]
        with m.If(finish):
            for n in range(p.n_out):
                for j in range(p.slices):
                    base = n * p.group + 2 * j
                    m.d.sync += diff[n][j].eq((columns[base] - columns[base + 1]) << self.shift)
        y = Signal(data.ArrayLayout(signed(self.y_bits), p.n_out))
        with m.If(summed):
            m.d.sync += [y[n].eq(sum(diff[n][j] << (cb * j) for j in range(p.slices)))
                         for n in range(p.n_out)]
        m.d.comb += [out_fifo.i.valid.eq(ready_y), out_fifo.i.payload.eq(y)]
        with m.If(start & ~ready_y):
            m.d.sync += inflight.eq(inflight + 1)
        with m.Elif(ready_y & ~start):
            m.d.sync += inflight.eq(inflight - 1)
        m.d.comb += self.busy.eq(active | (inflight != 0) | queue.o.valid)
        return m
