"""The crossbar core: a :class:`~.xbar.CrossbarTile` and, for spiking mode, the shared LIF array,
behind the shared host interface."""

from __future__ import annotations

from amaranth import *
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import connect

from ..common.counters import PerfCounters
from ..common.host_interface import HostCore
from ..common.hostport import RegisterMap
from ..common.lif import LIFArray
from ..common.streams import BeatToWords
from .config import XbarConfig
from .xbar import CrossbarTile

__all__ = ["XbarCore", "COUNTERS", "TARGETS", "CODES_TARGET", "StepCollector"]

#: The core's counters (name, description); read-only 32-bit registers, cleared by
#: ``control.clear``.
COUNTERS = (
    ("cycles", "cycles since the last clear"),
    ("busy", "cycles the tile held a vector (issuing rounds or in its pipeline)"),
    ("vectors", "matrix-vector products delivered by the tile (spiking: one per step)"),
    ("reads", "crossbar reads: input planes applied to the array"),
    ("conversions", "ADC conversions (n_adc per conversion round)"),
    ("neurons", "spiking neurons delivered by the LIF array"),
    ("cells", "cell-memory chunks written"),
)

#: Bulk targets (name, direction, memory format).
TARGETS = (
    ("cells", "load", "the cell memory's words, one per conversion round from round sel, each "
                      "as chunks of the bus width (golden.trex.params.round_words); argument: "
                      "the number of words"),
    ("inputs", "load", "bit-serial input vectors, input_bits each: rows signed in_bits-bit "
                       "values, row r at bit r * in_bits; argument: vectors"),
    ("spikes", "load", "spike vectors (one per batch row and step, steps innermost), spike_bits "
                       "each, row r at bit r; argument: vectors"),
    ("results", "store", "records of 32-bit words, each record padded to whole beats: per "
                         "vector its n_out results (sign-extended), or in spiking mode per "
                         "neuron (batch row, then logical column) its spike word and its T "
                         "currents; argument: records"),
)


#: The target of a core built with ``code_input`` (after :data:`TARGETS`).
CODES_TARGET = ("codes", "load", "outside ADC codes, per vector, plane (most significant first) "
                                 "and round the n_adc codes of code_bits each, code_slot_bits an "
                                 "item, ADC a at bit a * code_bits; argument: items")


class StepCollector(wiring.Component):
    """Turns spiking mode's per-step results into LIF neurons: ``T`` beats of ``n_out`` currents
    (steps of one batch row) in, then ``n_out`` beats of ``T`` currents (one neuron each) out.

    Latency: the first neuron the cycle after the ``T``-th step. Throughput: ``T`` steps in,
    then ``n_out`` neurons out at one a cycle (steps wait while neurons leave).

    Ports: ``i`` In(stream of the tile's results), ``o`` Out(stream of the LIF's input beats).
    """

    def __init__(self, *, T: int, n_out: int, y_shape, o_shape):
        self.T, self.n_out = T, n_out
        super().__init__({"i": wiring.In(stream.Signature(y_shape)),
                          "o": wiring.Out(stream.Signature(o_shape))})

    def elaborate(self, platform):
        m = Module()
        T, n_out = self.T, self.n_out
        steps = [Signal(self.i.payload.shape(), name=f"step_{t}") for t in range(T)]
        have = Signal(range(T + 1))
        neuron = Signal(range(max(2, n_out)))
        full = have == T
        m.d.comb += self.i.ready.eq(~full)
        with m.If(self.i.valid & ~full):
            with m.Switch(have):
                for t in range(T):
                    with m.Case(t):
                        m.d.sync += steps[t].eq(self.i.payload)
            m.d.sync += have.eq(have + 1)
        currents = self.o.payload.current
        with m.Switch(neuron):
            for n in range(n_out):
                with m.Case(n):
                    m.d.comb += [currents[t].eq(steps[t][n]) for t in range(T)]
        m.d.comb += self.o.valid.eq(full)
        with m.If(self.o.valid & self.o.ready):
            with m.If(neuron == n_out - 1):
                m.d.sync += [neuron.eq(0), have.eq(0)]
            with m.Else():
                m.d.sync += neuron.eq(neuron + 1)
        return m


