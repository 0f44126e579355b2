"""The attention core: an :class:`~.attention.AttentionUnit` behind the shared host interface."""

from __future__ import annotations

from dataclasses import dataclass

from amaranth import *
from amaranth.lib.wiring import connect

from ...golden.trex.params import AttentionParams
from ...params import inherit
from ..common.counters import PerfCounters
from ..common.host_interface import HostCore, HostInterfaceParams
from ..common.hostport import RegisterMap
from ..common.streams import Gearbox
from .attention import AttentionUnit
from .config import slot_bits

__all__ = ["AttnConfig", "AttnCore", "ATTN_COUNTERS", "ATTN_TARGETS"]

ATTN_COUNTERS = (
    ("cycles", "cycles since the last clear"),
    ("busy", "cycles the unit held a query row"),
    ("rows", "output rows delivered"),
    ("macs", "multiply-accumulates (scores and weighted sums)"),
)

ATTN_TARGETS = (
    ("kv", "load", "per token its key row then its value row (int8 each), kv_bits a token; "
                   "argument: tokens (written from index 0)"),
    ("q", "load", "query rows (int8), row_bits each; argument: rows"),
    ("out", "store", "output rows (int8), row_bits each; argument: rows"),
)


@dataclass(frozen=True)
class AttnConfig(AttentionParams):
    """An attention core: one head's unit (:class:`AttentionParams`) and the AXI4 master."""

    dma_width: int = inherit(HostInterfaceParams, "dma_width")
    max_burst: int = inherit(HostInterfaceParams, "max_burst")
    outstanding: int = inherit(HostInterfaceParams, "outstanding")

    @property
    def row_bits(self) -> int:
        """Memory bits of a query or output row."""
        return slot_bits(8 * self.d_head, self.dma_width)

    @property
    def kv_bits(self) -> int:
        """Memory bits of a token's key and value rows."""
        return slot_bits(16 * self.d_head, self.dma_width)


