"""The TT-SNN core: the TT layer's forward and backward passes behind the shared host
interface."""

from __future__ import annotations

from amaranth import *
from amaranth.lib.wiring import connect

from ..common.counters import PerfCounters
from ..common.host_interface import HostCore
from ..common.hostport import RegisterMap
from ..common.streams import Gearbox
from .backward import RESULTS, TTBackward
from .config import TTSNNConfig
from .layer import MODES_RTL, TTLayer
from .step import CORES, DENSE

__all__ = ["TTSNNCore", "COUNTERS", "BACKWARD_COUNTERS", "TARGETS"]

#: The core's counters (name, description); read-only 32-bit registers, cleared by
#: ``control.clear``.
COUNTERS = (
    ("cycles", "cycles since the last clear"),
    ("busy", "cycles a layer was in flight (maps, neurons, drain)"),
    ("forward_cycles", "cycles of the step datapath's phase (maps in, currents out)"),
    *((f"{g}_rows", f"MAC rows {g.upper()}'s engine issued (lanes x ways multiply-accumulates "
                    f"each{helps})")
      for g, helps in zip(CORES, ("", "; with htt_pool also G4's on HTT's late steps",
                                  "; with htt_pool also G1's on HTT's late steps", ""))),
    ("dense_rows", "MAC rows the dense 3x3 engine issued (mode dense; lanes accumulates each)"),
    ("positions", "spike positions taken (T per position of a map)"),
    ("neurons", "neurons delivered (spikes, membranes, currents)"),
    ("weights", "core weights loaded"),
    ("backward_cycles", "cycles a backward pass was running"),
)

#: Counters of the last backward pass (read-only, cleared when a pass starts).
BACKWARD_COUNTERS = (
    ("surrogate_cycles", "cycles of the surrogate passes"),
    ("dgrad_cycles", "cycles of the input-gradient passes (G4^T, G3^T, G2^T, G1^T; dense: W^T)"),
    ("wgrad_cycles", "cycles of the weight-gradient passes"),
    ("backward_macs", "multiply-accumulates of the backward pass (terms inside the map)"),
    ("update_cycles", "cycles of the SGD update"),
)

#: Bulk targets (name, direction, memory format).
TARGETS = (
    ("weights", "load", "one core's int8 weights in its engine's index order; select: the core "
                        "(0 G1, 1 G2, 2 G3, 3 G4; 4 the dense 3x3 weight W[o, i, kh, kw] at "
                        "((o * 3 + kh) * 3 + kw) * c_in + i, cores with dense_lanes > 0); "
                        "argument: the number of weights"),
    ("spikes", "load", "the T maps one after another, positions in raster order, each "
                       "position_bits bits (channel i at bit i); argument: positions"),
    ("neurons", "store", "per position, per output channel: spikes (T bits), final membrane, "
                         "the T membranes before reset, the T currents, padded to neuron_bits; "
                         "argument: neurons"),
    ("grads", "load", "the output spikes' gradients, grad_bits each, [T][Cout][max_height]"
                      "[max_width] (zeros outside the map); argument: values"),
    ("grad_in", "store", "the input gradients, result_bits each, [T][Cin][max_height]"
                         "[max_width]; argument: values"),
    ("core_grads", "store", "one core's gradient, result_bits each, in its engine's index "
                            "order; select: the core (4: the dense 3x3 weight's, mode dense); "
                            "argument: values"),
    ("cores", "store", "one core's weights (after an SGD update), result_bits each, in its "
                       "engine's index order; select: the core (4: the dense 3x3 weight); "
                       "argument: values"),
)


