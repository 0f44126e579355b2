"""The LIF array behind the host port: the smallest complete snnforge core."""

from __future__ import annotations

from dataclasses import dataclass

from amaranth import *
from amaranth.lib import wiring
from amaranth.lib.wiring import connect

from ...golden.common.lif_params import LIFParams
from ...params import inherit, param
from .counters import PerfCounters
from .host_interface import (READ_CYCLES, HostInterface, HostInterfaceParams,
                             add_host_interface)
from .hostport import RegisterMap, StreamWindow
from .lif import LIFArray, LIFArrayConfig
from .streams import BeatToWords, Gearbox, StreamFIFO, WordsToBeat

__all__ = ["LIFCore", "LIFCoreConfig", "LIF_CORE_COUNTERS"]

#: The LIF core's counters (name, description); read-only 32-bit registers.
LIF_CORE_COUNTERS = (
    ("neurons", "neurons delivered by the LIF array"),
    ("evaluated", "neuron-steps evaluated (popcount(tmask) per neuron)"),
    ("cycles", "cycles since the last clear"),
    ("busy", "cycles with a neuron entering or leaving the LIF array"),
    ("stalled", "cycles the LIF output waited for the results FIFO"),
)


@dataclass(frozen=True)
class LIFCoreConfig(LIFArrayConfig):
    """The ``lif_core`` generator's parameters: the LIF array's and the host-side FIFOs'."""

    fifo_depth: int = param(16, "depth of the input and result FIFOs (words)", lo=2, hi=1024)
    dma_width: int = inherit(HostInterfaceParams, "dma_width")
    max_burst: int = inherit(HostInterfaceParams, "max_burst")
    outstanding: int = inherit(HostInterfaceParams, "outstanding")


