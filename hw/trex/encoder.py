"""The encoder core: transformer encoders with attention reuse on one crossbar tile, the
attention unit and a vector unit, behind the shared host interface."""

from __future__ import annotations

from amaranth import *
from amaranth.lib import data

from ...golden.trex.params import LN_F, LN_G, LN_K
from ..common.arith import Divider, ISqrt
from ..common.counters import PerfCounters
from ..common.host_interface import HostCore
from ..common.hostport import RegisterMap
from ..common.memory import buffer, pow2
from ..common.streams import Gearbox
from .attention import AttentionUnit
from .config import TrexConfig
from .xbar import CrossbarTile

__all__ = ["EncoderCore", "ENCODER_COUNTERS", "ENCODER_TARGETS", "PROGRAM", "BUFFERS"]

ENCODER_COUNTERS = (
    ("cycles", "cycles since the last clear"),
    ("busy", "cycles the encoders ran"),
    ("ln_cycles", "cycles of LayerNorms"),
    ("matmul_cycles", "cycles of matmuls (weights loading excluded)"),
    ("weight_cycles", "cycles loading or waiting for a block's weights"),
    ("attention_cycles", "cycles of attention heads"),
    ("residual_cycles", "cycles of residual additions"),
    ("reads", "crossbar reads (one per input plane)"),
    ("conversions", "ADC conversions"),
    ("vectors", "matrix-vector products"),
    ("weight_blocks", "blocks of n_out weight columns loaded into the tile"),
    ("attention_rows", "attention output rows"),
    ("attention_macs", "attention multiply-accumulates (scores and weighted sums)"),
    ("vector_ops", "vector-unit element operations (LayerNorm, bias and requantization, "
                   "residual)"),
    ("buffer_reads", "activation and residual buffer row reads"),
    ("buffer_writes", "activation and residual buffer writes"),
    ("computed", "encoders that computed their attention"),
    ("reused", "encoders that reused an earlier encoder's attention"),
)

ENCODER_TARGETS = (
    ("params", "load", "32-bit parameter words (TrexConfig.param_fields, param_stride words per "
                       "encoder); argument: the first word's index"),
    ("tokens", "load", "residual-stream rows (dim int16, x_row_bits each), written from row 0 "
                       "while no run is going; argument: rows (at most tokens)"),
    ("weights", "load", "the weight blocks the encoders consume, in order (block_beats each: "
                        "the tile's cell words), taken as each matmul needs them; argument: "
                        "blocks (for the reader; a beat with no run to take it is an error)"),
    ("tokens_out", "store", "residual-stream rows; argument: rows (tokens)"),
    ("outputs", "store", "encoder sel's attention outputs (dim int8, a_row_bits each); "
                         "argument: rows (tokens)"),
)

#: Activation buffers (rows of ``width`` int8 per token); slot ``j`` (encoder ``j``'s attention
#: output) follows them.
BUFFERS = ("h", "q", "k", "v", "o", "hid", "t")

#: The program of an encoder: ``(kind, source, destination, parameter field)``; ``x`` is the
#: residual stream, ``self`` the encoder's slot, ``source`` its reuse source's. A computing
#: encoder runs steps 0..10, a reusing one 11, 12, then 6..10 (its TB replaces 0..5).
PROGRAM = (
    ("ln", "x", "h", "ln1"), ("mm", "h", "q", "q"), ("mm", "h", "k", "k"),
    ("mm", "h", "v", "v"), ("att", "q", "o", "score"), ("mm", "o", "self", "proj"),
    ("res", "self", "x", "a_res"), ("ln", "x", "h", "ln2"), ("mm", "h", "hid", "fc1"),
    ("mm", "hid", "t", "fc2"), ("res", "t", "x", "mlp_res"),
    ("ln", "source", "h", "tb_ln"), ("mm", "h", "self", "tb"),
)
_REUSE_START, _TAIL, _LAST = 11, 6, 10
_KINDS = ("ln", "mm", "att", "res")


def _sat(value, bits):
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    return Mux(value > hi, hi, Mux(value < lo, lo, value))