class TTSNNCore(HostCore):
    """A TT conv layer's forward pass (:class:`TTLayer`) behind the host interface.

    A command list LOADs the four cores (target ``weights``), writes the registers (``mode``,
    ``htt_full``, the shifts, ``threshold`` = theta + 1, ``leak_amount`` = beta, ``width``,
    ``height``), LOADs the ``T`` spike maps (target ``spikes``) and STOREs every neuron's result
    (target ``neurons``); see :data:`TARGETS` and :attr:`regmap`. Throughput and latency are the
    layer's: the spike LOAD streams at the layer's pace (one position per engine period), the
    STORE at one neuron per cycle.

    Backward (:class:`TTBackward`): the forward pass leaves its state (activations, membranes,
    spikes) in the backward unit as it runs; after a LOAD of the output spikes' gradients
    (target ``grads``) and once ``status.forward_done``, ``control.backward`` starts BPTT; once
    ``status.backward_done``, STOREs of ``grad_in`` and ``core_grads`` (one per core) read the
    results at one value per cycle. The backward unit keeps its own copy of the cores (each
    weight LOAD writes both); with ``sgd.update`` it updates them after the pass and sends each
    new weight to the forward engines too, so the next forward pass uses them (STORE ``cores``
    reads them back).

    Dense baseline (``dense_lanes`` > 0): mode ``dense`` runs the same command list with the
    dense 3x3 weight LOADed (``weights`` select 4) instead of the cores, through the layer's
    dense engine; the neurons and counters as in the TT modes (``dense_rows``). Its backward
    pass and SGD update run on the same backward unit (built ``dense``): ``core_grads`` and
    ``cores`` select 4 read the weight's gradient and the updated weight.

    Members: ``cmd``/``rsp`` (host port), ``s_axil`` (AXI4-Lite), ``m_axi`` (AXI4 master), ``irq``.
    """

    def __init__(self, cfg: TTSNNConfig):
        if not isinstance(cfg, TTSNNConfig):
            raise TypeError(f"cfg must be a TTSNNConfig, not {cfg!r}")
        self.cfg = cfg
        self.layer = TTLayer(c_in=cfg.c_in, rank=cfg.rank, c_out=cfg.c_out, T=cfg.T,
                             max_width=cfg.max_width, max_height=cfg.max_height,
                             lanes=cfg.lanes, ways=cfg.ways, dense_lanes=cfg.dense_lanes,
                             dense_ways=cfg.dense_ways, w_width=cfg.w_width,
                             act_width=cfg.act_width, y_width=cfg.y_width,
                             mem_width=cfg.mem_width, pool=cfg.htt_pool)
        rm = RegisterMap(data_width=32)
        rm.add_register("mode", 2, reset=MODES_RTL[cfg.mode],
                        doc=f"pipeline: {', '.join(f'{v} {k}' for k, v in MODES_RTL.items())} "
                            "(dense: the dense 3x3 engine and its backward pass, cores with "
                            "dense_lanes > 0 -- elsewhere G1 -> G4 as HTT's late steps; no "
                            "backward pass, control.backward ends at once)")
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
        for k, doc in ((4, "G4^T's sums"), (3, "G3^T's sums (STT)"),
                       (2, "G2^T's (PTT: G2^T + G3^T) sums"), (1, "G1^T's sums")):
            rm.add_register(f"shift_b{k}", 5, doc=f"right shift (round half up) of {doc}")
        rm.add_register("surrogate", cfg.mem_width + 1, reset=cfg.surrogate,
                        doc="surrogate half-width a: ds/du = [|H - theta| < a]")
        rm.add_register("sgd", fields={
            "update": (1, "after the backward pass, G = sat(G - round(sat(dG) >> lr_shift))"),
            "lr_shift": (6, "the learning rate as a right shift")})
        rm.add_register("control", access="pulse", fields={
            "clear": (1, "clear the counters"), "backward": (1, "start the backward pass")})
        rm.add_register("status", access="ro", fields={
            "busy": (1, "a layer is in flight"),
            "forward_done": (1, "a forward pass ended since the last backward start or clear"),
            "backward_done": (1, "the last backward pass ended")})
        self.backward = TTBackward(c_in=cfg.c_in, rank=cfg.rank, c_out=cfg.c_out, T=cfg.T,
                                   max_width=cfg.max_width, max_height=cfg.max_height,
                                   w_width=cfg.w_width, act_width=cfg.act_width,
                                   mem_width=cfg.mem_width, grad_width=cfg.grad_width,
                                   wgrad_width=cfg.wgrad_width, dense=bool(cfg.dense_lanes))
        super().__init__(rm, counters=COUNTERS + BACKWARD_COUNTERS, targets=TARGETS,
                         dma_width=cfg.dma_width, max_burst=cfg.max_burst,
                         outstanding=cfg.outstanding)

    def elaborate(self, platform):
        m = Module()
        cfg = self.cfg
        dw = cfg.dma_width
        host = self.add_host(m)
        m.submodules.layer = layer = self.layer
        regs = host.regs
        for name in ("mode", "htt_full", "shift_o1", "shift_z2", "shift_z3", "shift_y",
                     "threshold", "leak_amount", "width", "height"):
            m.d.comb += getattr(layer, name).eq(getattr(regs, name))
        target = self.target_index

        # LOADs: weight bytes, or spike positions, out of the beats; the padding after the
        # argument's count is dropped.
        ld = host.load
        gears, mine = self.load_gearboxes(m, host, {"weights": 8, "spikes": cfg.position_bits,
                                                    "grads": cfg.grad_bits})
        wgear, sgear, ggear = gears["weights"], gears["spikes"], gears["grads"]
        is_w, is_s, is_g = mine["weights"], mine["spikes"], mine["grads"]
        first = ld.valid & ld.ready & ld.payload.first
        w_left, w_core = Signal(32), Signal(range(DENSE + 1))
        w_index = Signal.like(layer.load.payload.index)
        s_left, g_left, g_index = Signal(32), Signal(32), Signal(32)
        # The forward engines take LOADed weights, or the backward unit's SGD updates (which
        # come only while a backward pass runs, and win).
        bwd = self.backward
        upd = bwd.updates
        w_fire = wgear.o.valid & (w_left != 0) & layer.load.ready & ~upd.valid
        m.d.comb += [upd.ready.eq(1),
                     wgear.o.ready.eq((layer.load.ready & ~upd.valid) | (w_left == 0))]
        with m.If(upd.valid):
            m.d.comb += [layer.load.valid.eq(1), layer.load.payload.core.eq(upd.payload.core),
                         layer.load.payload.index.eq(upd.payload.index),
                         layer.load.payload.value.eq(upd.payload.value)]
        with m.Else():
            m.d.comb += [layer.load.valid.eq(wgear.o.valid & (w_left != 0)),
                         layer.load.payload.core.eq(w_core),
                         layer.load.payload.index.eq(w_index),
                         layer.load.payload.value.eq(wgear.o.payload.as_signed())]
        with m.If(w_fire):
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

        # The backward unit's loads: each weight again (at the same index; the dense weight is
        # its memory after the cores'), and the output spikes' gradients -- these wait a cycle
        # when a weight is written.
        m.submodules.backward = bwd
        g_fire = ggear.o.valid & (g_left != 0) & ~w_fire
        m.d.comb += ggear.o.ready.eq(~w_fire | (g_left == 0))
        with m.If(w_fire):
            m.d.comb += [bwd.load.valid.eq(1), bwd.load.payload.mem.eq(1 + w_core),
                         bwd.load.payload.index.eq(w_index),
                         bwd.load.payload.value.eq(wgear.o.payload.as_signed())]
        with m.Else():
            m.d.comb += [bwd.load.valid.eq(g_fire), bwd.load.payload.mem.eq(0),
                         bwd.load.payload.index.eq(g_index),
                         bwd.load.payload.value.eq(ggear.o.payload[:cfg.grad_width].as_signed())]
        with m.If(g_fire):
            m.d.sync += [g_left.eq(g_left - 1), g_index.eq(g_index + 1)]
        with m.If(first & is_g):
            m.d.sync += [g_left.eq(ld.payload.arg), g_index.eq(0)]
        weights = len(CORES) + bool(cfg.dense_lanes)      # the weight tensors the core holds
        bad_load = first & ((is_w & (ld.payload.sel >= weights))
                            | ~(is_w | is_s | is_g))

        # The forward state into the backward unit, and its registers; mode dense on a core
        # without the dense engine has no backward pass.
        no_backward = (regs.mode == MODES_RTL["dense"]) if not cfg.dense_lanes else C(0)
        for k in (1, 2, 3):
            connect(m, getattr(layer, f"a{k}_tap"), getattr(bwd, f"a{k}"))
        m.d.comb += [bwd.spikes_in.valid.eq(layer.i.valid & layer.i.ready),
                     bwd.spikes_in.payload.eq(layer.i.payload),
                     bwd.neuron.valid.eq(layer.o.valid & layer.o.ready),
                     bwd.neuron.payload.spikes.eq(layer.o.payload.spikes),
                     bwd.neuron.payload.trace.eq(layer.o.payload.trace)]
        for name in ("mode", "htt_full", "width", "height", "surrogate",
                     *(f"shift_b{k}" for k in (1, 2, 3, 4))):
            m.d.comb += getattr(bwd, name).eq(getattr(regs, name))
        m.d.comb += [bwd.update.eq(regs.sgd.update), bwd.lr_shift.eq(regs.sgd.lr_shift),
                     bwd.theta.eq(regs.threshold - 1), bwd.beta.eq(regs.leak_amount),
                     bwd.start.eq(regs.control.backward & ~no_backward)]
        forward_done, backward_done = Signal(), Signal()
        was_busy, bwd_was_busy = Signal(), Signal()
        m.d.sync += [was_busy.eq(layer.busy), bwd_was_busy.eq(bwd.busy)]
        with m.If(was_busy & ~layer.busy):
            m.d.sync += forward_done.eq(1)
        with m.If(bwd_was_busy & ~bwd.busy):
            m.d.sync += backward_done.eq(1)
        with m.If(regs.control.backward | regs.control.clear):
            m.d.sync += [forward_done.eq(0), backward_done.eq(0)]
        with m.If(regs.control.backward & no_backward):
            m.d.sync += backward_done.eq(1)        # nothing to differentiate: done at once

        # STOREs: the neurons (each padded to neuron_bits), or a backward result (result_bits
        # each, read from the backward unit one per cycle), through a gearbox into beats.
        sreq = host.store_req
        m.submodules.neuron_gear = ngear = Gearbox(cfg.neuron_bits, dw)
        m.submodules.result_gear = rgear = Gearbox(cfg.result_bits, dw)
        owed, res_left = Signal(32), Signal(32)
        res_index = Signal.like(bwd.peek_index)
        priming, from_results = Signal(), Signal()

        def beats_for(count, bits):
            return (count + dw // bits - 1) // (dw // bits) if dw >= bits else count * (bits // dw)

        tgt, arg = sreq.payload.target, sreq.payload.arg
        is_n, is_gi = tgt == target["neurons"], tgt == target["grad_in"]
        is_cg, is_c = tgt == target["core_grads"], tgt == target["cores"]
        need = Mux(is_n, beats_for(arg, cfg.neuron_bits), beats_for(arg, cfg.result_bits))
        bad_store = sreq.valid & sreq.ready & (~(is_n | is_gi | is_cg | is_c)
                                               | ((is_cg | is_c) & (sreq.payload.sel >= weights))
                                               | (sreq.payload.beats != need))
        idle = (owed == 0) & ngear.empty & (res_left == 0) & ~priming & rgear.empty
        m.d.comb += [sreq.ready.eq(idle), ngear.clear.eq(0), rgear.clear.eq(0)]
        with m.If(sreq.valid & sreq.ready & ~bad_store):
            m.d.sync += from_results.eq(~is_n)
            with m.If(is_n):
                m.d.sync += owed.eq(arg)
            with m.Else():
                m.d.sync += [res_left.eq(arg), res_index.eq(0), priming.eq(1),
                             bwd.peek_mem.eq(Mux(is_gi, RESULTS.index("grad_in"),
                                                 Mux(is_cg, RESULTS.index("dg1"),
                                                     RESULTS.index("g1")) + sreq.payload.sel))]
        m.d.comb += [ngear.i.valid.eq(layer.o.valid & (owed != 0)),
                     ngear.i.payload.eq(layer.o.payload.as_value()),
                     ngear.flush.eq(owed == 1),
                     layer.o.ready.eq(ngear.i.ready & (owed != 0))]
        with m.If(layer.o.valid & layer.o.ready):
            m.d.sync += owed.eq(owed - 1)
        # The peek address runs a value ahead of the one offered (the read takes a cycle);
        # priming is the cycle the first value is read.
        take = rgear.i.valid & rgear.i.ready
        m.d.comb += [bwd.peek_index.eq(Mux(take, res_index + 1, res_index)),
                     rgear.i.valid.eq((res_left != 0) & ~priming),
                     rgear.i.payload.eq(bwd.peek_data), rgear.flush.eq(res_left == 1)]
        with m.If(priming):
            m.d.sync += priming.eq(0)
        with m.If(take):
            m.d.sync += [res_left.eq(res_left - 1), res_index.eq(res_index + 1)]
        with m.If(from_results):
            connect(m, rgear.o, host.store)
            m.d.comb += ngear.o.ready.eq(0)
        with m.Else():
            connect(m, ngear.o, host.store)
            m.d.comb += rgear.o.ready.eq(0)
        m.d.comb += host.target_error.eq(bad_load | bad_store)

        m.submodules.counters = counters = PerfCounters({name: 1 for name, _ in COUNTERS})
        clear = regs.control.clear
        m.d.comb += [counters.clear.eq(clear),
                     counters.inc.cycles.eq(1), counters.inc.busy.eq(layer.busy),
                     counters.inc.forward_cycles.eq(layer.maps),
                     *(getattr(counters.inc, f"{g}_rows").eq(layer.issuing[k])
                       for k, g in enumerate(CORES)),
                     counters.inc.dense_rows.eq(layer.issuing[DENSE]),
                     counters.inc.positions.eq(layer.i.valid & layer.i.ready),
                     counters.inc.neurons.eq(layer.o.valid & layer.o.ready),
                     counters.inc.weights.eq(w_fire),
                     counters.inc.backward_cycles.eq(bwd.busy),
                     host.status.status.busy.eq(layer.busy),
                     host.status.status.forward_done.eq(forward_done),
                     host.status.status.backward_done.eq(backward_done)]
        for name, _ in COUNTERS:
            m.d.comb += getattr(host.status, name).eq(getattr(counters.count, name))
        for (name, _), value in zip(BACKWARD_COUNTERS, (bwd.cycles_surrogate, bwd.cycles_dgrad,
                                                        bwd.cycles_wgrad, bwd.macs,
                                                        bwd.cycles_update)):
            m.d.comb += getattr(host.status, name).eq(value)
        return m