class LIFCore(wiring.Component):
    """A :class:`LIFArray` reached through the host port.

    The host pushes each neuron's ``T`` currents (``T * in_width`` bits, lowest word first) into the
    ``currents`` stream window and pops each neuron's result (spike word in the low ``T`` bits,
    membrane above unless built without it) from the ``results`` stream window -- or a command
    list LOADs the words from memory (target ``currents``, ``dma_width / 32`` words a beat, the
    argument: how many words, at most ``fifo_depth``) and STOREs the results (target
    ``results``, the argument: how many words, at most ``fifo_depth``). Threshold, leak amount and time-step mask
    are registers (reset to the generator's values); counters report neurons, evaluated steps,
    cycles, busy and stalled cycles. Register map: :attr:`regmap`.

    Latency (:attr:`latency`): ``LIFArray.latency + 5`` cycles from the accepted command that
    writes a neuron's last current word to the response of a ``results`` read issued right after
    it (the host interface's register slices, input FIFO, word assembly, the LIF array, word
    split, results FIFO, host port).
    Throughput: limited by the host port, a write a cycle and a read every ``READ_CYCLES`` (4),
    so ``1 / (words_per_neuron + READ_CYCLES * words_per_result)`` neurons per cycle
    (:attr:`throughput`; 1/6 at the defaults) when the host writes ahead of its reads.

    Members
    -------
    cmd : In(stream.Signature(command_layout(...)))
    rsp : Out(stream.Signature(data_width))
    """

    def __init__(self, params: LIFParams, *, ops_per_stage: int = 1, fifo_depth: int = 16,
                 data_width: int = 32, membrane: bool = True, dma_width: int = 128,
                 max_burst: int = 16, outstanding: int = 4):
        if not isinstance(fifo_depth, int) or fifo_depth < 2:
            raise ValueError(f"fifo_depth must be an integer >= 2, not {fifo_depth!r}")
        self.lif = LIFArray(params, ops_per_stage=ops_per_stage, membrane=membrane)
        self._membrane = membrane
        self._p = params
        self._fifo_depth = fifo_depth
        full_mask = (1 << params.T) - 1
        rm = RegisterMap(data_width=data_width)
        rm.add_register("threshold", params.threshold_bits, reset=params.threshold,
                        doc="firing threshold (membrane >= threshold fires)")
        rm.add_register("leak_amount", params.leak_amount_bits, reset=params.leak_amount,
                        doc=params.leak_amount_doc)
        rm.add_register("tmask", params.T, reset=full_mask,
                        doc="dynamic time-step mask: bit t set = step t evaluated")
        rm.add_register("control", access="pulse",
                        fields={"clear": (1, "clear the counters")})
        for name, doc in [("in_level", "words waiting in the input FIFO"),
                          ("out_level", "words waiting in the results FIFO")]:
            rm.add_register(name, (fifo_depth).bit_length(), "ro", doc=doc)
        for name, doc in LIF_CORE_COUNTERS:
            rm.add_register(name, 32, "ro", doc=doc)
        rm.add_window("currents", 1, data_width, "wo", stream=True,
                      doc=f"push: {params.T} x {params.in_width}-bit currents per neuron, word by word")
        result_doc = (f"spikes[{params.T}] | membrane[{params.mem_width}] << {params.T}"
                      if membrane else f"spikes[{params.T}]")
        rm.add_window("results", 1, data_width, "ro", stream=True, doc=f"pop: {result_doc}")
        add_host_interface(rm)
        rm.add_target("currents", "load", doc=f"the currents' words, {dma_width // 32} a beat; "
                                              "argument: words (at most fifo_depth)")
        rm.add_target("results", "store", doc=f"the result words ({result_doc}), "
                                              f"{dma_width // 32} a beat; argument: words")
        self.regmap = rm.freeze()
        self.host = HostInterface(rm, data_width=dma_width, max_burst=max_burst,
                                  outstanding=outstanding, max_beats=1 << 16)
        super().__init__({name: member for name, member in self.host.signature.members.items()
                          if name in ("cmd", "rsp", "s_axil", "m_axi", "irq")})

    @property
    def params(self):
        return self._p

    @property
    def words_per_neuron(self):
        return -(-(self._p.T * self._p.in_width) // self.regmap.data_width)

    @property
    def words_per_result(self):
        return -(-(self._p.T + self._membrane * self._p.mem_width) // self.regmap.data_width)

    @property
    def fifo_depth(self) -> int:
        return self._fifo_depth

    @property
    def latency(self) -> int:
        """Cycles from the accepted command writing a neuron's last current word to the response
        of a ``results`` read issued right after it."""
        return self.lif.latency + 5

    @property
    def throughput(self) -> float:
        """Neurons per cycle through the host port (a write a cycle, a read every
        ``READ_CYCLES``)."""
        return 1.0 / (self.words_per_neuron + READ_CYCLES * self.words_per_result)

    def elaborate(self, platform):
        m = Module()
        rm = self.regmap
        dw = rm.data_width
        m.submodules.host = host = self.host
        for name in ("s_axil", "m_axi"):
            connect(m, getattr(host, name), wiring.flipped(getattr(self, name)))
        m.d.comb += self.irq.eq(host.irq)
        m.submodules.lif = lif = self.lif
        m.submodules.win_in = win_in = StreamWindow(rm["currents"], dw)
        m.submodules.win_out = win_out = StreamWindow(rm["results"], dw)
        m.submodules.in_fifo = in_fifo = StreamFIFO(dw, self._fifo_depth)
        m.submodules.out_fifo = out_fifo = StreamFIFO(dw, self._fifo_depth)
        m.submodules.assemble = assemble = WordsToBeat(dw, lif.i.payload.shape())
        m.submodules.split = split = BeatToWords(lif.o.payload.shape(), dw)
        m.submodules.counters = counters = PerfCounters(
            {"neurons": 1, "cycles": 1, "busy": 1, "stalled": 1})

        connect(m, wiring.flipped(self.cmd), host.cmd)
        connect(m, host.rsp, wiring.flipped(self.rsp))
        connect(m, host.currents, win_in.bus)
        connect(m, host.results, win_out.bus)
        # Words into the input FIFO: from the window, or from a LOAD (its padding dropped).
        bulk_dw = host.data_width
        m.submodules.load_gear = lgear = Gearbox(bulk_dw, dw)
        ld = host.load
        left = Signal(range(self._fifo_depth + bulk_dw // dw + 1))
        m.d.comb += [lgear.i.valid.eq(ld.valid), lgear.i.payload.eq(ld.payload.data),
                     ld.ready.eq(lgear.i.ready), lgear.clear.eq(0), lgear.flush.eq(0)]
        real = lgear.o.valid & (left != 0)
        with m.If(lgear.o.valid):
            m.d.comb += [in_fifo.i.valid.eq(real), in_fifo.i.payload.eq(lgear.o.payload),
                         lgear.o.ready.eq(in_fifo.i.ready | (left == 0)), win_in.o.ready.eq(0)]
        with m.Else():
            connect(m, win_in.o, in_fifo.i)
        with m.If(real & in_fifo.i.ready):
            m.d.sync += left.eq(left - 1)
        # After the decrement: a LOAD's first beat can enter on the cycle the previous LOAD's
        # last word leaves the gearbox, and its count must win.
        with m.If(ld.valid & ld.ready & ld.payload.first):
            m.d.sync += left.eq(ld.payload.arg)
        too_many = (ld.valid & ld.payload.first
                    & (ld.payload.arg > self._fifo_depth - in_fifo.level))
        connect(m, in_fifo.o, assemble.i)
        connect(m, assemble.o, lif.i)
        connect(m, lif.o, split.i)
        connect(m, split.o, out_fifo.i)
        # Result words out: to the window, or to a STORE (the last beat zero-padded).
        m.submodules.store_gear = sgear = Gearbox(dw, bulk_dw)
        per_beat = bulk_dw // dw
        sreq = host.store_req
        owed = Signal(range(self._fifo_depth + 1))
        m.d.comb += [sreq.ready.eq(owed == 0), sgear.clear.eq(0)]
        bad_store = sreq.valid & sreq.ready & (
            (sreq.payload.arg > self._fifo_depth)
            | (sreq.payload.beats != (sreq.payload.arg + per_beat - 1) // per_beat))
        with m.If(sreq.valid & sreq.ready & ~bad_store):
            m.d.sync += owed.eq(sreq.payload.arg)
        with m.If(owed != 0):
            m.d.comb += [sgear.i.valid.eq(out_fifo.o.valid), sgear.i.payload.eq(out_fifo.o.payload),
                         sgear.flush.eq((owed == 1) & out_fifo.o.valid),
                         out_fifo.o.ready.eq(sgear.i.ready)]
            with m.If(out_fifo.o.valid & sgear.i.ready):
                m.d.sync += owed.eq(owed - 1)
        with m.Else():
            connect(m, out_fifo.o, win_out.i)
        connect(m, sgear.o, host.store)
        m.d.comb += host.target_error.eq(too_many | bad_store)

        clear = host.regs.control.clear
        m.d.comb += [
            lif.threshold.eq(host.regs.threshold),
            lif.leak_amount.eq(host.regs.leak_amount),
            lif.tmask.eq(host.regs.tmask),
            lif.clear.eq(clear),
            counters.clear.eq(clear),
            counters.inc.neurons.eq(lif.o.valid & lif.o.ready),
            counters.inc.cycles.eq(1),
            counters.inc.busy.eq((lif.i.valid & lif.i.ready) | (lif.o.valid & lif.o.ready)),
            counters.inc.stalled.eq(lif.o.valid & ~lif.o.ready),
            host.status.in_level.eq(in_fifo.level),
            host.status.out_level.eq(out_fifo.level),
            host.status.evaluated.eq(lif.evaluated),
        ]
        for name in ("neurons", "cycles", "busy", "stalled"):
            m.d.comb += getattr(host.status, name).eq(getattr(counters.count, name))
        return m