class AttnCore(HostCore):
    """One attention head after another: a command list LOADs a head's keys and values (target
    ``kv``), writes ``tokens``, ``score_mult``, ``score_shift``, ``out_shift``, posts the
    outputs' STORE (``out``) and LOADs the query rows (``q``), which stream through the unit;
    the next head waits for ``status.busy`` to fall. Throughput and latency: the unit's, one row
    per ``AttentionUnit.cycles_per_row(tokens)`` cycles. See :data:`ATTN_TARGETS` and
    :attr:`regmap`.

    Members: ``cmd``/``rsp`` (host port), ``s_axil`` (AXI4-Lite), ``m_axi`` (AXI4 master), ``irq``.
    """

    def __init__(self, cfg: AttnConfig):
        if not isinstance(cfg, AttnConfig):
            raise TypeError(f"cfg must be an AttnConfig, not {cfg!r}")
        self.cfg = cfg
        self.unit = AttentionUnit(cfg)
        rm = RegisterMap(data_width=32)
        rm.add_register("tokens", cfg.max_tokens.bit_length(), reset=cfg.max_tokens,
                        doc=f"tokens of the head, 1..{cfg.max_tokens}")
        rm.add_register("score_mult", 16, reset=cfg.score_mult,
                        doc="u = (q.k * score_mult) >> score_shift: base-2 exponent, F fraction "
                            "bits")
        rm.add_register("score_shift", 5, reset=cfg.score_shift, doc="see score_mult")
        rm.add_register("out_shift", 5, reset=cfg.shift_out,
                        doc="out = sat8((sum a v + half) >> out_shift)")
        rm.add_register("control", access="pulse", fields={"clear": (1, "clear the counters")})
        rm.add_register("status", access="ro", fields={"busy": (1, "a query row in flight")})
        super().__init__(rm, counters=ATTN_COUNTERS, targets=ATTN_TARGETS,
                         dma_width=cfg.dma_width, max_burst=cfg.max_burst,
                         outstanding=cfg.outstanding)

    def elaborate(self, platform):
        m = Module()
        cfg = self.cfg
        dw, d = cfg.dma_width, cfg.d_head
        host = self.add_host(m)
        m.submodules.unit = unit = self.unit
        regs = host.regs
        m.d.comb += [unit.tokens.eq(regs.tokens), unit.score_mult.eq(regs.score_mult),
                     unit.score_shift.eq(regs.score_shift), unit.out_shift.eq(regs.out_shift)]
        target = self.target_index

        ld = host.load
        gears, mine = self.load_gearboxes(m, host, {"kv": cfg.kv_bits, "q": cfg.row_bits})
        kgear, qgear = gears["kv"], gears["q"]
        is_kv, is_q = mine["kv"], mine["q"]
        first = ld.valid & ld.ready & ld.payload.first
        kv_left, kv_index, q_left = Signal(32), Signal(range(max(2, cfg.max_tokens))), Signal(32)
        kv_fire = kgear.o.valid & (kv_left != 0)
        m.d.comb += [unit.kv.valid.eq(kv_fire), unit.kv.payload.index.eq(kv_index),
                     unit.kv.payload.k.eq(kgear.o.payload[:8 * d]),
                     unit.kv.payload.v.eq(kgear.o.payload[8 * d:16 * d]),
                     kgear.o.ready.eq(1)]
        with m.If(kv_fire):
            m.d.sync += [kv_left.eq(kv_left - 1), kv_index.eq(kv_index + 1)]
        m.d.comb += [unit.q.valid.eq(qgear.o.valid & (q_left != 0)),
                     unit.q.payload.eq(qgear.o.payload[:8 * d]),
                     qgear.o.ready.eq(unit.q.ready | (q_left == 0))]
        with m.If(unit.q.valid & unit.q.ready):
            m.d.sync += q_left.eq(q_left - 1)
        # After the decrements: a LOAD's first beat can enter on the cycle the previous LOAD's
        # last item leaves its gearbox, and its count must win.
        with m.If(first & is_kv):
            m.d.sync += [kv_left.eq(ld.payload.arg), kv_index.eq(0)]
        with m.If(first & is_q):
            m.d.sync += q_left.eq(ld.payload.arg)
        bad_load = first & ((is_kv & (ld.payload.arg > cfg.max_tokens)) | ~(is_kv | is_q))

        # Output rows, each padded to row_bits, into beats.
        m.submodules.out_gear = ogear = Gearbox(cfg.row_bits, dw)
        sreq = host.store_req
        owed = Signal(32)
        if cfg.row_bits >= dw:
            need = sreq.payload.arg * (cfg.row_bits // dw)
        else:
            per_beat = dw // cfg.row_bits
            need = (sreq.payload.arg + per_beat - 1) // per_beat
        bad_store = sreq.valid & sreq.ready & ((sreq.payload.target != target["out"])
                                               | (sreq.payload.beats != need))
        m.d.comb += [sreq.ready.eq((owed == 0) & ogear.empty), ogear.clear.eq(0)]
        with m.If(sreq.valid & sreq.ready & ~bad_store):
            m.d.sync += owed.eq(sreq.payload.arg)
        m.d.comb += [ogear.i.valid.eq(unit.o.valid & (owed != 0)),
                     ogear.i.payload.eq(unit.o.payload.as_value()),
                     ogear.flush.eq((owed == 1) & unit.o.valid),
                     unit.o.ready.eq(ogear.i.ready & (owed != 0))]
        with m.If(unit.o.valid & unit.o.ready):
            m.d.sync += owed.eq(owed - 1)
        connect(m, ogear.o, host.store)
        m.d.comb += host.target_error.eq(bad_load | bad_store)

        m.submodules.counters = counters = PerfCounters(
            {**{name: 1 for name, _ in ATTN_COUNTERS}, "macs": d.bit_length()})
        clear = regs.control.clear
        m.d.comb += [counters.clear.eq(clear), counters.inc.cycles.eq(1),
                     counters.inc.busy.eq(unit.busy),
                     counters.inc.rows.eq(unit.o.valid & unit.o.ready),
                     counters.inc.macs.eq(unit.macs),
                     host.status.status.busy.eq(unit.busy)]
        for name, _ in ATTN_COUNTERS:
            m.d.comb += getattr(host.status, name).eq(getattr(counters.count, name))
        return m
