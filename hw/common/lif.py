"""Leaky integrate-and-fire neurons in the fully temporal-parallel (FTP) style."""

from __future__ import annotations

from dataclasses import dataclass

from amaranth import *
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from ...golden.common.lif_params import LIFParams
from ...params import param
from .counters import PerfCounters

__all__ = ["LIFArray", "LIFArrayConfig", "lif_input_layout", "lif_output_layout"]


@dataclass(frozen=True)
class LIFArrayConfig(LIFParams):
    """The ``lif_array`` generator's parameters: the neuron (:class:`LIFParams`) and the array's
    pipelining and outputs."""

    ops_per_stage: int = param(
        1, "LIF operations per pipeline stage (each step is a leak and an integrate-fire op; "
        "latency = ceil(2T / ops_per_stage))", lo=1, hi=64,
        check=lambda c, v: v <= 2 * c.T, what=lambda c: f"an integer in 1..{2 * c.T}")
    membrane: bool = param(True, "emit each neuron's final membrane beside its spike word")

    @property
    def lif(self) -> LIFParams:
        """The neuron alone."""
        return LIFParams(**{p.name: getattr(self, p.name) for p in LIFParams.params()})


def lif_input_layout(T: int, in_width: int) -> data.StructLayout:
    """One beat per neuron: its ``T`` input currents, step 0 first."""
    return data.StructLayout({"current": data.ArrayLayout(signed(in_width), T)})


def lif_output_layout(T: int, mem_width: int, membrane: bool = True, trace: bool = False,
                      currents_width: int = 0) -> data.StructLayout:
    """One beat per neuron: its ``T``-bit spike word (bit ``t`` = step ``t``), if ``membrane`` its
    final membrane, if ``trace`` each step's membrane before its reset (what BPTT reads), and
    with a ``currents_width`` its input currents again."""
    return data.StructLayout({
        "spikes": T, **({"membrane": signed(mem_width)} if membrane else {}),
        **({"trace": data.ArrayLayout(signed(mem_width), T)} if trace else {}),
        **({"current": data.ArrayLayout(signed(currents_width), T)} if currents_width else {})})