class EncoderCore(HostCore):
    """Encoders ``0 .. encoders - 1`` of a transformer on the residual stream of one image, as
    ``golden.trex.vit_int.run_encoders`` computes them, started by ``control.run``.

    Per encoder the sequencer runs :data:`PROGRAM`: a computing encoder LayerNorm -> Q, K, V
    projections -> attention (head by head on the :class:`~.attention.AttentionUnit`) -> output
    projection into its slot; an encoder with its bit set in ``reuse`` instead takes slot
    ``sources[j]`` through its TB (LayerNorm -> matmul -> ReLU) into its slot, and its Q/K/V,
    scores, softmax and weighted sums cost no cycles. Both then add the slot to the residual
    stream, and run LayerNorm -> fc1 + ReLU -> fc2 -> residual.

    Matmuls run on one :class:`~.xbar.CrossbarTile`, a block of ``n_out`` output columns at a
    time (the last block may be narrower): the block's cells stream in from the ``weights`` LOAD (``block_beats`` beats), then
    every token's row is a vector (``8 x cols_per_adc`` cycles each, back to back) while the
    epilogue adds the bias, requantizes (``sat8((acc M + 2^(S-1)) >> S)``) and applies the ReLU
    one output a cycle. LayerNorm per row: sum, sum of centred squares, ``// dim``, integer
    square root, ``2^32 // sigma`` (one bit a cycle each), then the normalization one feature a
    cycle. Residual: ``x = sat16(x + sat16((a M + 2^(S-1)) >> S))`` one feature a cycle.

    Cycles per encoder, about: matmuls ``sum(blocks (block_beats + tokens 8 cols_per_adc))``,
    LayerNorms ``tokens (3 dim + ~70)``, attention ``heads tokens (3 + cycles_per_row)``. The
    counters (:data:`ENCODER_COUNTERS`) count each stage.

    Members: ``cmd``/``rsp`` (host port), ``s_axil`` (AXI4-Lite), ``m_axi`` (AXI4 master), ``irq``.
    """

    def __init__(self, cfg: TrexConfig):
        if not isinstance(cfg, TrexConfig):
            raise TypeError(f"cfg must be a TrexConfig, not {cfg!r}")
        self.cfg = cfg
        self.tile = CrossbarTile(cfg.tile, chunk_width=cfg.dma_width)
        self.unit = AttentionUnit(cfg.attention)
        rm = RegisterMap(data_width=32)
        rm.add_register("encoders", cfg.depth.bit_length(), reset=cfg.depth,
                        doc=f"encoders to run, 1..{cfg.depth}")
        rm.add_register("reuse", cfg.depth, doc="bit j: encoder j reuses (its TB on the "
                                                "attention output of encoder sources[j])")
        rm.add_register("sources", cfg.depth * cfg.source_bits,
                        doc=f"encoder j's reuse source at bits {cfg.source_bits} j (< j)")
        rm.add_register("adc_bits", cfg.adc_bits.bit_length(), reset=cfg.adc_bits,
                        doc=f"ADC resolution used, 1..{cfg.adc_bits}")
        rm.add_register("adc_shift", cfg.max_shift.bit_length(), reset=cfg.shift,
                        doc=f"ADC LSB as 2^adc_shift column units, 0..{cfg.max_shift}")
        rm.add_register("control", access="pulse", fields={
            "run": (1, "run the encoders on the residual stream"),
            "clear": (1, "clear the counters")})
        rm.add_register("status", access="ro", fields={
            "busy": (1, "a run is pending or going, or a STORE is owed"),
            "error": (1, "the last run stopped: encoders out of range or a source not before "
                         "its encoder")})
        super().__init__(rm, counters=ENCODER_COUNTERS, targets=ENCODER_TARGETS,
                         dma_width=cfg.dma_width, max_burst=cfg.max_burst,
                         outstanding=cfg.outstanding)

    def elaborate(self, platform):
        m = Module()
        cfg = self.cfg
        dw, N, D, W = cfg.dma_width, cfg.tokens, cfg.dim, cfg.width
        n_out, dh = cfg.n_out, cfg.dim // cfg.heads
        host = self.add_host(m)
        regs = host.regs
        target = self.target_index
        m.submodules.tile = tile = self.tile
        m.submodules.unit = unit = self.unit
        m.d.comb += [tile.planes.eq(8), tile.spiking.eq(0), tile.adc_bits.eq(regs.adc_bits),
                     tile.shift.eq(regs.adc_shift), unit.tokens.eq(N),
                     unit.out_shift.eq(cfg.attention.shift_out)]
        scalar = Signal(32)                 # the step's first parameter word
        M, S = scalar[:16], scalar[16:22]
        m.d.comb += [unit.score_mult.eq(scalar[:16]), unit.score_shift.eq(scalar[16:21])]

        # -- memories ---------------------------------------------------------------------------
        npow = pow2(N)
        slot0 = len(BUFFERS)
        m.submodules.act = act = buffer(shape=8 * W, depth=(slot0 + cfg.depth) * npow)
        m.submodules.xmem = xmem = buffer(shape=16 * D, depth=N)
        m.submodules.pmem = pmem = buffer(shape=32, depth=cfg.depth * cfg.param_stride)
        ard, awr = act.read_port(), act.write_port(granularity=8)
        xrd, xwr = xmem.read_port(), xmem.write_port(granularity=16)
        prd, pwr = pmem.read_port(), pmem.write_port()

        def act_row(buf, t):
            return (Value.cast(buf) << (npow.bit_length() - 1)) | t \
                if npow > 1 else buf

        # -- sequencer state --------------------------------------------------------------------
        running, error = Signal(), Signal()
        j = Signal(range(cfg.depth + 1))
        pc = Signal(range(len(PROGRAM)))
        # The run's settings, latched at its start (a register write meanwhile waits for the
        # next run).
        count = Signal.like(regs.encoders)
        reuse_set, sources = Signal.like(regs.reuse), Signal.like(regs.sources)
        src_j = Signal(cfg.source_bits)
        m.d.comb += src_j.eq(sources.word_select(j[:max(1, (cfg.depth - 1).bit_length())]
                                                 if cfg.depth > 1 else 0, cfg.source_bits))
        reusing = reuse_set.bit_select(j, 1) if cfg.depth > 1 else reuse_set[0]
        # The current step's fields, from PROGRAM.
        kind = Signal(range(len(_KINDS)))
        src_buf, dst_buf = Signal(range(slot0 + cfg.depth)), Signal(range(slot0 + cfg.depth))
        src_x, field, wide_in, wide_out, relu = Signal(), Signal(16), Signal(), Signal(), Signal()
        names = {name: k for k, name in enumerate(BUFFERS)}
        with m.Switch(pc):
            for k, (kd, src, dst, fname) in enumerate(PROGRAM):
                with m.Case(k):
                    def buf(name):
                        return {"self": slot0 + j, "source": slot0 + src_j,
                                "x": 0}.get(name, names.get(name, 0))
                    m.d.comb += [kind.eq(_KINDS.index(kd)), src_buf.eq(buf(src)),
                                 dst_buf.eq(buf(dst)), src_x.eq(src == "x"),
                                 field.eq(cfg.param_fields[fname][0]),
                                 wide_in.eq(fname == "fc2"), wide_out.eq(fname == "fc1"),
                                 relu.eq(fname in ("fc1", "tb"))]
        pbase = Signal(len(prd.addr))
        m.d.comb += pbase.eq((j << (cfg.param_stride.bit_length() - 1)) + field)

        # -- shared datapath registers ----------------------------------------------------------
        t_in, t_out = Signal(range(N + 1)), Signal(range(N + 1))
        blk = Signal(range(max(2, -(-max(cfg.mlp, cfg.dim) // n_out) + 1)))
        wbeat_round, wbeat_chunk = Signal(range(cfg.cols_per_adc + 1)), Signal(range(cfg.chunks))
        head = Signal(range(cfg.heads + 1))
        e = Signal(range(W + 3))
        row = Signal(8 * W)                 # an int8 row read from the activation buffer
        xrow = Signal(data.ArrayLayout(signed(16), D))
        pending, have = Signal(), Signal()

        # Counted: the vector unit's element operations, buffer rows read this cycle.
        vec_ops, row_reads = Signal(), Signal(2)

        # -- LayerNorm datapath -----------------------------------------------------------------
        log_d = (D - 1).bit_length()
        cbits = (D << 16).bit_length() + 1
        sq_bits = (D * (D << 16) ** 2).bit_length()
        var_bits = ((D << 16) ** 2).bit_length()
        # Only a dim that is not a power of two divides the squares; else 2^K // sigma alone.
        m.submodules.div = div = Divider(max(sq_bits, LN_K + 1) if D & (D - 1) else LN_K + 1,
                                         max(var_bits // 2 + 1, 8))
        m.submodules.sqrt = sqrt = ISqrt(var_bits)
        total = Signal(signed(16 + log_d + 2))
        sq = Signal(sq_bits)
        sigma = Signal(len(sqrt.root))
        recip = Signal(LN_K + 1)
        nbits = cfg.ln_n_bits
        x_e = Signal(signed(16))
        m.d.comb += x_e.eq(xrow[e[:max(1, log_d)] if D > 1 else 0])
        centred = Signal(signed(cbits))
        m.d.comb += centred.eq(x_e * D - total)
        c_sq, sq_term, sq_valid = Signal(signed(cbits)), Signal(2 * cbits), Signal(2)
        # normalization pipeline: c -> c r -> n -> n g -> y
        p_valid = Signal(4)
        p_e = [Signal(range(W + 1), name=f"ln_e{k}") for k in range(4)]
        c1, n2 = Signal(signed(cbits)), Signal(signed(nbits))
        gb1, gb2, gb3 = Signal(32), Signal(32), Signal(32)
        cr = Signal(signed(cbits + LN_K + 2))
        ng = Signal(signed(nbits + 16))
        half_n, half_y = 1 << (LN_K - LN_F - 1), 1 << (LN_F + LN_G - 1)

        # -- matmul epilogue pipeline: y[e] -> acc = y + bias -> acc M -> requant ----------------
        y_reg = Signal(tile.o.payload.shape())
        y_valid = Signal()
        q_valid = Signal(4)
        q_e = [Signal(range(n_out + 1), name=f"mm_e{k}") for k in range(4)]
        y_e = Signal(signed(tile.y_bits))
        acc = Signal(signed(34))
        prod = Signal(signed(51))
        rq_half = Signal(signed(65))          # S up to 63: 2^62
        m.d.comb += rq_half.eq((C(1, 64) << S) >> 1)
        shifted = Signal(signed(51))          # (acc M + 2^(S-1)) >> S, registered
        requant8 = _sat(shifted, 8)
        mm_value = Signal(signed(8))
        m.d.comb += mm_value.eq(Mux(relu & (requant8 < 0), 0, requant8))

        # -- residual pipeline: a -> a M -> sat16 -> x + . --------------------------------------
        r_valid = Signal(2)
        r_e = [Signal(range(D + 1), name=f"res_e{k}") for k in range(2)]
        r_a = Signal(signed(8))
        r_prod = Signal(signed(26))
        r_q = Signal(signed(16))
        r_x, r_xs = Signal(signed(16)), Signal(signed(16))
        m.d.comb += r_a.eq(row.word_select(e[:max(1, (W - 1).bit_length())], 8).as_signed())

        # -- unload (STOREs) --------------------------------------------------------------------
        sreq = host.store_req
        owed = Signal(range(N + 1))
        owe_x = Signal()
        owe_slot = Signal(range(cfg.depth))
        busy = running | (owed != 0)
        run_req = Signal()          # control.run seen, waiting for the LOADs to land
        with m.If(regs.control.run):
            m.d.sync += run_req.eq(1)
        m.d.comb += [host.status.status.busy.eq(busy | run_req),
                     host.status.status.error.eq(error)]

        # -- LOADs ------------------------------------------------------------------------------
        ld = host.load
        first = ld.valid & ld.ready & ld.payload.first
        in_weights = Signal()
        gears, mine = self.load_gearboxes(m, host, {"params": 32, "tokens": cfg.x_row_bits},
                                          direct={"weights": in_weights})
        pgear, tgear = gears["params"], gears["tokens"]
        is_w = ld.payload.target == target["weights"]
        p_at, t_at = Signal(len(pwr.addr)), Signal(range(N + 1))
        m.d.comb += [pgear.o.ready.eq(1), pwr.en.eq(pgear.o.valid), pwr.addr.eq(p_at),
                     pwr.data.eq(pgear.o.payload)]
        with m.If(pgear.o.valid):
            m.d.sync += p_at.eq(p_at + 1)
        # Residual rows only while nothing runs and nothing is owed (a STORE reads them).
        take_row = tgear.o.valid & ~busy
        m.d.comb += tgear.o.ready.eq(~busy)
        with m.If(take_row & (t_at < N)):
            m.d.sync += t_at.eq(t_at + 1)
        with m.If(first & mine["params"]):
            m.d.sync += p_at.eq(ld.payload.arg)
        with m.If(first & mine["tokens"]):
            m.d.sync += t_at.eq(0)
        # Weights with no run to take them (none started, or it stopped at an error) would
        # hang the command list: an error instead.
        stray_weights = ld.valid & is_w & ~running & ~run_req
        bad_load = stray_weights | first & (
            (mine["tokens"] & (ld.payload.arg > N))
            | (mine["params"] & (ld.payload.arg >= cfg.depth * cfg.param_stride))
            | ~(mine["params"] | mine["tokens"] | is_w))

        # Weight beats straight into the tile's cells while a block loads.
        m.d.comb += [tile.cells.valid.eq(ld.valid & is_w & in_weights),
                     tile.cells.payload.round.eq(wbeat_round),
                     tile.cells.payload.chunk.eq(wbeat_chunk),
                     tile.cells.payload.data.eq(ld.payload.data)]
        weight_beat = ld.valid & is_w & in_weights
        block_done = weight_beat & (wbeat_round == cfg.cols_per_adc - 1) & \
            (wbeat_chunk == cfg.chunks - 1)
        with m.If(weight_beat):
            last_chunk = wbeat_chunk == cfg.chunks - 1
            m.d.sync += [wbeat_chunk.eq(Mux(last_chunk, 0, wbeat_chunk + 1)),
                         wbeat_round.eq(Mux(block_done, 0, wbeat_round + last_chunk))]

        # Write-port defaults: the residual LOAD's rows (only while idle).
        m.d.comb += [xwr.addr.eq(t_at), xwr.data.eq(tgear.o.payload[:16 * D]),
                     xwr.en.eq(Mux(take_row & (t_at < N), (1 << D) - 1, 0))]

        # -- the sequencer ----------------------------------------------------------------------
        with m.FSM() as fsm:
            with m.State("IDLE"):
                # Not while a STORE still reads the last run's rows.
                with m.If(run_req & tgear.empty & pgear.empty & (owed == 0)):
                    m.d.sync += [j.eq(0), error.eq(0), run_req.eq(regs.control.run),
                                 count.eq(regs.encoders), reuse_set.eq(regs.reuse),
                                 sources.eq(regs.sources)]
                    too_many = (regs.encoders > cfg.depth) \
                        if (1 << cfg.depth.bit_length()) - 1 > cfg.depth else C(0)
                    with m.If((regs.encoders == 0) | too_many):
                        m.d.sync += error.eq(1)
                    with m.Else():
                        m.d.sync += running.eq(1)
                        m.next = "ENCODER"
            with m.State("ENCODER"):
                with m.If(j == count):
                    m.d.sync += running.eq(0)
                    m.next = "IDLE"
                with m.Elif(reusing & (src_j >= j)):
                    m.d.sync += [running.eq(0), error.eq(1)]
                    m.next = "IDLE"
                with m.Else():
                    m.d.sync += pc.eq(Mux(reusing, _REUSE_START, 0))
                    m.next = "FETCH"
            with m.State("FETCH"):
                m.d.comb += prd.addr.eq(pbase)
                m.d.sync += [t_in.eq(0), t_out.eq(0), blk.eq(0), head.eq(0), e.eq(0),
                             pending.eq(0), have.eq(0)]
                m.next = "FETCHED"
            with m.State("FETCHED"):
                m.d.sync += scalar.eq(prd.data)
                with m.Switch(kind):
                    with m.Case(_KINDS.index("ln")):
                        m.next = "LN_READ"
                    with m.Case(_KINDS.index("mm")):
                        m.next = "MM_LOAD"
                    with m.Case(_KINDS.index("att")):
                        m.next = "ATT_KV"
                    with m.Case(_KINDS.index("res")):
                        m.next = "RES_READ"
            with m.State("NEXT"):
                with m.If(pc == _LAST):
                    m.d.sync += j.eq(j + 1)
                    m.next = "ENCODER"
                with m.Else():
                    m.d.sync += pc.eq(Mux(pc == _REUSE_START + 1, _TAIL, pc + 1))
                    m.next = "FETCH"

            # -- LayerNorm: a row at a time ----------------------------------------------------
            with m.State("LN_READ"):
                m.d.comb += [ard.addr.eq(act_row(src_buf, t_in)), xrd.addr.eq(t_in),
                             row_reads.eq(1)]
                m.next = "LN_ROW"
            with m.State("LN_ROW"):
                with m.If(src_x):
                    m.d.sync += xrow.eq(xrd.data)
                with m.Else():
                    m.d.sync += [xrow[k].eq(ard.data.word_select(k, 8).as_signed())
                                 for k in range(D)]
                m.d.sync += [total.eq(0), sq.eq(0), e.eq(0)]
                m.next = "LN_SUM"
            with m.State("LN_SUM"):
                m.d.sync += [total.eq(total + x_e), e.eq(e + 1)]
                m.d.comb += vec_ops.eq(1)
                with m.If(e == D - 1):
                    m.d.sync += [e.eq(0), sq_valid.eq(0)]
                    m.next = "LN_SQ"
            with m.State("LN_SQ"):
                # c, then c^2, then the sum: two stages to drain after the last feature
                issue = e < D
                m.d.sync += [c_sq.eq(centred), sq_term.eq(c_sq * c_sq), e.eq(e + 1),
                             sq_valid.eq(Cat(issue, sq_valid[0]))]
                with m.If(sq_valid[1]):
                    m.d.sync += sq.eq(sq + sq_term)
                m.d.comb += vec_ops.eq(issue)
                with m.If(e == D + 1):
                    m.next = "LN_DIV" if D & (D - 1) else "LN_VAR"
            # sum c^2 // dim: a shift for a power of two, else the divider.
            if D & (D - 1):
                with m.State("LN_DIV"):
                    m.next = "LN_VAR"
            with m.State("LN_VAR"):
                if D & (D - 1):
                    with m.If(~div.busy):
                        m.d.comb += [sqrt.value.eq(div.quotient), sqrt.start.eq(1)]
                        m.next = "LN_SQRT"
                else:
                    m.d.comb += [sqrt.value.eq(sq >> log_d), sqrt.start.eq(1)]
                    m.next = "LN_SQRT"
            with m.State("LN_SQRT"):
                with m.If(~sqrt.busy):
                    m.d.sync += sigma.eq(Mux(sqrt.root == 0, 1, sqrt.root))
                    m.next = "LN_RECIP0"
            with m.State("LN_RECIP0"):
                m.next = "LN_RECIP"
            with m.State("LN_RECIP"):
                with m.If(~div.busy):
                    m.d.sync += [recip.eq(div.quotient), e.eq(0), p_valid.eq(0)]
                    m.next = "LN_NORM"
            with m.State("LN_NORM"):
                # stage 0: c and the feature's g | b; 1: c r; 2: n; 3: n g; 4: y into the row
                issue = e < D
                m.d.comb += [prd.addr.eq(pbase + e), vec_ops.eq(issue)]
                m.d.sync += [c1.eq(centred), p_valid.eq(Cat(issue, p_valid[:3])),
                             p_e[0].eq(e), e.eq(e + issue),
                             cr.eq(c1 * recip), gb1.eq(prd.data), p_e[1].eq(p_e[0]),
                             n2.eq((cr + half_n) >> (LN_K - LN_F)), gb2.eq(gb1),
                             p_e[2].eq(p_e[1]),
                             ng.eq(n2 * gb2[:16].as_signed()), gb3.eq(gb2), p_e[3].eq(p_e[2])]
                y = _sat(((ng + half_y) >> (LN_F + LN_G)) + gb3[16:].as_signed(), 8)
                with m.If(p_valid[3]):
                    m.d.comb += [awr.addr.eq(act_row(dst_buf, t_in)),
                                 awr.en.eq(1 << p_e[3]), awr.data.eq(y[:8].replicate(W))]
                    with m.If(p_e[3] == D - 1):
                        with m.If(t_in == N - 1):
                            m.next = "NEXT"
                        with m.Else():
                            m.d.sync += t_in.eq(t_in + 1)
                            m.next = "LN_READ"

            # -- matmul: a block of n_out columns at a time ------------------------------------
            with m.State("MM_LOAD"):
                m.d.comb += in_weights.eq(1)
                with m.If(block_done):
                    m.d.sync += [t_in.eq(0), t_out.eq(0), pending.eq(0), have.eq(0),
                                 y_valid.eq(0), q_valid.eq(0)]
                    m.next = "MM_RUN"
            with m.State("MM_RUN"):
                # The rows in: read, hold, hand to the tile.
                with m.If(~have & ~pending & (t_in < N)):
                    m.d.comb += [ard.addr.eq(act_row(src_buf, t_in)), row_reads.eq(1)]
                    m.d.sync += [pending.eq(1), t_in.eq(t_in + 1)]
                with m.If(pending):
                    m.d.sync += [row.eq(ard.data), pending.eq(0), have.eq(1)]
                m.d.comb += tile.i.valid.eq(have)
                for r in range(cfg.rows):
                    if r < cfg.dim:
                        m.d.comb += tile.i.payload[r].eq(row.word_select(r, 8).as_signed())
                    elif r < cfg.mlp:
                        m.d.comb += tile.i.payload[r].eq(
                            Mux(wide_in, row.word_select(r, 8).as_signed(), 0))
                with m.If(tile.i.valid & tile.i.ready):
                    m.d.sync += have.eq(0)
                # The results out: bias, requantization, ReLU, one column a cycle.
                m.d.comb += tile.o.ready.eq(~y_valid)
                with m.If(tile.o.valid & tile.o.ready):
                    m.d.sync += [y_reg.eq(tile.o.payload), y_valid.eq(1), e.eq(0)]
                issue = y_valid
                m.d.comb += [prd.addr.eq(pbase + 1 + blk * n_out + e[:len(q_e[0])]),
                             y_e.eq(y_reg[e[:max(1, (n_out - 1).bit_length())]]
                                    if n_out > 1 else y_reg[0]),
                             vec_ops.eq(issue)]
                ye1 = Signal(signed(tile.y_bits))
                m.d.sync += [q_valid.eq(Cat(issue, q_valid[:3])), q_e[0].eq(e), ye1.eq(y_e),
                             acc.eq(ye1 + prd.data.as_signed()), q_e[1].eq(q_e[0]),
                             prod.eq(acc * M), q_e[2].eq(q_e[1]),
                             shifted.eq((prod + rq_half) >> S), q_e[3].eq(q_e[2])]
                with m.If(issue):
                    m.d.sync += e.eq(e + 1)
                    with m.If(e == n_out - 1):
                        m.d.sync += y_valid.eq(0)
                # A last block narrower than n_out: its extra columns are not written.
                col = blk * n_out + q_e[3]
                with m.If(q_valid[3]):
                    m.d.comb += [awr.addr.eq(act_row(dst_buf, t_out)),
                                 awr.en.eq(Mux(col < Mux(wide_out, cfg.mlp, cfg.dim), 1 << col, 0)),
                                 awr.data.eq(mm_value.replicate(W))]
                    with m.If(q_e[3] == n_out - 1):
                        m.d.sync += t_out.eq(t_out + 1)
                        with m.If(t_out == N - 1):
                            m.d.sync += blk.eq(blk + 1)
                            with m.If(blk == Mux(wide_out, -(-cfg.mlp // n_out),
                                                 -(-cfg.dim // n_out)) - 1):
                                m.next = "NEXT"
                            with m.Else():
                                m.next = "MM_LOAD"

            # -- attention: a head at a time ---------------------------------------------------
            with m.State("ATT_KV"):
                # e: 0 read K row, 1 read V row (K row held), 2 offer the token
                with m.If(e == 0):
                    m.d.comb += [ard.addr.eq(act_row(names["k"], t_in)), row_reads.eq(1)]
                    m.d.sync += e.eq(1)
                with m.Elif(e == 1):
                    m.d.comb += [ard.addr.eq(act_row(names["v"], t_in)), row_reads.eq(1)]
                    m.d.sync += [row.eq(ard.data), e.eq(2)]
                with m.Else():
                    m.d.comb += [ard.addr.eq(act_row(names["v"], t_in)),
                                 unit.kv.valid.eq(1), unit.kv.payload.index.eq(t_in),
                                 unit.kv.payload.k.eq(row.word_select(head, 8 * dh)),
                                 unit.kv.payload.v.eq(ard.data.word_select(head, 8 * dh))]
                    with m.If(unit.kv.ready):
                        m.d.sync += [e.eq(0), t_in.eq(t_in + 1)]
                        with m.If(t_in == N - 1):
                            m.d.sync += [t_in.eq(0), t_out.eq(0), pending.eq(0), have.eq(0)]
                            m.next = "ATT_Q"
            with m.State("ATT_Q"):
                with m.If(~have & ~pending & (t_in < N)):
                    m.d.comb += [ard.addr.eq(act_row(names["q"], t_in)), row_reads.eq(1)]
                    m.d.sync += [pending.eq(1), t_in.eq(t_in + 1)]
                with m.If(pending):
                    m.d.sync += [row.eq(ard.data), pending.eq(0), have.eq(1)]
                m.d.comb += [unit.q.valid.eq(have),
                             unit.q.payload.eq(row.word_select(head, 8 * dh)),
                             unit.o.ready.eq(1)]
                with m.If(unit.q.valid & unit.q.ready):
                    m.d.sync += have.eq(0)
                with m.If(unit.o.valid):
                    m.d.comb += [awr.addr.eq(act_row(names["o"], t_out)),
                                 awr.en.eq(((1 << dh) - 1) << (head * dh)),
                                 awr.data.eq(Cat(unit.o.payload.as_value().replicate(cfg.heads),
                                                 C(0, 8 * (W - D))))]
                    m.d.sync += t_out.eq(t_out + 1)
                    with m.If(t_out == N - 1):
                        m.d.sync += [head.eq(head + 1), t_in.eq(0), e.eq(0)]
                        with m.If(head == cfg.heads - 1):
                            m.next = "NEXT"
                        with m.Else():
                            m.next = "ATT_KV"

            # -- residual: a row at a time -----------------------------------------------------
            with m.State("RES_READ"):
                m.d.comb += [ard.addr.eq(act_row(src_buf, t_in)), xrd.addr.eq(t_in),
                             row_reads.eq(2)]
                m.next = "RES_ROW"
            with m.State("RES_ROW"):
                m.d.sync += [row.eq(ard.data), xrow.eq(xrd.data), e.eq(0), r_valid.eq(0)]
                m.next = "RES_EL"
            with m.State("RES_EL"):
                issue = e < D
                m.d.comb += vec_ops.eq(issue)
                # stage 0: a M and x; 1: the requantized a; 2: x + it into the row
                m.d.sync += [r_valid.eq(Cat(issue, r_valid[0])), r_e[0].eq(e), e.eq(e + issue),
                             r_prod.eq(r_a * M), r_x.eq(x_e), r_e[1].eq(r_e[0]),
                             r_q.eq(_sat((r_prod + rq_half) >> S, 16)), r_xs.eq(r_x)]
                with m.If(r_valid[1]):
                    m.d.comb += [xwr.addr.eq(t_in), xwr.en.eq(1 << r_e[1]),
                                 xwr.data.eq(_sat(r_xs + r_q, 16)[:16].replicate(D))]
                    with m.If(r_e[1] == D - 1):
                        with m.If(t_in == N - 1):
                            m.next = "NEXT"
                        with m.Else():
                            m.d.sync += t_in.eq(t_in + 1)
                            m.next = "RES_READ"
        dividing = fsm.ongoing("LN_DIV")
        m.d.comb += [div.num.eq(Mux(dividing, sq, 1 << LN_K)), div.den.eq(Mux(dividing, D, sigma)),
                     div.start.eq(dividing | fsm.ongoing("LN_RECIP0"))]

        # -- STOREs: residual rows or a slot's rows, once the encoders are done ----------------
        m.submodules.x_out = xgear = Gearbox(cfg.x_row_bits, dw)
        m.submodules.a_out = agear = Gearbox(cfg.a_row_bits, dw)

        def beats(rows, bits):
            return rows * (bits // dw) if bits >= dw else (rows + dw // bits - 1) // (dw // bits)

        is_x_store = sreq.payload.target == target["tokens_out"]
        is_a_store = sreq.payload.target == target["outputs"]
        need = Mux(is_x_store, beats(sreq.payload.arg, cfg.x_row_bits),
                   beats(sreq.payload.arg, cfg.a_row_bits))
        bad_store = sreq.valid & sreq.ready & (
            ~(is_x_store | is_a_store) | (sreq.payload.beats != need)
            | (sreq.payload.arg != N) | (is_a_store & (sreq.payload.sel >= cfg.depth)))
        m.d.comb += sreq.ready.eq((owed == 0) & xgear.empty & agear.empty)
        u_row, u_pending = Signal(range(N + 1)), Signal()
        with m.If(sreq.valid & sreq.ready & ~bad_store):
            m.d.sync += [owed.eq(N), owe_x.eq(is_x_store), owe_slot.eq(sreq.payload.sel),
                         u_row.eq(0), u_pending.eq(0)]
        unloading = (owed != 0) & ~running
        with m.If(unloading & fsm.ongoing("IDLE")):
            # read row u_row; the cycle after, push it into its gearbox
            with m.If(~u_pending & (u_row < N)):
                m.d.comb += [xrd.addr.eq(u_row), ard.addr.eq(act_row(slot0 + owe_slot, u_row)),
                             row_reads.eq(1)]
                m.d.sync += [u_pending.eq(1), u_row.eq(u_row + 1)]
            with m.If(u_pending):
                m.d.comb += [xrd.addr.eq(u_row - 1),
                             ard.addr.eq(act_row(slot0 + owe_slot, u_row - 1))]
        push = u_pending & unloading & Mux(owe_x, xgear.i.ready, agear.i.ready)
        last_row = push & (owed == 1)
        m.d.comb += [xgear.i.valid.eq(u_pending & unloading & owe_x),
                     xgear.i.payload.eq(xrd.data), xgear.flush.eq(last_row), xgear.clear.eq(0),
                     agear.i.valid.eq(u_pending & unloading & ~owe_x),
                     agear.i.payload.eq(ard.data[:8 * D]), agear.flush.eq(last_row),
                     agear.clear.eq(0)]
        with m.If(push):
            m.d.sync += [u_pending.eq(0), owed.eq(owed - 1)]
        m.d.comb += [host.store.valid.eq(Mux(owe_x, xgear.o.valid, agear.o.valid)),
                     host.store.payload.eq(Mux(owe_x, xgear.o.payload, agear.o.payload)),
                     xgear.o.ready.eq(owe_x & host.store.ready),
                     agear.o.ready.eq(~owe_x & host.store.ready)]
        m.d.comb += host.target_error.eq(bad_load | bad_store)

        # -- counters ---------------------------------------------------------------------------
        m.submodules.counters = counters = PerfCounters(
            {**{name: 1 for name, _ in ENCODER_COUNTERS},
             "conversions": cfg.n_adc.bit_length(), "attention_macs": dh.bit_length(),
             "buffer_reads": 2})
        inc = counters.inc
        ln_states = ("LN_READ", "LN_ROW", "LN_SUM", "LN_SQ", *(("LN_DIV",) if D & (D - 1) else ()),
                     "LN_VAR", "LN_SQRT", "LN_RECIP0", "LN_RECIP", "LN_NORM")
        m.d.comb += [counters.clear.eq(regs.control.clear), inc.cycles.eq(1),
                     inc.busy.eq(running),
                     inc.ln_cycles.eq(Cat(*[fsm.ongoing(s) for s in ln_states]).any()),
                     inc.matmul_cycles.eq(fsm.ongoing("MM_RUN")),
                     inc.weight_cycles.eq(fsm.ongoing("MM_LOAD")),
                     inc.attention_cycles.eq(fsm.ongoing("ATT_KV") | fsm.ongoing("ATT_Q")),
                     inc.residual_cycles.eq(Cat(*[fsm.ongoing(s) for s in (
                         "RES_READ", "RES_ROW", "RES_EL")]).any()),
                     inc.reads.eq(tile.read),
                     inc.conversions.eq(Mux(tile.converting, cfg.n_adc, 0)),
                     inc.vectors.eq(tile.o.valid & tile.o.ready),
                     inc.weight_blocks.eq(block_done),
                     inc.attention_rows.eq(unit.o.valid & unit.o.ready),
                     inc.attention_macs.eq(unit.macs),
                     inc.vector_ops.eq(vec_ops),
                     inc.buffer_reads.eq(row_reads),
                     inc.buffer_writes.eq(awr.en.any() | xwr.en.any()),
                     inc.computed.eq(fsm.ongoing("ENCODER") & (j != count) & ~reusing),
                     inc.reused.eq(fsm.ongoing("ENCODER") & (j != count) & reusing
                                   & (src_j < j))]
        for name, _ in ENCODER_COUNTERS:
            m.d.comb += getattr(host.status, name).eq(getattr(counters.count, name))
        return m
