"""The backward pass of a TT conv layer in hardware: BPTT through the neuron's surrogate, the
input gradients through the transposed cores, and the four cores' weight gradients --
``golden.ttsnn.fixed_backward`` bit for bit."""

from __future__ import annotations

from amaranth import *
from amaranth.lib import data, enum, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from ...golden.common.lif_params import signed_range
from .layer import LEAK_FRAC, MODES_RTL
from .pointwise import fit_value

__all__ = ["TTBackward", "Phase", "INPUTS", "RESULTS"]

#: Pipeline stages from a term's issue to its write (the gap between two passes).
DEPTH = 6


class Phase(enum.Enum, shape=5):
    """The passes of one step ``t``, in order (STT: ``W3 .. D1``; PTT: ``W2P .. D1P``; HTT's
    late steps go from ``D3`` straight to ``W1``, reading ``d3`` as ``d1``; the dense baseline:
    ``SURROGATE``, ``WD``, ``DD``, and ``UW`` after step 0)."""
    SURROGATE = 0   # du = sat(gs * [|H - theta| < a] + carry); carry for t - 1
    W4 = 1          # dG4 += du (x) a3
    D3 = 2          # d3 = fit(G4^T du, shift_b4)
    W3 = 3          # dG3 += kw_grad(d3, a2)
    D2 = 4          # d2 = fit(kw_conv_t(d3, G3), shift_b3)
    W2 = 5          # dG2 += kh_grad(d2, a1)
    D1 = 6          # d1 = fit(kh_conv_t(d2, G2), shift_b2)
    W2P = 7         # dG2 += kh_grad(d3, a1)
    W3P = 8         # dG3 += kw_grad(d3, a1)
    D1P = 9         # d1 = fit(kh_conv_t(d3, G2) + kw_conv_t(d3, G3), shift_b2)
    W1 = 10         # dG1 += d1 (x) s_in
    DI = 11         # grad_in[t] = fit(G1^T d1, shift_b1)
    U1 = 12         # with ``update``, after step 0: G_k = sat(G_k - round(sat(dG_k) >> lr))
    U2 = 13
    U3 = 14
    U4 = 15
    WD = 16         # dense: dW += du (x) s_in, the 3x3 correlation
    DD = 17         # dense: grad_in[t] = fit(W^T du, shift_b1), the transposed 3x3 conv
    UW = 18         # dense, with ``update``: W = sat(W - round(sat(dW) >> lr))


#: The update passes: SGD on a weight, no multiply-accumulate.
UPDATES = (Phase.U1, Phase.U2, Phase.U3, Phase.U4, Phase.UW)


#: The memories the host fills (``load``'s ``mem`` field): the output spikes' gradients, the
#: cores (G2/G3 in their engine's index order, ``(o * 3 + k) * r + i``) and, on a unit built
#: ``dense``, the dense 3x3 weight (``DenseConv.weight_index``'s order, ``((o * 3 + kh) * 3 +
#: kw) * c_in + i``).
INPUTS = ("gs", "g1", "g2", "g3", "g4", "w")
#: The forward state, written through the trace ports while the forward pass runs: one row per
#: position (``a1``, ``a2``, ``a3``: ``r`` lanes; ``spikes_in``: ``Cin``) of each step, one row
#: per neuron (``membrane``, ``spikes``: ``T`` lanes).
TRACES = ("a1", "a2", "a3", "spikes_in", "membrane", "spikes")
#: The memories ``peek`` reads (its ``mem`` field): the input gradients, the cores' and the dense
#: weight's gradients (saturated to ``wgrad_width`` on the way out; in the weights' index
#: order) and the cores and the dense weight (updated, after an SGD update).
RESULTS = ("grad_in", "dg1", "dg2", "dg3", "dg4", "dgw", "g1", "g2", "g3", "g4", "w")


class _WriteRequest:
    """The address, data and enable of a memory write one cycle before it happens."""

    def __init__(self, port, name):
        self.addr = Signal.like(port.addr, name=f"wreq_{name}_addr")
        self.data = Signal.like(port.data, name=f"wreq_{name}_data")
        self.en = Signal.like(port.en, name=f"wreq_{name}_en")


