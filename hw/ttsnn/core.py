"""The TT-SNN core: the TT layer's forward pass behind the shared host interface."""

from __future__ import annotations

from amaranth import *
from amaranth.lib import wiring
from amaranth.lib.wiring import connect

from ..common.counters import PerfCounters
from ..common.host_interface import HostInterface, add_host_interface
from ..common.hostport import RegisterMap
from ..common.streams import Gearbox
from .config import TTSNNConfig
from .layer import MODES_RTL, TTLayer
from .step import CORES

__all__ = ["TTSNNCore", "COUNTERS", "TARGETS"]

#: The core's counters (name, description); read-only 32-bit registers, cleared by
#: ``control.clear``.
COUNTERS = (
    ("cycles", "cycles since the last clear"),
    ("busy", "cycles a layer was in flight (maps, neurons, drain)"),
    ("forward_cycles", "cycles of the step datapath's phase (maps in, currents out)"),
    *((f"{g}_rows", f"MAC rows {g.upper()}'s engine issued (lanes multiply-accumulates each)")
      for g in CORES),
    ("positions", "spike positions taken (T per position of a map)"),
    ("neurons", "neurons delivered (spikes, membranes, currents)"),
    ("weights", "core weights loaded"),
)

#: Bulk targets (name, direction, memory format).
TARGETS = (
    ("weights", "load", "one core's int8 weights in its engine's index order; select: the core "
                        "(0 G1, 1 G2, 2 G3, 3 G4); argument: the number of weights"),
    ("spikes", "load", "the T maps one after another, positions in raster order, each "
                       "position_bits bits (channel i at bit i); argument: positions"),
    ("neurons", "store", "per position, per output channel: spikes (T bits), final membrane, "
                         "the T membranes before reset, the T currents, padded to neuron_bits; "
                         "argument: neurons"),
)


