"""Host software for the TT-SNN core: one layer's forward pass (and, given the output spikes'
gradients, its backward pass) as one command list.

The memory image holds the four cores (int8, each in its engine's index order), the ``T`` spike
maps (positions in raster order, ``position_bits`` bits each), the gradients (``grad_bits``
each, maps padded to the core's largest) and room for the neurons' results (``neuron_bits``
bits each) and the backward results (``result_bits`` each); see
:data:`~snnforge.hw.ttsnn.core.TARGETS`. The list writes the registers, loads the cores and the
maps, stores the neurons; with gradients it loads them, waits for the forward pass to end,
starts the backward pass, waits for it and stores the input and core gradients. The driver
unpacks everything into the job's outputs. NumPy only.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from ...driver import ArraySpec, Driver, Job, JobResult, JobSpec
from ...golden.common.lif_params import signed_range
from ...host import CommandList, MemoryImage
from ...params import Param, SnnforgeError
from .config import TTSNNConfig
from .core import BACKWARD_COUNTERS, COUNTERS
from .layer import MODES_RTL
from .step import CORES, DENSE

__all__ = ["TTSNNDriver"]

SHIFTS = ("o1", "z2", "z3", "y")
#: The ``mode`` option's choices: the three TT pipelines, and the dense 3x3 baseline.
MODES = tuple(MODES_RTL)
CORE_DIMS = ((1, ("r", "Cin")), (2, ("r", "r", "3")), (3, ("r", "r", "3")), (4, ("Cout", "r")))
DENSE_DIMS = ("Cout", "Cin", "3", "3")


def _bits(values, width):
    """Two's-complement bit rows ``[..., width]`` (lowest first) of integers."""
    v = np.asarray(values, dtype=np.int64)[..., None]
    return ((v >> np.arange(width)) & 1).astype(np.uint8)


def _ints(bits, signed=True):
    """Integers of bit rows ``[..., width]`` (lowest first)."""
    width = bits.shape[-1]
    v = (bits.astype(np.int64) << np.arange(width)).sum(-1)
    return np.where(v >= 1 << (width - 1), v - (1 << width), v) if signed else v


