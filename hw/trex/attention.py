"""The attention unit: one head's integer self-attention (scores, base-2 softmax, weighted sum of
the values) on a digital multiply-accumulate array."""

from __future__ import annotations

from amaranth import *
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from ...golden.trex.params import AttentionParams, exp2_lut
from ..common.memory import buffer

__all__ = ["AttentionUnit"]


def _tree(terms):
    """Balanced adder tree."""
    terms = list(terms)
    while len(terms) > 1:
        terms = [terms[i] + terms[i + 1] if i + 1 < len(terms) else terms[i]
                 for i in range(0, len(terms), 2)]
    return terms[0]


class AttentionUnit(wiring.Component):
    """``out = sat8(round(softmax2(q K^T) V))`` per query row, exactly as
    ``golden.trex.attention.attention_head`` computes it.

    The keys and values of the head's ``tokens`` tokens are written first (``kv``, by token
    index); then each query row on ``q`` gives its output row on ``o``. Per query row, four
    phases on ``d_head`` multipliers each side: scores (one key a cycle: a ``d_head``-term dot
    product, then ``u = s * score_mult >> score_shift``, the row's maximum kept), exponentials
    (one a cycle: ``LUT[frac] >> whole`` of the distance to the maximum, their sum kept), the
    reciprocal ``floor(2^R / sum)`` (a restoring divider, one quotient bit a cycle), and the
    weighted sum (one value row a cycle: ``a = e * r >> (P + L)``, ``d_head`` products
    accumulated), then the rounding shift and int8 saturation.

    Latency and throughput: one row per :meth:`cycles_per_row` ``(tokens)`` cycles, rows one
    after another (``3 * tokens + R - P + 1 + PIPE``, :attr:`PIPE` the pipelines' and handshakes' cycles).

    Ports
    -----
    kv : In(stream of {index, k, v}): token ``index``'s key and value rows (int8 each)
    q : In(stream of ``d_head`` int8); o : Out(stream of ``d_head`` int8)
    tokens : In: the head's tokens N (1..max_tokens); score_mult, score_shift, out_shift : In
    busy : Out(1): a row is in flight; macs : Out: multiply-accumulates issued this cycle
    """

    #: Cycles of a row beyond one per token and phase and one per quotient bit: the phases'
    #: pipelines (scores 5, exponentials 2, weighted sum 4), taking the row and offering its
    #: output (1 each).
    PIPE = 5 + 2 + 4 + 2

    def __init__(self, p: AttentionParams):
        if not isinstance(p, AttentionParams):
            raise TypeError(f"p must be an AttentionParams, not {p!r}")
        self.p = p
        d = p.d_head
        row = data.ArrayLayout(signed(8), d)
        self.u_bits = p.score_bits + 17
        self.quotient_bits = p.prob_bits + p.token_bits + 1
        super().__init__({
            "kv": In(stream.Signature(data.StructLayout({
                "index": range(max(2, p.max_tokens)), "k": row, "v": row}))),
            "q": In(stream.Signature(row)),
            "o": Out(stream.Signature(row)),
            "tokens": In(range(p.max_tokens + 1)),
            "score_mult": In(16),
            "score_shift": In(5),
            "out_shift": In(5),
            "busy": Out(1),
            "macs": Out(range(d + 1)),
        })

    def cycles_per_row(self, tokens: int) -> int:
        return 3 * tokens + self.quotient_bits + self.PIPE

    def elaborate(self, platform):
        m = Module()
        p = self.p
        d, P, F, L = p.d_head, p.lut_bits, p.frac_bits, p.token_bits
        depth = max(2, p.max_tokens)
        row = data.ArrayLayout(signed(8), d)

        # -- keys and values --------------------------------------------------------------------
        m.submodules.keys = kmem = buffer(shape=row, depth=depth, ram_style="distributed")
        m.submodules.values = vmem = buffer(shape=row, depth=depth, ram_style="distributed")
        kw, vw = kmem.write_port(), vmem.write_port()
        kr, vr = kmem.read_port(), vmem.read_port()
        m.d.comb += [self.kv.ready.eq(1),
                     kw.addr.eq(self.kv.payload.index), kw.data.eq(self.kv.payload.k),
                     kw.en.eq(self.kv.valid),
                     vw.addr.eq(self.kv.payload.index), vw.data.eq(self.kv.payload.v),
                     vw.en.eq(self.kv.valid), kr.en.eq(1), vr.en.eq(1)]
        # Per-row buffers: each token's u, then its exponential.
        m.submodules.scores = umem = buffer(shape=signed(self.u_bits), depth=depth,
                                            ram_style="distributed")
        m.submodules.exps = emem = buffer(shape=P + 1, depth=depth, ram_style="distributed")
        uw, ur = umem.write_port(), umem.read_port()
        ew, er = emem.write_port(), emem.read_port()
        m.d.comb += [ur.en.eq(1), er.en.eq(1)]

        q = Signal(row)
        j = Signal(range(depth + 1))            # the token issued this phase
        last = j == self.tokens - 1
        m.d.comb += [kr.addr.eq(j), vr.addr.eq(j), ur.addr.eq(j), er.addr.eq(j)]

        # -- scores: k read (1), products (2), dot product (3), scaled (4), u (5) ---------------
        sc1, sc2, sc3, sc4 = Signal(), Signal(), Signal(), Signal()
        idx1, idx2, idx3, idx4 = (Signal(range(depth), name=f"score_index{k}")
                                  for k in (1, 2, 3, 4))
        prods = [Signal(signed(17), name=f"qk_{c}") for c in range(d)]
        dot = Signal(signed(p.score_bits))
        u_new = Signal(signed(self.u_bits))
        m.d.sync += [prods[c].eq(q[c] * kr.data[c]) for c in range(d)]
        scaled = Signal(signed(p.score_bits + 17))
        m.d.sync += [dot.eq(_tree(prods)), scaled.eq(dot * self.score_mult), idx2.eq(idx1),
                     idx3.eq(idx2), idx4.eq(idx3), sc2.eq(sc1), sc3.eq(sc2), sc4.eq(sc3)]
        m.d.comb += u_new.eq(scaled >> self.score_shift)
        u_max, have_max = Signal(signed(self.u_bits)), Signal()
        m.d.comb += [uw.addr.eq(idx4), uw.data.eq(u_new), uw.en.eq(sc4)]
        with m.If(sc4):
            with m.If(~have_max | (u_new > u_max)):
                m.d.sync += u_max.eq(u_new)
            m.d.sync += have_max.eq(1)

        # -- exponentials: u read (1), e (2) ------------------------------------------------------
        ex1, ex2 = Signal(), Signal()
        eidx1, eidx2 = Signal(range(depth)), Signal(range(depth))
        lut = Array(Const(v, P + 1) for v in exp2_lut(p))
        delta = Signal(self.u_bits + 1)
        m.d.comb += delta.eq(u_max - ur.data)
        whole = delta >> F
        e_new = Signal(P + 1)
        m.d.sync += [e_new.eq(Mux(whole > P + 1, 0, lut[delta[:F] if F else 0] >> whole[:6])),
                     ex2.eq(ex1), eidx2.eq(eidx1)]
        total = Signal(p.sum_bits)
        m.d.comb += [ew.addr.eq(eidx2), ew.data.eq(e_new), ew.en.eq(ex2)]

        # -- reciprocal: floor(2^R / total), a quotient bit a cycle --------------------------------
        qbits = self.quotient_bits
        rem = Signal(p.sum_bits + 1)
        recip = Signal(qbits)
        bit = Signal(range(qbits + 1))
        # 2^R / total = 2^(R - P) * 2^P / total: the dividend's top bits enter from 2^P down.
        lead = P

        # -- weighted sum: e and v read (1), a (2), products (3), accumulate -------------------
        ws1, ws2, ws3 = Signal(), Signal(), Signal()
        a = Signal(p.prob_bits + 1)
        m.d.sync += a.eq((er.data * recip) >> (P + L))
        vals2 = Signal(row)
        m.d.sync += [vals2.eq(vr.data), ws2.eq(ws1), ws3.eq(ws2)]
        avs = [Signal(signed(p.prob_bits + 10), name=f"av_{c}") for c in range(d)]
        m.d.sync += [avs[c].eq(a * vals2[c]) for c in range(d)]
        acc = [Signal(signed(p.prob_bits + 10 + L), name=f"acc_{c}") for c in range(d)]
        clear_acc = Signal()
        for c in range(d):
            with m.If(clear_acc):
                m.d.sync += acc[c].eq(0)
            with m.Elif(ws3):
                m.d.sync += acc[c].eq(acc[c] + avs[c])
        out = Signal(row)
        half = Signal(32)
        m.d.comb += half.eq((C(1, 33) << self.out_shift) >> 1)
        for c in range(d):
            rounded = Signal(signed(len(acc[c]) + 1), name=f"rounded_{c}")
            m.d.comb += rounded.eq((acc[c] + half) >> self.out_shift)
            m.d.comb += out[c].eq(Mux(rounded > 127, 127, Mux(rounded < -128, -128, rounded)))

        m.d.comb += [self.macs.eq(Mux(sc1 | ws3, d, 0))]
        drain = Signal(range(5))
        held = Signal(row)
        m.d.comb += [self.o.payload.eq(held)]
        with m.FSM():
            with m.State("IDLE"):
                m.d.comb += self.q.ready.eq(1)
                with m.If(self.q.valid):
                    m.d.sync += [q.eq(self.q.payload), j.eq(0), have_max.eq(0)]
                    m.next = "SCORE"
            with m.State("SCORE"):
                m.d.comb += self.busy.eq(1)
                m.d.sync += [sc1.eq(1), idx1.eq(j), j.eq(j + 1)]
                with m.If(last):
                    m.next = "SCORE_DRAIN"
            with m.State("SCORE_DRAIN"):
                m.d.comb += self.busy.eq(1)
                m.d.sync += [sc1.eq(0), drain.eq(drain + 1), j.eq(0), total.eq(0)]
                with m.If(drain == 4):
                    m.d.sync += drain.eq(0)
                    m.next = "EXP"
            with m.State("EXP"):
                m.d.comb += self.busy.eq(1)
                m.d.sync += [ex1.eq(1), eidx1.eq(j), j.eq(j + 1)]
                with m.If(last):
                    m.next = "EXP_DRAIN"
            with m.State("EXP_DRAIN"):
                m.d.comb += self.busy.eq(1)
                m.d.sync += [ex1.eq(0), drain.eq(drain + 1)]
                with m.If(drain == 1):
                    m.d.sync += [drain.eq(0), rem.eq(1 << lead), bit.eq(0), recip.eq(0)]
                    m.next = "DIVIDE"
            with m.State("DIVIDE"):
                m.d.comb += self.busy.eq(1)
                fits = rem >= total
                nxt = Mux(fits, rem - total, rem)
                m.d.sync += [recip.eq(Cat(fits, recip[:-1])), rem.eq(nxt << 1),
                             bit.eq(bit + 1), j.eq(0)]
                with m.If(bit == qbits - 1):
                    m.next = "SUM"
            with m.State("SUM"):
                m.d.comb += [self.busy.eq(1), clear_acc.eq(j == 0)]
                m.d.sync += [ws1.eq(1), j.eq(j + 1)]
                with m.If(last):
                    m.next = "SUM_DRAIN"
            with m.State("SUM_DRAIN"):
                m.d.comb += self.busy.eq(1)
                m.d.sync += [ws1.eq(0), drain.eq(drain + 1)]
                with m.If(drain == 3):
                    m.d.sync += [drain.eq(0), held.eq(out)]
                    m.next = "OUT"
            with m.State("OUT"):
                m.d.comb += [self.busy.eq(1), self.o.valid.eq(1)]
                with m.If(self.o.ready):
                    m.next = "IDLE"
        with m.If(ex2):
            m.d.sync += total.eq(total + e_new)
        return m