class LIFArray(wiring.Component):
    """A stream of LIF neurons, each evaluated over all ``T`` time steps in one pass.

    Computes, bit-exactly, :func:`snnforge.golden.common.lif.lif_integer` for each neuron: the beat on
    ``i`` carries the neuron's ``T`` input currents, the beat on ``o`` its ``T``-bit spike word
    (gated by the dynamic time-step mask ``tmask``) and (``membrane``) its membrane after step
    ``T - 1``. The
    membrane starts at 0 for every neuron: in the FTP dataflow all steps of a neuron arrive at once,
    so no state is kept between beats.

    Each time step is two operations -- the leak, then integrate-fire-reset -- and the ``2 T``
    operations form one dependency chain; ``ops_per_stage`` of them are evaluated per pipeline
    stage. Latency: ``ceil(2 T / ops_per_stage)`` cycles from ``i`` to ``o`` (1 op per stage is
    what reaches 100 MHz on ECP5 with a variable leak shift). Throughput: one neuron per cycle.
    The whole pipeline stalls while ``o`` is not ready.

    ``threshold``, ``leak_amount`` and ``tmask`` are register values; change them only while the
    pipeline is empty.

    Parameters
    ----------
    params : LIFParams
        Structure: ``T``, ``in_width``, ``mem_width``, ``leak``, ``leak_frac``, ``reset``,
        ``saturate``, ``masked``. Its register values are ignored here (they are ports).
    ops_per_stage : int
        Operations (half time steps) evaluated per pipeline stage (1 .. 2 T).
    membrane : bool
        Emit each neuron's final membrane beside its spike word (else spikes only).
    trace : bool
        Also emit each step's membrane before its reset (``lif_integer(..., trace=True)``), for
        BPTT: ``T * mem_width`` more bits carried through the stages.
    echo_currents : bool
        Also emit the neuron's input currents (carried through the stages anyway).

    Members
    -------
    i : In(stream.Signature(lif_input_layout(T, in_width)))
    o : Out(stream.Signature(lif_output_layout(T, mem_width, membrane, trace, ...)))
    threshold : In(mem_width - 1)
    leak_amount : In(...)
        The shift ``k`` for leak ``"shift"``, the fraction ``beta`` for leak ``"mul"``; 1 bit
        and ignored for leak ``"none"``.
    tmask : In(T)
        Bit ``t`` set: step ``t`` is evaluated; a masked step emits no spike.
    clear : In(1)
        Zeroes ``evaluated``.
    evaluated : Out(32)
        Neuron-steps evaluated so far (``popcount(tmask)`` per neuron delivered on ``o``).
    """

    def __init__(self, params: LIFParams, *, ops_per_stage: int = 1, membrane: bool = True,
                 trace: bool = False, echo_currents: bool = False):
        if not isinstance(params, LIFParams):
            raise TypeError(f"params must be a LIFParams, not {params!r}")
        if not isinstance(ops_per_stage, int) or not 1 <= ops_per_stage <= 2 * params.T:
            raise ValueError(f"ops_per_stage must be an integer in 1..{2 * params.T}, "
                             f"not {ops_per_stage!r}")
        for name, value in (("membrane", membrane), ("trace", trace),
                            ("echo_currents", echo_currents)):
            if not isinstance(value, bool):
                raise ValueError(f"{name} must be a bool, not {value!r}")
        self._p = params
        self._ops_per_stage = ops_per_stage
        self._membrane, self._trace, self._echo = membrane, trace, echo_currents
        super().__init__({
            "i": In(stream.Signature(lif_input_layout(params.T, params.in_width))),
            "o": Out(stream.Signature(lif_output_layout(
                params.T, params.mem_width, membrane, trace,
                params.in_width if echo_currents else 0))),
            "threshold": In(params.threshold_bits),
            "leak_amount": In(self.leak_amount_bits),
            "tmask": In(params.T),
            "clear": In(1),
            "evaluated": Out(32),
        })

    @property
    def params(self) -> LIFParams:
        return self._p

    @property
    def leak_amount_bits(self) -> int:
        return self._p.leak_amount_bits

    @property
    def latency(self) -> int:
        return -(-2 * self._p.T // self._ops_per_stage)

    @property
    def throughput(self) -> float:
        """Neurons per cycle."""
        return 1.0

    def _leak(self, m, t, V):
        """First operation of step ``t``: the leak."""
        p = self._p
        if p.leak == "none":
            return V
        if p.leak == "shift":
            leaked = V - (V >> self.leak_amount)
        else:
            leaked = (V * self.leak_amount) >> p.leak_frac
        out = Signal(signed(p.mem_width), name=f"leaked{t}")
        m.d.comb += out.eq(leaked)
        return out

    def _integrate(self, m, t, L, current):
        """Second operation of step ``t``: integrate, fire, reset. Returns (membrane, spike, the
        membrane before the reset)."""
        p = self._p
        mw = p.mem_width
        lo, hi = -(1 << (mw - 1)), (1 << (mw - 1)) - 1
        wide = Signal(signed(max(mw, p.in_width) + 1), name=f"sum{t}")
        m.d.comb += wide.eq(L + current)
        gate = self.tmask[t]
        fire = Signal(name=f"fire{t}")
        H = Signal(signed(mw), name=f"h{t}")
        after = 0
        if p.saturate:
            # Overflow is a bit test on the sum (no comparator in series with the adder), and the
            # threshold compare runs on the unsaturated sum in parallel: with 0 <= threshold <= hi,
            # clamp(sum) >= threshold iff sum >= threshold.
            upper = wide[mw - 1:]
            fits = (upper == 0) | (upper == (1 << len(upper)) - 1)
            over, under = ~fits & ~wide[-1], ~fits & wide[-1]
            m.d.comb += [
                H.eq(Mux(over, hi, Mux(under, lo, wide))),
                fire.eq(wide >= self.threshold),
            ]
            if p.reset == "soft":
                after = Mux(over, hi - self.threshold, wide - self.threshold)
        else:
            m.d.comb += [H.eq(wide), fire.eq(H >= self.threshold)]  # wrap: keep the low mem_width bits
            if p.reset == "soft":
                after = H - self.threshold
        spike = fire & gate
        resets = fire if p.masked == "integrate" else spike
        V_next = Signal(signed(mw), name=f"v{t}")
        m.d.comb += V_next.eq(Mux(resets, after, H))
        if p.masked == "leak_only":
            V_next, H = Mux(gate, V_next, L), Mux(gate, H, L)
        return V_next, spike, H

    def elaborate(self, platform):
        m = Module()
        p = self._p
        m.submodules.counters = counters = PerfCounters({"evaluated": p.T.bit_length()})
        m.d.comb += [
            counters.clear.eq(self.clear),
            self.evaluated.eq(counters.count.evaluated),
        ]

        # Stage state: membrane, the spikes (and traced membranes) produced so far, the currents
        # still to come, valid.
        stage_layout = data.StructLayout({
            "membrane": signed(p.mem_width),
            "spikes": p.T,
            "current": data.ArrayLayout(signed(p.in_width), p.T),
            **({"trace": data.ArrayLayout(signed(p.mem_width), p.T)} if self._trace else {}),
        })
        advance = Signal()
        m.d.comb += [
            advance.eq(~self.o.valid | self.o.ready),
            self.i.ready.eq(advance),
        ]

        state = Signal(stage_layout, name="stage_in")
        m.d.comb += [state.current.eq(self.i.payload.current), state.membrane.eq(0)]
        valid = self.i.valid
        for stage in range(self.latency):
            V, spikes = state.membrane, state.spikes
            spike_bits = [spikes[t] for t in range(p.T)]
            traced = [state.trace[t] for t in range(p.T)] if self._trace else None
            first = stage * self._ops_per_stage
            for op in range(first, min(2 * p.T, first + self._ops_per_stage)):
                t = op // 2
                if op % 2 == 0:
                    V = self._leak(m, t, V)
                else:
                    V, spike_bits[t], H = self._integrate(m, t, V, state.current[t])
                    if traced is not None:
                        traced[t] = H
            nxt = Signal(stage_layout, name=f"stage{stage}")
            nxt_valid = Signal(name=f"stage{stage}_valid")
            with m.If(advance):
                m.d.sync += [
                    nxt.membrane.eq(V),
                    nxt.spikes.eq(Cat(*spike_bits)),
                    nxt.current.eq(state.current),
                    nxt_valid.eq(valid),
                ]
                if traced is not None:
                    m.d.sync += nxt.trace.eq(Cat(*traced))
            state, valid = nxt, nxt_valid

        m.d.comb += [
            self.o.valid.eq(valid),
            self.o.payload.spikes.eq(state.spikes),
        ]
        if self._membrane:
            m.d.comb += self.o.payload.membrane.eq(state.membrane)
        if self._trace:
            m.d.comb += self.o.payload.trace.eq(state.trace)
        if self._echo:
            m.d.comb += self.o.payload.current.eq(state.current)
        steps = Signal(range(p.T + 1))
        m.d.comb += steps.eq(sum(self.tmask[t] for t in range(p.T)))
        with m.If(self.o.valid & self.o.ready):
            m.d.comb += counters.inc.evaluated.eq(steps)
        return m