class TTSNNDriver(Driver):
    """Runs a TT conv layer's forward pass on a :class:`~snnforge.hw.ttsnn.core.TTSNNCore`.

    Its job (``snnforge run ttsnn``): spikes ``[T, Cin, H, W]``, the cores ``g1 [r, Cin]``,
    ``g2 [r, r, 3]`` (out, in, kh), ``g3 [r, r, 3]`` (out, in, kw), ``g4 [Cout, r]`` within
    ``w_width`` bits, optionally ``grad [T, Cout, H, W]`` (the output spikes' gradients,
    ``grad_width`` bits); options: the pipeline, ``htt_full``, the shifts, ``theta``, ``beta``,
    ``surrogate``, ``sgd_shift`` (an SGD update on chip after the backward pass) and
    ``load_cores`` (0: keep the cores on chip). Mode ``dense`` (a core built with
    ``dense_lanes`` > 0) takes the dense 3x3 weight ``w [Cout, Cin, 3, 3]`` instead of the cores
    (``golden.ttsnn.fixed_dense_forward``; with ``grad``, ``fixed_dense_backward``: ``grad_in``
    and ``grad_w``, with ``sgd_shift`` also ``new_w``). Outputs: the
    currents ``y``, the spikes and the membranes before reset, each
    ``[T, Cout, H, W]`` -- ``golden.ttsnn.fixed_forward``'s ``y``, ``spikes`` and ``membrane``;
    with ``grad`` also ``grad_in [T, Cin, H, W]`` and ``grad_g1 .. grad_g4`` (the cores'
    shapes) -- ``golden.ttsnn.fixed_backward``'s -- and with ``sgd_shift`` the updated cores
    ``new_g1 .. new_g4`` (``sgd_update``'s).
    """

    DEFAULT_MEMORY = 1 << 24

    def __init__(self, host, cfg: TTSNNConfig, *, memory_size: int | None = None):
        super().__init__(host, cfg)
        self.memory_size = memory_size or getattr(host.transport, "memory_size",
                                                  self.DEFAULT_MEMORY)

    @classmethod
    def job_spec(cls, cfg: TTSNNConfig) -> JobSpec:
        lo, hi = signed_range(cfg.w_width)
        glo, ghi = signed_range(cfg.grad_width)
        core = lambda name, dims, what: ArraySpec(name, dims, "int", what, lo=lo, hi=hi)
        image = ("T", "Cout", "H", "W")
        return JobSpec(
            inputs=(ArraySpec("spikes", ("T", "Cin", "H", "W"), "binary", "input spike maps"),
                    core("g1", ("r", "Cin"), "G1, 1x1: Cin -> r"),
                    core("g2", ("r", "r", "3"), "G2, 3x1 along H: [out, in, kh]"),
                    core("g3", ("r", "r", "3"), "G3, 1x3 along W: [out, in, kw]"),
                    core("g4", ("Cout", "r"), "G4, 1x1: r -> Cout"),
                    replace(core("w", ("Cout", "Cin", "3", "3"), "the dense 3x3 weight [out, "
                                 "in, kh, kw] (mode dense, instead of g1..g4)"), optional=True),
                    ArraySpec("grad", image, "int", "the output spikes' gradients (runs the "
                              "backward pass)", lo=glo, hi=ghi, optional=True)),
            options=(Param("mode", cfg.mode, "pipeline", choices=MODES),
                     Param("htt_full", cfg.htt_full, "HTT: steps on the full PTT path", 1,
                           cfg.T),
                     *(Param(f"shift_{n}", 0, f"right shift of the {n} sums", 0, 31)
                       for n in SHIFTS),
                     Param("theta", cfg.theta, "threshold: spike where the membrane > theta", 0,
                           signed_range(cfg.mem_width)[1] - 1),
                     Param("beta", cfg.beta, "leak factor beta / 256", 0, 255),
                     *(Param(f"shift_b{k}", 0, f"right shift of G{k}^T's sums (backward)", 0,
                             31) for k in (4, 3, 2, 1)),
                     Param("surrogate", cfg.surrogate, "surrogate half-width a (backward)", 0,
                           2 ** (cfg.mem_width + 1) - 1),
                     Param("load_cores", 1, "1: LOAD the cores; 0: run on those the core "
                           "holds (say, after an SGD update; g1..g4 then only describe them)",
                           0, 1),
                     Param("sgd_shift", -1, "with grad: SGD update on chip, the learning rate "
                           "as a right shift (-1: no update)", -1, 47)),
            outputs=(ArraySpec("y", image, "int", "currents into the neurons"),
                     ArraySpec("spikes", image, "binary", "output spikes"),
                     ArraySpec("membrane", image, "int", "membranes before reset"),
                     ArraySpec("grad_in", ("T", "Cin", "H", "W"), "int",
                               "input gradients (with grad)"),
                     *(ArraySpec(f"grad_g{k}", dims, "int", f"G{k}'s gradient (with grad)")
                       for k, dims in CORE_DIMS),
                     *(ArraySpec(f"new_g{k}", dims, "int", f"G{k} after the SGD update "
                                 "(with grad and sgd_shift)") for k, dims in CORE_DIMS),
                     ArraySpec("grad_w", DENSE_DIMS, "int", "the dense weight's gradient "
                               "(mode dense, with grad)"),
                     ArraySpec("new_w", DENSE_DIMS, "int", "the dense weight after the SGD "
                               "update (mode dense, with grad and sgd_shift)")))

    @classmethod
    def params_for(cls, inputs: dict) -> dict:
        """The core is built for the layer: its T, channels, rank and map size."""
        implied = {}
        s, g1, g4 = (inputs.get(k) for k in ("spikes", "g1", "g4"))
        if s is not None and np.ndim(s) == 4:
            T, c_in, H, W = np.shape(s)
            implied.update(T=T, c_in=c_in, max_height=H, max_width=W)
        if g1 is not None and np.ndim(g1) == 2:
            rank = np.shape(g1)[0]
            implied.update(rank=rank, **{f"lanes_g{k}": min(2, rank) for k in (1, 2, 3)})
        if g4 is not None and np.ndim(g4) == 2:
            implied.update(c_out=np.shape(g4)[0], lanes_g4=min(2, np.shape(g4)[0]))
        w = inputs.get("w")
        if w is not None and np.ndim(w) == 4:
            c_out = np.shape(w)[0]
            implied.update(c_out=c_out, lanes_g4=min(2, c_out), dense_lanes=min(2, c_out))
        return implied

    @classmethod
    def input_specs(cls, cfg: TTSNNConfig, options: dict):
        """Mode ``dense`` takes ``w`` instead of the cores; the TT modes take the cores."""
        dense = options["mode"] == "dense"
        required = {"spikes", "w"} if dense else {"spikes", *CORES}
        return tuple(replace(a, optional=a.name not in required)
                     for a in cls.job_spec(cfg).inputs)

    @classmethod
    def check(cls, cfg: TTSNNConfig, job: Job) -> None:
        T, c_in, H, W = job.inputs["spikes"].shape
        for name, built, got in (("T", cfg.T, T), ("Cin", cfg.c_in, c_in)):
            if built != got:
                raise SnnforgeError(f"spikes have {name}={got}; the core was built for "
                                    f"{name}={built}")
        if not (1 <= H <= cfg.max_height and 1 <= W <= cfg.max_width):
            raise SnnforgeError(f"spikes have maps of {H}x{W}; the core takes at most "
                                f"{cfg.max_height}x{cfg.max_width}")
        r, co = cfg.rank, cfg.c_out
        grad = job.inputs.get("grad")
        if job.options["mode"] == "dense":
            if not cfg.dense_lanes:
                raise SnnforgeError("mode dense needs a core with a dense engine: build it with "
                                    f"-p dense_lanes=1..{co}")
            extra = [k for k in CORES if k in job.inputs]
            if extra:
                raise SnnforgeError(f"mode dense runs the dense 3x3 weight w; drop "
                                    f"{', '.join(extra)} (the TT modes stt, ptt, htt take the "
                                    "cores)")
            if job.inputs["w"].shape != (co, c_in, 3, 3):
                raise SnnforgeError(f"w must have shape {[co, c_in, 3, 3]} (Cout={co}, "
                                    f"Cin={c_in}), not {list(job.inputs['w'].shape)}")
        elif "w" in job.inputs:
            raise SnnforgeError("w is the dense 3x3 weight of mode dense; mode "
                                f"{job.options['mode']} takes the cores g1..g4")
        for name, shape in (("g1", (r, c_in)), ("g2", (r, r, 3)), ("g3", (r, r, 3)),
                            ("g4", (co, r))):
            if name in job.inputs and job.inputs[name].shape != shape:
                raise SnnforgeError(f"{name} must have shape {list(shape)} (r={r}, Cin={c_in}, "
                                    f"Cout={co}), not {list(job.inputs[name].shape)}")
        if grad is not None and grad.shape != (T, co, H, W):
            raise SnnforgeError(f"grad must have shape {[T, co, H, W]} (the output maps), not "
                                f"{list(grad.shape)}")
        if job.options["mode"] == "htt" and job.options["htt_full"] > T:
            raise SnnforgeError(f"option htt_full must be at most T={T}")

    # -- memory formats ----------------------------------------------------------------------------
    @staticmethod
    def weight_order(name: str, core: np.ndarray) -> np.ndarray:
        """A core's weights in its engine's index order: ``o * in + i`` for G1/G4, ``(o * 3 + k)
        * r + i`` for G2/G3 (their ``AxisConv.weight_index``), ``DenseConv.weight_index``'s for
        the dense ``w``."""
        if name == "w":             # [o, i, kh, kw] at ((o * 3 + kh) * 3 + kw) * c_in + i
            return core.transpose(0, 2, 3, 1).reshape(-1)
        return core.transpose(0, 2, 1).reshape(-1) if name in ("g2", "g3") else core.reshape(-1)

    def _spike_bytes(self, spikes):
        cfg = self.cfg
        T, c_in, H, W = spikes.shape
        slots = np.zeros((T, H, W, cfg.position_bits), dtype=np.uint8)
        slots[..., :c_in] = spikes.transpose(0, 2, 3, 1)
        return np.packbits(slots.reshape(-1), bitorder="little").tobytes(), T * H * W

    def _pad(self, data: bytes) -> bytes:
        return data + bytes(-len(data) % (self.cfg.dma_width // 8))

    async def run(self, job: Job) -> JobResult:
        cfg, o = self.cfg, job.options
        spikes = job.inputs["spikes"]
        T, _, H, W = spikes.shape
        bpb = cfg.dma_width // 8
        image = MemoryImage(self.memory_size, align=max(64, bpb))
        cl = CommandList(self.host.regmap)
        cl.write_many({"mode": MODES_RTL[o["mode"]], "htt_full": o["htt_full"],
                       **{f"shift_{n}": o[f"shift_{n}"] for n in SHIFTS},
                       **{f"shift_b{k}": o[f"shift_b{k}"] for k in (1, 2, 3, 4)},
                       "threshold": o["theta"] + 1, "leak_amount": o["beta"],
                       "surrogate": o["surrogate"], "width": W, "height": H,
                       "sgd": {"update": int(o["sgd_shift"] >= 0),
                               "lr_shift": max(0, o["sgd_shift"])},
                       "control": {"clear": 1}})
        weights = ([(DENSE, "w")] if o["mode"] == "dense" else list(enumerate(CORES)))
        for sel, name in (weights if o["load_cores"] else ()):
            values = self.weight_order(name, job.inputs[name]).astype(np.int8).tobytes()
            addr = image.put(f"core {name}", self._pad(values))
            cl.load("weights", addr, -(-len(values) // bpb), sel=sel, arg=len(values))
        data, positions = self._spike_bytes(spikes)
        addr = image.put("spike maps", self._pad(data))
        cl.load("spikes", addr, -(-len(data) // bpb), arg=positions)
        neurons = H * W * cfg.c_out
        out_bytes = -(-neurons * cfg.neuron_bits // 8)
        beats = -(-out_bytes // bpb)
        out = image.alloc("neurons", beats * bpb)
        cl.store("neurons", out, beats, arg=neurons)
        grad = job.inputs.get("grad")
        if grad is not None:
            results = self._backward(cl, image, grad, o["mode"] == "dense", o["sgd_shift"] >= 0)
        cl.end()
        dma = await self.host.run_commands(image, cl)
        raw = await self.host.read_memory(out, out_bytes)
        bits = np.unpackbits(np.frombuffer(raw, dtype=np.uint8), bitorder="little")
        bits = bits[:neurons * cfg.neuron_bits].reshape(H, W, cfg.c_out, cfg.neuron_bits)
        m, yw = cfg.mem_width, cfg.y_width
        at = T + m                                  # spikes, final membrane, trace, currents
        trace = _ints(bits[..., at:at + T * m].reshape(H, W, cfg.c_out, T, m))
        at += T * m
        current = _ints(bits[..., at:at + T * yw].reshape(H, W, cfg.c_out, T, yw))
        image_of = lambda a: a.transpose(3, 2, 0, 1)            # [H, W, Cout, T] -> [T, Cout, H, W]
        outputs = {"y": image_of(current), "spikes": image_of(bits[..., :T]).astype(np.uint8),
                   "membrane": image_of(trace)}
        if grad is not None:
            outputs.update(await self._backward_results(results, (T, H, W)))
        names = COUNTERS + (BACKWARD_COUNTERS if grad is not None else ())
        counters = await self.host.read_many([name for name, _ in names])
        counters.update(dma)
        return JobResult(outputs, counters, {"mode": o["mode"]})

    def _backward(self, cl, image, grad, dense, update):
        """The backward part of the list; returns where its results will be."""
        cfg = self.cfg
        bpb = cfg.dma_width // 8
        T, co, H, W = grad.shape
        padded = np.zeros((T, co, cfg.max_height, cfg.max_width), dtype=np.int64)
        padded[..., :H, :W] = grad
        values = padded.reshape(-1).astype(f"<i{cfg.grad_bits // 8}").tobytes()
        addr = image.put("gradients", self._pad(values))
        cl.load("grads", addr, -(-len(values) // bpb), arg=padded.size)
        cl.wait("status", forward_done=1)
        cl.write("control", backward=1)
        cl.wait("status", backward_done=1)
        r, c_in = cfg.rank, cfg.c_in
        results = {}
        sizes = ({"w": 9 * co * c_in} if dense else
                 {f"g{k}": n for k, n in ((1, r * c_in), (2, 3 * r * r), (3, 3 * r * r),
                                          (4, co * r))})
        sel = {**{name: k for k, name in enumerate(CORES)}, "w": DENSE}
        stores = [("grad_in", "grad_in", 0, T * c_in * cfg.max_height * cfg.max_width),
                  *((f"grad_{k}", "core_grads", sel[k], n) for k, n in sizes.items()),
                  *((f"new_{k}", "cores", sel[k], n) for k, n in sizes.items() if update)]
        for name, target, sel, count in stores:
            size = count * cfg.result_bits // 8
            beats = -(-size // bpb)
            at = image.alloc(name, beats * bpb)
            cl.store(target, at, beats, sel=sel, arg=count)
            results[name] = (at, count)
        return results

    async def _backward_results(self, results, map_shape):
        cfg = self.cfg
        T, H, W = map_shape
        r, ci, co = cfg.rank, cfg.c_in, cfg.c_out
        out = {}
        for name, (at, count) in results.items():
            raw = await self.host.read_memory(at, count * cfg.result_bits // 8)
            out[name] = np.frombuffer(raw, dtype=f"<i{cfg.result_bits // 8}").astype(np.int64)
        grad_in = out.pop("grad_in").reshape(T, ci, cfg.max_height, cfg.max_width)
        shapes = {"1": lambda v: v.reshape(r, ci), "4": lambda v: v.reshape(co, r),
                  # G2/G3: engine order -> [o, i, k]
                  "2": lambda v: v.reshape(r, 3, r).transpose(0, 2, 1),
                  "3": lambda v: v.reshape(r, 3, r).transpose(0, 2, 1),
                  # W: engine order ((o * 3 + kh) * 3 + kw) * c_in + i -> [o, i, kh, kw]
                  "w": lambda v: v.reshape(co, 3, 3, ci).transpose(0, 3, 1, 2)}
        return {"grad_in": grad_in[..., :H, :W],
                **{name: shapes[name[-1]](v) for name, v in out.items()}}

    @classmethod
    def report(cls, cfg, job: Job, result: JobResult) -> list[str]:
        T, c_in, H, W = job.inputs["spikes"].shape
        c = result.counters
        what = ("dense 3x3 layer" if job.options["mode"] == "dense"
                else f"TT layer {job.options['mode'].upper()}")
        return [f"{what} T={T} {c_in}->{cfg.c_out} channels (rank {cfg.rank}) on {H}x{W}: "
                f"{int(result.outputs['spikes'].sum()):,} output spikes",
                f"core busy {c['busy']:,} cycles; end-to-end cycles {c['total_cycles']:,}; DMA "
                f"{c['dma_read_bytes']:,} bytes read, "
                f"{c['dma_write_bytes']:,} written"]