class TTSNNCore(wiring.Component):
    """A TT conv layer's forward pass (:class:`TTLayer`) behind the host interface.

    A command list LOADs the four cores (target ``weights``), writes the registers (``mode``,
    ``htt_full``, the shifts, ``threshold`` = theta + 1, ``leak_amount`` = beta, ``width``,
    ``height``), LOADs the ``T`` spike maps (target ``spikes``) and STOREs every neuron's result
    (target ``neurons``); see :data:`TARGETS` and :attr:`regmap`. Throughput and latency are the
    layer's: the spike LOAD streams at the layer's pace (one position per engine period), the
    STORE at one neuron per cycle.

    Members: ``cmd``/``rsp`` (host port), ``s_axil`` (AXI4-Lite), ``m_axi`` (AXI4 master), ``irq``.
    """

    def __init__(self, cfg: TTSNNConfig):
        if not isinstance(cfg, TTSNNConfig):
            raise TypeError(f"cfg must be a TTSNNConfig, not {cfg!r}")
        self.cfg = cfg
        self.layer = TTLayer(c_in=cfg.c_in, rank=cfg.rank, c_out=cfg.c_out, T=cfg.T,
                             max_width=cfg.max_width, max_height=cfg.max_height,
                             lanes=cfg.lanes, w_width=cfg.w_width, act_width=cfg.act_width,
                             y_width=cfg.y_width, mem_width=cfg.mem_width)
        rm = RegisterMap(data_width=32)
        rm.add_register("mode", 2, reset=MODES_RTL[cfg.mode],
                        doc=f"pipeline: {', '.join(f'{v} {k}' for k, v in MODES_RTL.items())}")
        rm.add_register("htt_full", cfg.T.bit_length(), reset=cfg.htt_full,
                        doc="HTT: steps t < htt_full take the full PTT path")
        for name, doc in (("o1", "G1's sums"), ("z2", "G2's sums (STT)"),
                          ("z3", "G3's (PTT: G2 + G3) sums"), ("y", "G4's sums")):
            rm.add_register(f"shift_{name}", 5, doc=f"right shift (round half up) of {doc}")
        lif = self.layer.lif_params
        rm.add_register("threshold", lif.threshold_bits, reset=cfg.theta + 1,
                        doc="theta + 1: a neuron spikes where its membrane exceeds theta")
        rm.add_register("leak_amount", 8, reset=cfg.beta, doc="leak factor beta / 256")
        rm.add_register("width", cfg.max_width.bit_length(), reset=cfg.max_width,
                        doc=f"map width, 1..{cfg.max_width}")
        rm.add_register("height", cfg.max_height.bit_length(), reset=cfg.max_height,
                        doc=f"map height, 1..{cfg.max_height}")
        rm.add_register("control", access="pulse", fields={"clear": (1, "clear the counters")})
        rm.add_register("status", access="ro",
                        fields={"busy": (1, "a layer is in flight")})
        for name, doc in COUNTERS:
            rm.add_register(name, 32, "ro", doc=doc)
        add_host_interface(rm)
        for name, direction, doc in TARGETS:
            rm.add_target(name, direction, doc=doc)
        self.regmap = rm.freeze()
        self.host = HostInterface(rm, data_width=cfg.dma_width, max_burst=cfg.max_burst,
                                  outstanding=cfg.outstanding, max_beats=1 << 16)
        super().__init__({name: member for name, member in self.host.signature.members.items()
                          if name in ("cmd", "rsp", "s_axil", "m_axi", "irq")})

    def elaborate(self, platform):
        m = Module()
        cfg = self.cfg
        dw = cfg.dma_width
        m.submodules.host = host = self.host
        for name in ("cmd", "rsp", "s_axil", "m_axi"):
            connect(m, getattr(host, name), wiring.flipped(getattr(self, name)))
        m.d.comb += self.irq.eq(host.irq)
        m.submodules.layer = layer = self.layer
        regs = host.regs
        for name in ("mode", "htt_full", "shift_o1", "shift_z2", "shift_z3", "shift_y",
                     "threshold", "leak_amount", "width", "height"):
            m.d.comb += getattr(layer, name).eq(getattr(regs, name))
        target = {name: k for k, (name, _, _) in enumerate(TARGETS)}

        # LOADs: weight bytes, or spike positions, out of the beats; the padding after the
        # argument's count is dropped.
        ld = host.load
        m.submodules.weight_gear = wgear = Gearbox(dw, 8)
        m.submodules.spike_gear = sgear = Gearbox(dw, cfg.position_bits)
        is_w, is_s = ld.payload.target == target["weights"], ld.payload.target == target["spikes"]
        for gear, mine in ((wgear, is_w), (sgear, is_s)):
            m.d.comb += [gear.i.valid.eq(ld.valid & mine), gear.i.payload.eq(ld.payload.data),
                         gear.clear.eq(0), gear.flush.eq(0)]
        m.d.comb += ld.ready.eq(Mux(is_w, wgear.i.ready, Mux(is_s, sgear.i.ready, 1)))
        first = ld.valid & ld.ready & ld.payload.first
        w_left, w_index, w_core = Signal(32), Signal(16), Signal(2)
        s_left = Signal(32)
        m.d.comb += [layer.load.valid.eq(wgear.o.valid & (w_left != 0)),
                     layer.load.payload.core.eq(w_core), layer.load.payload.index.eq(w_index),
                     layer.load.payload.value.eq(wgear.o.payload.as_signed()),
                     wgear.o.ready.eq(layer.load.ready | (w_left == 0))]
        with m.If(layer.load.valid & layer.load.ready):
            m.d.sync += [w_left.eq(w_left - 1), w_index.eq(w_index + 1)]
        m.d.comb += [layer.i.valid.eq(sgear.o.valid & (s_left != 0)),
                     layer.i.payload.eq(sgear.o.payload[:cfg.c_in]),
                     sgear.o.ready.eq(layer.i.ready | (s_left == 0))]
        with m.If(layer.i.valid & layer.i.ready):
            m.d.sync += s_left.eq(s_left - 1)
        # After the decrements: a LOAD's first beat can enter on the cycle the previous LOAD's
        # last item leaves the gearbox, and its count must win.
        with m.If(first & is_w):
            m.d.sync += [w_left.eq(ld.payload.arg), w_index.eq(0), w_core.eq(ld.payload.sel)]
        with m.If(first & is_s):
            m.d.sync += s_left.eq(ld.payload.arg)
        bad_load = first & ((is_w & (ld.payload.sel >= len(CORES)))
                            | (ld.payload.target > target["spikes"]))

        # The STORE: neurons, each padded to neuron_bits, through a gearbox into beats.
        sreq = host.store_req
        m.submodules.neuron_gear = ngear = Gearbox(cfg.neuron_bits, dw)
        owed = Signal(32)
        per_beat = max(1, dw // cfg.neuron_bits)
        beats_per = max(1, cfg.neuron_bits // dw)
        need = Mux(dw >= cfg.neuron_bits, (sreq.payload.arg + per_beat - 1) // per_beat,
                   sreq.payload.arg * beats_per)
        bad_store = sreq.valid & sreq.ready & ((sreq.payload.target != target["neurons"])
                                               | (sreq.payload.beats != need))
        m.d.comb += [sreq.ready.eq(owed == 0), ngear.clear.eq(0)]
        with m.If(sreq.valid & sreq.ready & ~bad_store):
            m.d.sync += owed.eq(sreq.payload.arg)
        m.d.comb += [ngear.i.valid.eq(layer.o.valid & (owed != 0)),
                     ngear.i.payload.eq(layer.o.payload.as_value()),
                     ngear.flush.eq(owed == 1),
                     layer.o.ready.eq(ngear.i.ready & (owed != 0))]
        with m.If(layer.o.valid & layer.o.ready):
            m.d.sync += owed.eq(owed - 1)
        connect(m, ngear.o, host.store)
        m.d.comb += host.target_error.eq(bad_load | bad_store)

        m.submodules.counters = counters = PerfCounters({name: 1 for name, _ in COUNTERS})
        clear = regs.control.clear
        m.d.comb += [counters.clear.eq(clear),
                     counters.inc.cycles.eq(1), counters.inc.busy.eq(layer.busy),
                     counters.inc.forward_cycles.eq(layer.maps),
                     *(getattr(counters.inc, f"{g}_rows").eq(layer.issuing[k])
                       for k, g in enumerate(CORES)),
                     counters.inc.positions.eq(layer.i.valid & layer.i.ready),
                     counters.inc.neurons.eq(layer.o.valid & layer.o.ready),
                     counters.inc.weights.eq(layer.load.valid & layer.load.ready),
                     host.status.status.busy.eq(layer.busy)]
        for name, _ in COUNTERS:
            m.d.comb += getattr(host.status, name).eq(getattr(counters.count, name))
        return m

