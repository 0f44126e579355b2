"""The LIF array behind the host port: the smallest complete snnforge core."""

from __future__ import annotations

from dataclasses import dataclass

from amaranth import *
from amaranth.lib import wiring
from amaranth.lib.wiring import connect

from ...golden.common.lif import LIFParams
from ...params import param
from .counters import PerfCounters
from .hostport import HostPort, RegisterMap, StreamWindow, host_port_members
from .lif import LIFArray, LIFArrayConfig
from .streams import BeatToWords, StreamFIFO, WordsToBeat

__all__ = ["LIFCore", "LIFCoreConfig"]


@dataclass(frozen=True)
class LIFCoreConfig(LIFArrayConfig):
    """The ``lif_core`` generator's parameters: the LIF array's and the host-side FIFOs'."""

    fifo_depth: int = param(16, "depth of the input and result FIFOs (words)", lo=2, hi=1024)


class LIFCore(wiring.Component):
    """A :class:`LIFArray` reached through the host port.

    The host pushes each neuron's ``T`` currents (``T * in_width`` bits, lowest word first) into the
    ``currents`` stream window and pops each neuron's result (spike word in the low ``T`` bits,
    membrane above unless built without it) from the ``results`` stream window. Threshold, leak amount and time-step mask
    are registers (reset to the generator's values); counters report neurons, evaluated steps,
    cycles, busy and stalled cycles. Register map: :attr:`regmap`.

    Latency (:attr:`latency`): ``LIFArray.latency + 3`` cycles from the accepted command that
    writes a neuron's last current word to the response of a ``results`` read issued right after
    it (input FIFO, word assembly, the LIF array, word split, results FIFO, host port).
    Throughput: limited by
    the host port, one command per cycle, so ``1 / (words_per_neuron + words_per_result)``
    neurons per cycle (:attr:`throughput`; 1/3 at the defaults).

    Members
    -------
    cmd : In(stream.Signature(command_layout(...)))
    rsp : Out(stream.Signature(data_width))
    """

    def __init__(self, params: LIFParams, *, ops_per_stage: int = 1, fifo_depth: int = 16,
                 data_width: int = 32, membrane: bool = True):
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
        self.counter_names = ("neurons", "evaluated", "cycles", "busy", "stalled")
        for name, doc in [("neurons", "neurons delivered by the LIF array"),
                          ("evaluated", "neuron-steps evaluated (popcount(tmask) per neuron)"),
                          ("cycles", "cycles since the last clear"),
                          ("busy", "cycles with a neuron entering or leaving the LIF array"),
                          ("stalled", "cycles the LIF output waited for the results FIFO")]:
            rm.add_register(name, 32, "ro", doc=doc)
        rm.add_window("currents", 1, data_width, "wo", stream=True,
                      doc=f"push: {params.T} x {params.in_width}-bit currents per neuron, word by word")
        rm.add_window("results", 1, data_width, "ro", stream=True,
                      doc=f"pop: spikes[{params.T}] | membrane[{params.mem_width}] << {params.T}"
                      if membrane else f"pop: spikes[{params.T}]")
        self.regmap = rm.freeze()
        super().__init__(host_port_members(rm))

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
        return self.lif.latency + 3

    @property
    def throughput(self) -> float:
        """Neurons per cycle through the host port (its writes and reads, one per cycle)."""
        return 1.0 / (self.words_per_neuron + self.words_per_result)

    def elaborate(self, platform):
        m = Module()
        rm = self.regmap
        dw = rm.data_width
        m.submodules.host = host = HostPort(rm)
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
        connect(m, win_in.o, in_fifo.i)
        connect(m, in_fifo.o, assemble.i)
        connect(m, assemble.o, lif.i)
        connect(m, lif.o, split.i)
        connect(m, split.o, out_fifo.i)
        connect(m, out_fifo.o, win_out.i)

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