class TTBackward(wiring.Component):
    """``golden.ttsnn.fixed_backward`` of one layer: from the output spikes' gradients and the
    forward state, every step's input gradients and the four cores' gradients, summed over steps
    and positions.

    For ``t = T - 1 .. 0`` it runs the :class:`Phase` passes. The surrogate pass takes a neuron
    per cycle; every other pass is a loop nest over its outputs (outer) and the terms of each sum
    (inner) on one multiply-accumulate unit: a term per cycle, out-of-map terms (the zero padding
    of the 3-tap cores) cost their cycle but add nothing, an output is fitted (input-gradient
    passes) or added to its core gradient (weight-gradient passes, exact, ``dg_width`` bits) as
    its last term leaves the six-stage pipeline (issue, read, multiply, accumulate, fit, write);
    the next pass issues ``DEPTH - 1`` cycles after the last term of a pass, so that it reads
    what that pass wrote. Issue cycles per step, with ``P = width * height``: ``Cout * P``
    (surrogate) + ``2 * Cout * r * P`` (G4) + ``12 * r * r * P`` (STT: four 3-tap passes; PTT:
    two 3-tap weight-gradient passes and one 6-tap input-gradient pass; HTT's late steps: 0) +
    ``2 * r * Cin * P`` (G1); plus ``DEPTH - 1`` per pass and at the end.

    Built ``dense``, the unit also runs the dense baseline's backward
    (``golden.ttsnn.fixed_dense_backward``) in mode ``dense``, on the same unit and pipeline:
    per step the surrogate pass, ``dW`` (``9 * Cout * Cin * P`` issue cycles) and ``grad_in``
    (``9 * Cin * Cout * P``), then with ``update`` the SGD pass over ``W`` (``9 * Cout * Cin``).

    The loaded tensors (``gs``) and the results (``grad_in``) live at ``((t * C) + c) * S + y *
    max_width + x`` (``S = max_width * max_height``, ``C`` the tensor's channels), the cores and
    their gradients at ``g1[r, Cin]``, ``g4[Cout, r]`` flat and G2/G3 in the engine's order
    (``(o * 3 + k) * r + i``). The forward state arrives on the trace ports as the forward pass
    produces it (every port a monitor: ``valid`` marks a transfer, ``ready`` is always 1): the
    positions of each map in raster order, map after map (each port counts its own: the step
    ``t`` of its ``T`` maps), the neurons position by position, channel by channel. Registers
    must hold while ``busy`` (and be set a cycle before ``start``).

    Ports
    -----
    load : In(stream of {mem, index, value}): ``INPUTS[mem][index] = value``; always ready; only
        while not busy
    a1, a2, a3 : In(stream of ``r`` activations); spikes_in : In(stream of ``Cin`` spikes);
        neuron : In(stream of {spikes: ``T`` bits, trace: ``T`` membranes})
    peek_mem, peek_index : In; peek_data : Out(signed(peek_width)): ``RESULTS[peek_mem]
        [peek_index]`` one cycle later (core gradients saturated to ``wgrad_width``); not busy
    start : In(1): a pulse starts the pass; busy : Out(1)
    mode : In(2) (``MODES_RTL``); htt_full; width, height; shift_b1 .. shift_b4 : In(5);
    theta : In(signed(mem_width)); beta : In(8); surrogate : In(mem_width + 1)
    cycles_surrogate, cycles_dgrad, cycles_wgrad, macs : Out(32): cycles spent in the surrogate,
        input-gradient and weight-gradient passes, and the terms that were inside the map
    """

    def __init__(self, *, c_in: int, rank: int, c_out: int, T: int, max_width: int,
                 max_height: int, w_width: int = 8, act_width: int = 16, mem_width: int = 16,
                 grad_width: int = 16, wgrad_width: int = 32, dense: bool = False):
        for name, value, lo, hi in (("c_in", c_in, 1, 256), ("rank", rank, 1, 64),
                                    ("c_out", c_out, 1, 256), ("T", T, 1, 16),
                                    ("max_width", max_width, 1, 256),
                                    ("max_height", max_height, 1, 256),
                                    ("w_width", w_width, 2, 16), ("act_width", act_width, 2, 32),
                                    ("mem_width", mem_width, 2, 32),
                                    ("grad_width", grad_width, 2, 32),
                                    ("wgrad_width", wgrad_width, 2, 48)):
            if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
                raise ValueError(f"{name} must be an integer in {lo}..{hi}, not {value!r}")
        if not isinstance(dense, bool):
            raise ValueError(f"dense must be True or False, not {dense!r}")
        self.dense = dense
        self.c_in, self.rank, self.c_out, self.T = c_in, rank, c_out, T
        self.max_width, self.max_height = max_width, max_height
        self.w_width, self.act_width, self.mem_width = w_width, act_width, mem_width
        self.grad_width, self.wgrad_width = grad_width, wgrad_width
        S = self.S = max_width * max_height
        r = rank
        a_width = max(grad_width, w_width)
        b_width = max(act_width, grad_width)
        terms = max(6 * r, 9 * c_out if dense else c_out, r, T * S)
        #: Exact width of any sum the unit forms (a core gradient over all steps included).
        self.dg_width = a_width + b_width + terms.bit_length() + 1
        g, a = signed(grad_width), signed(act_width)
        self.activations = data.ArrayLayout(a, r)
        self.neuron_layout = data.StructLayout({"spikes": T,
                                         "trace": data.ArrayLayout(signed(mem_width), T)})
        #: Trace memories: (depth, row layout).
        self.rows = {
            "a1": (T * S, self.activations), "a2": (T * S, self.activations),
            "a3": (T * S, self.activations), "spikes_in": (T * S, data.ArrayLayout(1, c_in)),
            "membrane": (c_out * S, self.neuron_layout["trace"].shape),
            "spikes": (c_out * S, data.ArrayLayout(1, T))}
        self.shapes = {
            "gs": (T * c_out * S, g),
            "g1": (r * c_in, signed(w_width)), "g2": (3 * r * r, signed(w_width)),
            "g3": (3 * r * r, signed(w_width)), "g4": (c_out * r, signed(w_width)),
            "du": (c_out * S, g), "carry": (c_out * S, g),
            "d3": (r * S, g), "d2": (r * S, g), "d1": (r * S, g),
            "grad_in": (T * c_in * S, g),
            **{f"dg{k}": (n, signed(self.dg_width))
               for k, n in ((1, r * c_in), (2, 3 * r * r), (3, 3 * r * r), (4, c_out * r))},
        }
        if dense:
            self.shapes.update(w=(9 * c_out * c_in, signed(w_width)),
                               dgw=(9 * c_out * c_in, signed(self.dg_width)))
        depth = max(self.shapes[name][0] for name in INPUTS + RESULTS if name in self.shapes)
        self.peek_width = max(grad_width, wgrad_width)
        super().__init__({
            "load": In(stream.Signature(data.StructLayout({
                "mem": range(len(INPUTS)), "index": range(depth),
                "value": signed(max(grad_width, mem_width, act_width, w_width))}))),
            "peek_mem": In(range(len(RESULTS))), "peek_index": In(range(depth)),
            "peek_data": Out(signed(self.peek_width)),
            **{name: In(stream.Signature(self.activations)) for name in ("a1", "a2", "a3")},
            "spikes_in": In(stream.Signature(c_in)),
            "neuron": In(stream.Signature(self.neuron_layout)),
            "start": In(1), "busy": Out(1),
            "mode": In(2), "htt_full": In(range(T + 1)),
            "width": In(range(1, max_width + 1)), "height": In(range(1, max_height + 1)),
            **{f"shift_b{k}": In(5) for k in (1, 2, 3, 4)},
            "theta": In(signed(mem_width)), "beta": In(LEAK_FRAC),
            "surrogate": In(mem_width + 1),
            "update": In(1), "lr_shift": In(6),
            "updates": Out(stream.Signature(data.StructLayout({
                "core": range(4 + dense), "index": range(depth),
                "value": signed(w_width)}))),
            "cycles_surrogate": Out(32), "cycles_dgrad": Out(32), "cycles_wgrad": Out(32),
            "macs": Out(32), "cycles_update": Out(32),
        })

    def _loops(self):
        """Each pass's loop nest: ``(outer, inner)`` lists of (name, bound); the last loop runs
        fastest. ``h``/``w`` are the map's rows and columns."""
        r, ci, co = self.rank, self.c_in, self.c_out
        hw = [("y", "h"), ("x", "w")]
        wgrad3 = ([("b", r), ("c", r), ("k", 3)], hw)
        dgrad3 = ([("c", r)] + hw, [("b", r), ("k", 3)])
        # The dense passes: k and l are the taps along H and W.
        dense = {Phase.WD: ([("o", co), ("i", ci), ("k", 3), ("l", 3)], hw),
                 Phase.DD: ([("i", ci)] + hw, [("o", co), ("k", 3), ("l", 3)]),
                 Phase.UW: ([("u", 9 * co * ci)], [])} if self.dense else {}
        return {**dense,
            Phase.SURROGATE: ([("o", co)] + hw, []),
            Phase.W4: ([("o", co), ("a", r)], hw),
            Phase.D3: ([("a", r)] + hw, [("o", co)]),
            Phase.W3: wgrad3, Phase.D2: dgrad3, Phase.W2: wgrad3, Phase.D1: dgrad3,
            Phase.W2P: wgrad3, Phase.W3P: wgrad3,
            Phase.D1P: ([("c", r)] + hw, [("j", 2), ("b", r), ("k", 3)]),
            Phase.W1: ([("a", r), ("i", ci)], hw),
            Phase.DI: ([("i", ci)] + hw, [("a", r)]),
            **{getattr(Phase, f"U{k}"): ([("u", n)], [])
               for k, n in ((1, r * ci), (2, 3 * r * r), (3, 3 * r * r), (4, co * r))},
        }

    def elaborate(self, platform):
        m = Module()
        T, r, ci, co, S, mw = self.T, self.rank, self.c_in, self.c_out, self.S, self.max_width
        mems = {name: Memory(shape=shape, depth=max(2, depth), init=[])
                for name, (depth, shape) in {**self.shapes, **self.rows}.items()}
        for name, mem in mems.items():
            m.submodules[f"mem_{name}"] = mem
        ports = {name: mem.write_port() for name, mem in mems.items()}
        # Transparent: a pass may read what the previous pass wrote in its last cycle.
        rd = {name: mem.read_port(transparent_for=(ports[name],)) for name, mem in mems.items()}
        # Every write goes through a register (the write stage): the fits and sums that make the
        # data are the longest paths otherwise. ``wr[name]`` is what the stages before drive.
        wr = {}
        for name, port in ports.items():
            wr[name] = _WriteRequest(port, name)
            m.d.sync += [port.addr.eq(wr[name].addr), port.data.eq(wr[name].data),
                         port.en.eq(wr[name].en)]

        for k, name in enumerate(INPUTS):
            if name not in wr:
                continue
            m.d.comb += [wr[name].addr.eq(self.load.payload.index),
                         wr[name].data.eq(self.load.payload.value),
                         wr[name].en.eq(self.load.valid & (self.load.payload.mem == k))]
        m.d.comb += self.load.ready.eq(1)

        # The traces: each port counts its positions (and neurons, or maps) to find its row --
        # its own count, as consecutive maps overlap in the forward datapath.
        def raster(name, channels=0):
            """(step, y * max_width + x, ch) counters of a trace port, advanced on each
            transfer; the step wraps after T maps."""
            port = getattr(self, name)
            m.d.comb += port.ready.eq(1)
            ty = Signal(range(self.max_height), name=f"{name}_y")
            tx = Signal(range(self.max_width), name=f"{name}_x")
            tc = Signal(range(max(2, channels)), name=f"{name}_c")
            tt = Signal(range(max(2, T)), name=f"{name}_t")
            with m.If(port.valid):
                end_c = tc == channels - 1 if channels else C(1)
                if channels:
                    m.d.sync += tc.eq(Mux(end_c, 0, tc + 1))
                with m.If(end_c):
                    m.d.sync += tx.eq(Mux(tx == self.width - 1, 0, tx + 1))
                    with m.If(tx == self.width - 1):
                        m.d.sync += ty.eq(Mux(ty == self.height - 1, 0, ty + 1))
                        with m.If(ty == self.height - 1):
                            m.d.sync += tt.eq(Mux(tt == T - 1, 0, tt + 1))
            return port, tt, ty * mw + tx, tc

        for name in ("a1", "a2", "a3", "spikes_in"):
            port, step, at_pos, _ = raster(name)
            m.d.comb += [wr[name].addr.eq(step * S + at_pos),
                         wr[name].data.eq(port.payload), wr[name].en.eq(port.valid)]
        port, _, at_pos, ch = raster("neuron", co)
        for name, field in (("membrane", "trace"), ("spikes", "spikes")):
            m.d.comb += [wr[name].addr.eq(ch * S + at_pos),
                         wr[name].data.eq(port.payload[field]), wr[name].en.eq(port.valid)]

        # Peek: the results' read ports while no pass addresses them.
        peek_mem = Signal.like(self.peek_mem)
        m.d.sync += peek_mem.eq(self.peek_mem)
        for name in RESULTS:
            if name in rd:
                m.d.comb += rd[name].addr.eq(self.peek_index)
        lo, hi = signed_range(self.wgrad_width)
        with m.Switch(peek_mem):
            for k, name in enumerate(RESULTS):
                if name not in mems:
                    continue
                with m.Case(k):
                    value = rd[name].data
                    if name.startswith("dg"):
                        value = Mux(value > hi, hi, Mux(value < lo, lo, value))
                    m.d.comb += self.peek_data.eq(value)

        # The loop counters (shared by name across passes), the step and the pass.
        loops = self._loops()
        names = sorted({n for outer, inner in loops.values() for n, _ in outer + inner})
        top = max(2, self.max_width, self.max_height, co * r, ci * r, 3 * r * r,
                  9 * co * ci if self.dense else 0)
        idx = {n: Signal(range(top), name=f"loop_{n}") for n in names}
        bound = {"h": self.height, "w": self.width}
        last = {n: Signal(name=f"last_{n}") for n in names}
        t = Signal(range(max(2, T)))
        phase = Signal(Phase)
        running, issuing = Signal(), Signal()
        # Between passes the pipeline drains: a pass may read what the last one wrote last.
        gap = Signal(range(DEPTH))
        m.d.comb += issuing.eq(running & (gap == 0))
        late = (self.mode == MODES_RTL["htt"]) & (t >= self.htt_full)
        stt = self.mode == MODES_RTL["stt"]
        dense = (self.mode == MODES_RTL["dense"]) if self.dense else C(0)
        y, x, b, c, k, a, o, i, j = (idx[n] for n in "yxbckaoij")

        def at(channels, ch, yy=y, xx=x, step=True):
            """The address of ``[t][ch][yy][xx]`` in a tensor of ``channels`` channels (without
            ``t``: one step's working map)."""
            return ((t * channels + ch) * S if step else ch * S) + yy * mw + xx

        def row(yy=y, xx=x):
            """The row of position (yy, xx) of step t in a trace memory."""
            return t * S + yy * mw + xx

        def shifted(v, tap, forward, limit):
            """``v + tap - 1`` (``forward``) or ``v + 1 - tap``, and whether it lies inside
            ``0 .. limit - 1``."""
            plus1 = Signal(range(top + 3), name="shifted")
            m.d.comb += plus1.eq(v + tap if forward else v + 2 - tap)
            inside = (plus1 >= 1) & (plus1 <= limit)
            return Mux(inside, plus1 - 1, 0), inside

        core = (b * 3 + k) * r + c
        xf, xf_in = shifted(x, k, True, self.width)      # kw_grad: x[c, y, x + k - 1]
        yf, yf_in = shifted(y, k, True, self.height)
        xt, xt_in = shifted(x, k, False, self.width)     # kx_conv_t: d[b, y, x + 1 - k]
        yt, yt_in = shifted(y, k, False, self.height)
        map1 = at(r, a, step=False)
        # Per pass: read addresses at issue, whether the term lies inside the map (else it adds
        # nothing), the destination, the operand selector; then (stage 2) the operands A and B
        # (a pair: chosen by the selector) and where the sum goes: ("dg", core gradient) or
        # ("fit", memory) with the memory's shift.
        def wgrad3(grad, act, axis, dg):
            """``dg += k{axis}_grad(grad, act)``: act at the tap's offset along ``axis``."""
            shift, inside = ({"yy": yf}, yf_in) if axis == "h" else ({"xx": xf}, xf_in)
            return dict(reads={grad: at(r, b, step=False), act: row(**shift), dg: core},
                        inside=inside, dest=core, lane=c, A=grad, B=act, out=("dg", dg))

        def dgrad3(weights, grad, axis, out):
            """``out = fit(k{axis}_conv_t(grad, weights))``."""
            shift, inside = ({"yy": yt}, yt_in) if axis == "h" else ({"xx": xt}, xt_in)
            return dict(reads={weights: core, grad: at(r, b, step=False, **shift)},
                        inside=inside, dest=at(r, c, step=False), A=weights, B=grad,
                        out=("fit", out))

        spec = {
            Phase.W4: dict(reads={"du": at(co, o, step=False), "a3": row(), "dg4": o * r + a},
                           dest=o * r + a, lane=a, A="du", B="a3", out=("dg", "dg4")),
            Phase.D3: dict(reads={"g4": o * r + a, "du": at(co, o, step=False)},
                           dest=at(r, a, step=False), A="g4", B="du",
                           out=("fit", "d3")),
            Phase.W3: wgrad3("d3", "a2", "w", "dg3"), Phase.D2: dgrad3("g3", "d3", "w", "d2"),
            Phase.W2: wgrad3("d2", "a1", "h", "dg2"), Phase.D1: dgrad3("g2", "d2", "h", "d1"),
            Phase.W2P: wgrad3("d3", "a1", "h", "dg2"), Phase.W3P: wgrad3("d3", "a1", "w", "dg3"),
            # j = 0: the G2 term (along H), j = 1: the G3 term (along W), one sum.
            Phase.D1P: dict(reads={"g2": core, "g3": core,
                                   "d3": at(r, b, yy=Mux(j, y, yt), xx=Mux(j, xt, x),
                                            step=False)},
                            inside=Mux(j, xt_in, yt_in), dest=at(r, c, step=False), sel=j,
                            A=("g2", "g3"), B="d3", out=("fit", "d1")),
            # HTT's late steps read d3 as d1 (G2 and G3 skipped).
            Phase.W1: dict(reads={"d1": map1, "d3": map1, "spikes_in": row(),
                                  "dg1": a * ci + i}, dest=a * ci + i, sel=late, lane=i,
                           A=("d1", "d3"), B="spikes_in", out=("dg", "dg1")),
            Phase.DI: dict(reads={"g1": a * ci + i, "d1": map1, "d3": map1},
                           dest=at(ci, i), sel=late, A="g1", B=("d1", "d3"),
                           out=("fit", "grad_in")),
        }
        for k in (1, 2, 3, 4):
            spec[getattr(Phase, f"U{k}")] = dict(
                reads={f"g{k}": idx["u"], f"dg{k}": idx["u"]}, dest=idx["u"], A=f"g{k}",
                B=f"g{k}", out=("sgd", f"dg{k}"))
        # A neuron's row holds all its steps: membrane[t] and spikes[t - 1] side by side.
        neuron = at(co, o, step=False)
        if self.dense:
            # W[o, i, kh, kw]: k is kh, l is kw.
            weight = ((o * 3 + idx["k"]) * 3 + idx["l"]) * ci + i
            lf, lf_in = shifted(x, idx["l"], True, self.width)    # s[i, y + k - 1, x + l - 1]
            lt, lt_in = shifted(x, idx["l"], False, self.width)   # du[o, y + 1 - k, x + 1 - l]
            spec[Phase.WD] = dict(reads={"du": at(co, o, step=False),
                                         "spikes_in": row(yy=yf, xx=lf), "dgw": weight},
                                  inside=yf_in & lf_in, dest=weight, lane=i, A="du",
                                  B="spikes_in", out=("dg", "dgw"))
            spec[Phase.DD] = dict(reads={"w": weight, "du": at(co, o, yy=yt, xx=lt, step=False)},
                                  inside=yt_in & lt_in, dest=at(ci, i), A="w", B="du",
                                  out=("fit", "grad_in"))
            spec[Phase.UW] = dict(reads={"w": idx["u"], "dgw": idx["u"]}, dest=idx["u"], A="w",
                                  B="w", out=("sgd", "dgw"))
        spec[Phase.SURROGATE] = dict(
            reads={"gs": at(co, o), "membrane": neuron, "spikes": neuron, "carry": neuron},
            dest=neuron)

        # Issue: the pass's addresses and tags, its loop nest stepping once per cycle.
        issue_in, issue_first, issue_last, issue_sel = Signal(), Signal(), Signal(), Signal()
        issue_lane = Signal(range(max(2, r, ci)))
        dest = Signal(range(max(depth for depth, _ in self.shapes.values())))
        done = Signal()

        def every(conditions):
            return Cat(*conditions).all() if conditions else C(1)
        with m.Switch(phase):
            for ph, s in spec.items():
                outer, inner = loops[ph]
                nest = outer + inner
                with m.Case(ph):
                    for n, bnd in nest:
                        m.d.comb += last[n].eq(idx[n] == bound.get(bnd, bnd) - 1)
                    m.d.comb += [issue_in.eq(s.get("inside", 1)), dest.eq(s["dest"]),
                                 issue_sel.eq(s.get("sel", 0)), issue_lane.eq(s.get("lane", 0)),
                                 issue_first.eq(every([idx[n] == 0 for n, _ in inner])),
                                 issue_last.eq(every([last[n] for n, _ in inner])),
                                 done.eq(every([last[n] for n, _ in nest]))]
                    with m.If(issuing):
                        for name, addr in s["reads"].items():
                            m.d.comb += rd[name].addr.eq(addr)
                        for q, (n, _) in enumerate(nest):
                            with m.If(every([last[n2] for n2, _ in nest[q + 1:]])):
                                m.d.sync += idx[n].eq(Mux(last[n], 0, idx[n] + 1))

        nxt = {Phase.W4: Phase.D3, Phase.W3: Phase.D2,
               Phase.D2: Phase.W2, Phase.W2: Phase.D1, Phase.D1: Phase.W1,
               Phase.W2P: Phase.W3P, Phase.W3P: Phase.D1P, Phase.D1P: Phase.W1,
               Phase.W1: Phase.DI, Phase.WD: Phase.DD}
        with m.If(gap != 0):
            m.d.sync += gap.eq(gap - 1)
        with m.If(issuing & done):
            m.d.sync += gap.eq(DEPTH - 1)
            with m.Switch(phase):
                for ph, then in nxt.items():
                    with m.Case(ph):
                        m.d.sync += phase.eq(then)
                with m.Case(Phase.SURROGATE):
                    m.d.sync += phase.eq(Mux(dense, Phase.WD, Phase.W4))
                with m.Case(Phase.D3):
                    m.d.sync += phase.eq(Mux(late, Phase.W1, Mux(stt, Phase.W3, Phase.W2P)))
                with m.Case(Phase.DI, Phase.DD):
                    m.d.sync += [phase.eq(Phase.SURROGATE), t.eq(t - 1)]
                    with m.If(t == 0):
                        m.d.sync += [running.eq(self.update),
                                     phase.eq(Mux(dense, Phase.UW, Phase.U1))]
                for ph, then in ((Phase.U1, Phase.U2), (Phase.U2, Phase.U3),
                                 (Phase.U3, Phase.U4)):
                    with m.Case(ph):
                        m.d.sync += phase.eq(then)
                with m.Case(Phase.U4, Phase.UW):
                    m.d.sync += running.eq(0)
        with m.If(self.start & ~running):
            m.d.sync += [running.eq(1), t.eq(T - 1), phase.eq(Phase.SURROGATE), gap.eq(0)]
            m.d.sync += [v.eq(0) for v in idx.values()]

        # The pipeline: issue (addresses) -> read (operands selected and registered) ->
        # multiply (and the surrogate's window) -> accumulate, fit and write.
        def stage(name, like, value):
            reg = Signal.like(like, name=name)
            m.d.sync += reg.eq(value)
            return reg

        def tags(prefix, src):
            return {k: stage(f"{prefix}_{k}", v, v) for k, v in src.items()}

        # The backward loop meets a core gradient first at its last step: T - 1, except for
        # G2's and G3's under HTT, which only its first htt_full steps add to.
        first_full = Signal.like(t)
        ptt_grad = (phase == Phase.W2P) | (phase == Phase.W3P)
        m.d.comb += first_full.eq(Mux((self.mode == MODES_RTL["htt"]) & ptt_grad,
                                      self.htt_full - 1, T - 1))
        p = tags("p", {"valid": issuing, "in": issue_in, "first": issue_first,
                       "last": issue_last, "sel": issue_sel, "phase": phase,
                       "lane": issue_lane, "t": t, "first_step": t == T - 1,
                       "fresh": t == first_full, "t_zero": t == 0, "dest": dest})
        before = Signal.like(t)
        m.d.comb += before.eq(p["t"] - 1)

        def operand(which):
            if isinstance(which, tuple):
                return Mux(p["sel"], operand(which[1]), operand(which[0]))
            if which in self.rows:
                return rd[which].data[p["lane"]]
            return rd[which].data

        a_width = max(self.grad_width, self.w_width)
        b_width = max(self.act_width, self.grad_width)
        op_a, op_b = Signal(signed(a_width)), Signal(signed(b_width + 1))
        old = Signal(signed(self.dg_width))        # the core gradient being added to
        with m.Switch(p["phase"]):
            for ph, sp in spec.items():
                with m.Case(ph):
                    if "A" in sp:
                        m.d.comb += [op_a.eq(operand(sp["A"])), op_b.eq(operand(sp["B"]))]
                    if sp.get("out", ("",))[0] in ("dg", "sgd"):
                        m.d.comb += old.eq(rd[sp["out"][-1]].data)
        q = tags("q", {**{k: p[k] for k in ("valid", "in", "first", "last", "phase",
                                           "first_step", "fresh", "t_zero", "dest")},
                       "a": op_a, "b": op_b, "old": old,
                       "membrane": rd["membrane"].data[p["t"]], "gs": rd["gs"].data,
                       "carry": rd["carry"].data, "spiked": rd["spikes"].data[before]})

        product = Signal(signed(self.dg_width))
        m.d.comb += product.eq(q["a"] * q["b"])
        # |H - theta| < a as theta - a < H < theta + a: two comparisons side by side against
        # bounds registered from the registers (which hold during a pass), not a subtraction,
        # its absolute value and a comparison in a row.
        low, high = Signal(signed(self.mem_width + 3)), Signal(signed(self.mem_width + 3))
        m.d.sync += [low.eq(self.theta - self.surrogate), high.eq(self.theta + self.surrogate)]
        window = (q["membrane"] > low) & (q["membrane"] < high)
        raw = Signal(signed(self.grad_width + 1))
        m.d.comb += raw.eq(Mux(window, q["gs"], 0) + Mux(q["first_step"], 0, q["carry"]))
        # SGD over three stages: the gradient saturated here (beside the multiplier), then
        # shifted (round half up), then off the weight and saturated -- any two in one stage
        # make the longest path. A saturated gradient shifted by wgrad_width or more rounds to
        # 0, so the sum and the shift need only wgrad_width + 1 bits; the half and that case
        # come from registers (lr_shift holds during a pass).
        wg = self.wgrad_width
        wlo, whi = signed_range(wg)
        dsat = Signal(signed(wg))
        m.d.comb += dsat.eq(Mux(q["old"] > whi, whi, Mux(q["old"] < wlo, wlo, q["old"])))
        half, vanishes = Signal(signed(wg + 1)), Signal()
        m.d.sync += [vanishes.eq(self.lr_shift >= wg),
                     half.eq((C(1, wg) << self.lr_shift) >> 1)]   # read while lr_shift < wg
        z = tags("z", {**{k: q[k] for k in ("valid", "in", "first", "last", "phase", "fresh",
                                           "t_zero", "dest", "old", "spiked", "a")},
                       "product": product, "raw": raw, "dsat": dsat})

        acc = Signal(signed(self.dg_width))
        total = Signal(signed(self.dg_width))
        m.d.comb += total.eq(Mux(z["first"], 0, acc) + Mux(z["in"], z["product"], 0))
        with m.If(z["valid"]):
            m.d.sync += acc.eq(total)
        step = Signal(signed(wg + 1))
        m.d.comb += step.eq(Mux(vanishes, 0, (z["dsat"] + half) >> self.lr_shift))
        # The sums leave the accumulator for a stage of their own: fit, or the core gradient's
        # addition, then the write.
        w = tags("w", {**{k: z[k] for k in ("valid", "last", "phase", "fresh", "t_zero",
                                           "dest", "old", "spiked", "a", "raw")},
                       "total": total, "step": step})
        for name in self.shapes:
            if name not in INPUTS:
                m.d.comb += wr[name].addr.eq(w["dest"])
        fits = {name: fit_value(m, w["total"], shift, self.grad_width, f"fit_{name}")
                for name, shift in (("d3", self.shift_b4), ("d2", self.shift_b3),
                                    ("d1", self.shift_b2), ("grad_in", self.shift_b1))}
        glo, ghi = signed_range(self.grad_width)
        du = Signal(signed(self.grad_width))
        m.d.comb += du.eq(Mux(w["raw"] > ghi, ghi, Mux(w["raw"] < glo, glo, w["raw"])))
        leaked = Signal(signed(self.grad_width + LEAK_FRAC + 1))
        m.d.comb += leaked.eq((du * self.beta) >> LEAK_FRAC)
        moved = Signal(signed(self.wgrad_width + 2))
        m.d.comb += moved.eq(w["a"] - w["step"])
        new = Signal(signed(self.w_width))
        lo_w, hi_w = signed_range(self.w_width)
        m.d.comb += [new.eq(Mux(moved > hi_w, hi_w, Mux(moved < lo_w, lo_w, moved))),
                     self.updates.payload.index.eq(w["dest"]),
                     self.updates.payload.value.eq(new)]
        with m.If(w["valid"] & w["last"]):
            with m.Switch(w["phase"]):
                for ph, sp in spec.items():
                    if "out" not in sp or sp["out"][0] == "sgd":
                        continue
                    with m.Case(ph):
                        kind, name = sp["out"]
                        value = (Mux(w["fresh"], 0, w["old"]) + w["total"] if kind == "dg"
                                 else fits[name])
                        m.d.comb += [wr[name].data.eq(value), wr[name].en.eq(1)]
                for k, (ph, name) in enumerate(zip(UPDATES, ("g1", "g2", "g3", "g4", "w"))):
                    if ph not in spec:
                        continue
                    with m.Case(ph):
                        m.d.comb += [wr[name].addr.eq(w["dest"]), wr[name].data.eq(new),
                                     wr[name].en.eq(1), self.updates.valid.eq(1),
                                     self.updates.payload.core.eq(k)]
                with m.Case(Phase.SURROGATE):
                    m.d.comb += [wr["du"].data.eq(du), wr["du"].en.eq(1),
                                 wr["carry"].data.eq(Mux(w["t_zero"] | w["spiked"], 0, leaked)),
                                 wr["carry"].en.eq(1)]

        # Counters: cycles by the kind of pass, and the terms inside the map.
        dgrad = Cat(*[phase == ph for ph in (Phase.D3, Phase.D2, Phase.D1, Phase.D1P,
                                             Phase.DI, Phase.DD)]).any()
        updating = Cat(*[phase == ph for ph in UPDATES]).any()
        with m.If(issuing):
            with m.If(phase == Phase.SURROGATE):
                m.d.sync += self.cycles_surrogate.eq(self.cycles_surrogate + 1)
            with m.Elif(updating):
                m.d.sync += self.cycles_update.eq(self.cycles_update + 1)
            with m.Elif(dgrad):
                m.d.sync += self.cycles_dgrad.eq(self.cycles_dgrad + 1)
            with m.Else():
                m.d.sync += self.cycles_wgrad.eq(self.cycles_wgrad + 1)
        with m.If(z["valid"] & z["in"] & (z["phase"] != Phase.SURROGATE)
                  & ~Cat(*[z["phase"] == ph for ph in UPDATES]).any()):
            m.d.sync += self.macs.eq(self.macs + 1)
        with m.If(self.start & ~running):
            m.d.sync += [self.cycles_surrogate.eq(0), self.cycles_dgrad.eq(0),
                         self.cycles_wgrad.eq(0), self.macs.eq(0), self.cycles_update.eq(0)]
        m.d.comb += self.busy.eq(running | p["valid"] | q["valid"] | z["valid"] | w["valid"])
        return m