class XbarCore(HostCore):
    """A crossbar tile behind the host interface: matrix-vector products on weights held in the
    array, bit-serial (``golden.trex.xbar.xbar_mvm``) or spiking (``xbar_spiking``: the tile's
    per-step results through the shared LIF array).

    A command list LOADs the cells (target ``cells``), writes the registers (``in_bits``,
    ``adc_bits``, ``adc_shift``, ``spiking``, the LIF's ``threshold``, ``leak_amount``,
    ``tmask``), posts a STORE of the results (target ``results``) and LOADs the vectors (target
    ``inputs``, or ``spikes`` in spiking mode), which stream through the tile as they arrive; see
    :data:`TARGETS` and :attr:`regmap`. Cells must not be loaded while the tile holds a vector
    (``status.busy``).

    Throughput: the tile's, one vector per ``in_bits * cols_per_adc`` cycles (spiking: a step
    per ``cols_per_adc``), as long as a vector's LOAD (``input_bits / dma_width`` beats) and its
    results' STORE are no longer. Latency: the tile's plus a cycle into it and the result words'
    way out (spiking: ``T`` steps, then the LIF array's latency).

    Members: ``cmd``/``rsp`` (host port), ``s_axil`` (AXI4-Lite), ``m_axi`` (AXI4 master), ``irq``.
    """

    def __init__(self, cfg: XbarConfig):
        if not isinstance(cfg, XbarConfig):
            raise TypeError(f"cfg must be an XbarConfig, not {cfg!r}")
        self.cfg = cfg
        self.tile = CrossbarTile(cfg.tile, chunk_width=cfg.dma_width,
                                 code_input=cfg.code_input)
        self.lif = LIFArray(cfg.lif, membrane=False, echo_currents=True)
        lif = cfg.lif
        rm = RegisterMap(data_width=32)
        rm.add_register("in_bits", cfg.in_bits.bit_length(), reset=cfg.in_bits,
                        doc=f"input width in bits (bit-serial planes), 2..{cfg.in_bits}")
        rm.add_register("adc_bits", cfg.adc_bits.bit_length(), reset=cfg.adc_bits,
                        doc=f"ADC resolution used, 1..{cfg.adc_bits}")
        rm.add_register("adc_shift", cfg.max_shift.bit_length(), reset=cfg.shift,
                        doc=f"ADC LSB as 2^adc_shift column units, 0..{cfg.max_shift}")
        rm.add_register("spiking", 1, doc="spiking mode: one binary read per step, then the LIF")
        rm.add_register("threshold", lif.threshold_bits, reset=lif.threshold,
                        doc="LIF threshold (membrane >= threshold fires)")
        rm.add_register("leak_amount", lif.leak_amount_bits, reset=lif.leak_amount,
                        doc=lif.leak_amount_doc)
        rm.add_register("tmask", lif.T, reset=(1 << lif.T) - 1,
                        doc="dynamic time-step mask: bit t set = step t evaluated")
        if cfg.code_input:
            rm.add_register("inject", 1, doc="the tile takes its ADC codes from the codes LOAD")
        rm.add_register("control", access="pulse", fields={"clear": (1, "clear the counters")})
        rm.add_register("status", access="ro", fields={"busy": (1, "the tile holds a vector")})
        super().__init__(rm, counters=COUNTERS,
                         targets=TARGETS + ((CODES_TARGET,) if cfg.code_input else ()),
                         dma_width=cfg.dma_width, max_burst=cfg.max_burst,
                         outstanding=cfg.outstanding)

    def elaborate(self, platform):
        m = Module()
        cfg = self.cfg
        dw = cfg.dma_width
        host = self.add_host(m)
        m.submodules.tile = tile = self.tile
        m.submodules.lif = lif = self.lif
        regs = host.regs
        m.d.comb += [tile.planes.eq(regs.in_bits), tile.spiking.eq(regs.spiking),
                     tile.adc_bits.eq(regs.adc_bits), tile.shift.eq(regs.adc_shift),
                     lif.threshold.eq(regs.threshold), lif.leak_amount.eq(regs.leak_amount),
                     lif.tmask.eq(regs.tmask)]
        target = self.target_index

        # LOADs: cell chunks straight into the tile's memory; vectors through a gearbox each
        # (the padding after the argument's count dropped).
        ld = host.load
        gears, mine = self.load_gearboxes(m, host, {
            "inputs": cfg.input_bits, "spikes": cfg.spike_bits,
            **({"codes": cfg.code_slot_bits} if cfg.code_input else {})})
        is_k = C(0)
        if cfg.code_input:
            kgear, is_k = gears["codes"], mine["codes"]
            k_left = Signal(32)
            m.d.comb += [tile.inject.eq(regs.inject),
                         tile.codes.valid.eq(kgear.o.valid & (k_left != 0)),
                         tile.codes.payload.eq(kgear.o.payload[:cfg.n_adc * cfg.code_bits]),
                         kgear.o.ready.eq(tile.codes.ready | (k_left == 0))]
            with m.If(tile.codes.valid & tile.codes.ready):
                m.d.sync += k_left.eq(k_left - 1)
            # after the decrement: a new LOAD's count wins
            with m.If(ld.valid & ld.ready & ld.payload.first & is_k):
                m.d.sync += k_left.eq(ld.payload.arg)
        xgear, sgear = gears["inputs"], gears["spikes"]
        is_c, is_x, is_s = ld.payload.target == target["cells"], mine["inputs"], mine["spikes"]
        first = ld.valid & ld.ready & ld.payload.first
        chunks, rounds = self.tile.chunks, cfg.cols_per_adc
        c_round, c_chunk = Signal(range(rounds + 1)), Signal(range(max(2, chunks)))
        c_left = Signal(32)
        cell_fire = ld.valid & is_c & (Mux(ld.payload.first, ld.payload.arg, c_left) != 0)
        round_now = Mux(ld.payload.first, ld.payload.sel, c_round)
        chunk_now = Mux(ld.payload.first, 0, c_chunk)
        m.d.comb += [tile.cells.valid.eq(cell_fire), tile.cells.payload.round.eq(round_now),
                     tile.cells.payload.chunk.eq(chunk_now),
                     tile.cells.payload.data.eq(ld.payload.data)]
        with m.If(ld.valid & is_c):
            last_chunk = chunk_now == chunks - 1
            m.d.sync += [c_chunk.eq(Mux(last_chunk, 0, chunk_now + 1)),
                         c_round.eq(round_now + last_chunk),
                         c_left.eq(Mux(ld.payload.first, ld.payload.arg, c_left) - last_chunk)]
        x_left = Signal(32)
        vec = Signal(data.ArrayLayout(signed(cfg.in_bits), cfg.rows))
        with m.If(regs.spiking):
            m.d.comb += [vec[r].eq(sgear.o.payload[r]) for r in range(cfg.rows)]
            m.d.comb += [tile.i.valid.eq(sgear.o.valid & (x_left != 0)),
                         sgear.o.ready.eq(tile.i.ready | (x_left == 0)), xgear.o.ready.eq(1)]
        with m.Else():
            m.d.comb += [vec.eq(xgear.o.payload[:cfg.rows * cfg.in_bits]),
                         tile.i.valid.eq(xgear.o.valid & (x_left != 0)),
                         xgear.o.ready.eq(tile.i.ready | (x_left == 0)), sgear.o.ready.eq(1)]
        m.d.comb += tile.i.payload.eq(vec)
        with m.If(tile.i.valid & tile.i.ready):
            m.d.sync += x_left.eq(x_left - 1)
        # After the decrement: a LOAD's first beat can enter on the cycle the previous LOAD's
        # last vector leaves its gearbox, and its count must win.
        with m.If(first & (is_x | is_s)):
            m.d.sync += x_left.eq(ld.payload.arg)
        bad_load = first & ((is_c & ((ld.payload.sel + ld.payload.arg > rounds)
                                     | (ld.payload.arg == 0)))
                            | ~(is_c | is_x | is_s | is_k)
                            | (is_k & ((~regs.inject if cfg.code_input else 1)
                                       | (ld.payload.arg == 0))))

        # Results: each vector's n_out results, or (spiking) each LIF neuron's spike word and T
        # currents, as 32-bit words in records of whole beats, straight to the STORE.
        word = 32
        m.submodules.collect = collect = StepCollector(
            T=cfg.T, n_out=cfg.n_out, y_shape=tile.o.payload.shape(),
            o_shape=lif.i.payload.shape())
        m.submodules.vector_beats = vbeats = BeatToWords(
            data.ArrayLayout(signed(word), cfg.n_out), dw)
        m.submodules.neuron_beats = nbeats = BeatToWords(
            data.ArrayLayout(signed(word), cfg.neuron_words), dw)
        with m.If(regs.spiking):
            connect(m, tile.o, collect.i)
            m.d.comb += vbeats.i.valid.eq(0)
        with m.Else():
            m.d.comb += [vbeats.i.valid.eq(tile.o.valid), tile.o.ready.eq(vbeats.i.ready),
                         collect.i.valid.eq(0)]
        m.d.comb += [vbeats.i.payload[n].eq(tile.o.payload[n]) for n in range(cfg.n_out)]
        connect(m, collect.o, lif.i)
        m.d.comb += [nbeats.i.valid.eq(lif.o.valid), lif.o.ready.eq(nbeats.i.ready),
                     nbeats.i.payload[0].eq(lif.o.payload.spikes),
                     *(nbeats.i.payload[1 + t].eq(lif.o.payload.current[t])
                       for t in range(cfg.T))]
        sreq = host.store_req
        owed = Signal.like(sreq.payload.beats)
        # Records times their beats, by shifts and adds (a multiplier here was the longest path).
        def times(value, k):
            return sum(value << i for i in range(k.bit_length()) if (k >> i) & 1)

        need = Mux(regs.spiking, times(sreq.payload.arg, cfg.neuron_beats),
                   times(sreq.payload.arg, cfg.vector_beats))
        bad_store = sreq.valid & sreq.ready & (
            (sreq.payload.target != target["results"]) | (sreq.payload.beats != need))
        m.d.comb += sreq.ready.eq(owed == 0)
        with m.If(sreq.valid & sreq.ready & ~bad_store):
            m.d.sync += owed.eq(sreq.payload.beats)
        source = Mux(regs.spiking, nbeats.o.payload, vbeats.o.payload)
        m.d.comb += [host.store.valid.eq(Mux(regs.spiking, nbeats.o.valid, vbeats.o.valid)
                                         & (owed != 0)),
                     host.store.payload.eq(source),
                     nbeats.o.ready.eq(regs.spiking & host.store.ready & (owed != 0)),
                     vbeats.o.ready.eq(~regs.spiking & host.store.ready & (owed != 0))]
        with m.If(host.store.valid & host.store.ready):
            m.d.sync += owed.eq(owed - 1)
        m.d.comb += host.target_error.eq(bad_load | bad_store)

        m.submodules.counters = counters = PerfCounters(
            {**{name: 1 for name, _ in COUNTERS}, "conversions": cfg.n_adc.bit_length()})
        clear = regs.control.clear
        m.d.comb += [counters.clear.eq(clear), lif.clear.eq(clear),
                     counters.inc.cycles.eq(1), counters.inc.busy.eq(tile.busy),
                     counters.inc.vectors.eq(tile.o.valid & tile.o.ready),
                     counters.inc.reads.eq(tile.read),
                     counters.inc.conversions.eq(Mux(tile.converting, cfg.n_adc, 0)),
                     counters.inc.neurons.eq(lif.o.valid & lif.o.ready),
                     counters.inc.cells.eq(cell_fire),
                     host.status.status.busy.eq(tile.busy)]
        for name, _ in COUNTERS:
            m.d.comb += getattr(host.status, name).eq(getattr(counters.count, name))
        return m
