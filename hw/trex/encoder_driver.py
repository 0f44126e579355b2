"""Host software for the encoder core: a batch of images' residual streams through encoders with
attention reuse, as one command list.

The memory image holds the parameter words (``TrexConfig.param_fields``), each encoder's weight
blocks in the order its program consumes them (a computing encoder q, k, v, proj, fc1, fc2; a
reusing one tb, fc1, fc2; each matrix by blocks of ``n_out`` columns, a block the tile's
``round_words``), the residual rows and room for the results. The list writes the registers and
loads the parameters once; per image it loads the rows, starts the run, loads every encoder's
weights (the core takes them block by block as it goes) and stores the residual stream and
each encoder's attention output. NumPy only.
"""

from __future__ import annotations

import numpy as np

from ...driver import ArraySpec, Driver, Job, JobResult, JobSpec
from ...golden.trex.params import cell_levels, round_words
from ...host import CommandList, MemoryImage
from ...params import Param, SnnforgeError
from .config import TrexConfig
from .encoder import ENCODER_COUNTERS, PROGRAM

__all__ = ["TrexDriver", "parse_reuse", "encoder_layers"]

_LN = ("g", "b")


def parse_reuse(text: str, encoders: int) -> dict[int, int]:
    """``"j:i,..."`` (encoder ``j`` reuses encoder ``i``'s attention output -- a computing
    encoder's, or a reusing one's TB output) as ``{j: i}``; raises :class:`SnnforgeError`
    naming the option."""
    out = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        try:
            j, i = (int(v) for v in item.split(":"))
        except ValueError:
            raise SnnforgeError(f"option reuse: {item!r} is not j:i (encoder j reuses encoder "
                                f"i's attention)") from None
        if not 0 <= i < j < encoders or j in out:
            raise SnnforgeError(f"option reuse: {item!r}: need 0 <= i < j < {encoders} "
                                f"(the encoders run), each j once")
        out[j] = i
    return out


def encoder_layers(reusing: bool) -> list[str]:
    """The parameter fields an encoder's program reads, in :data:`PROGRAM` order."""
    steps = [11, 12, *range(6, 11)] if reusing else list(range(11))
    return [PROGRAM[k][3] for k in steps]


class TrexDriver(Driver):
    """Runs encoders on a :class:`~snnforge.hw.trex.encoder.EncoderCore`.

    Its job (``snnforge run trex``): ``tokens [B, N, dim]`` int16 (the residual stream after the
    patch embedding) and ``params`` (a ``.npz`` of ``golden.trex.vit_int.IntViT.archive``'s
    arrays: ``"{j}.{layer}.{w|b|requant|g}"`` and ``"{j}.{score|a_res|mlp_res}"``); options
    ``encoders`` (how many run, from 0), ``reuse`` (``"j:i,..."``), ``adc_bits``,
    ``adc_shift``. Outputs: ``tokens [B, N, dim]`` and every encoder's attention output
    ``outputs [B, E, N, dim]``, ``golden.trex.vit_int.run_encoders``'s.
    """

    DEFAULT_MEMORY = 1 << 24

    def __init__(self, host, cfg: TrexConfig, *, memory_size: int | None = None):
        super().__init__(host, cfg)
        self.memory_size = memory_size or getattr(host.transport, "memory_size",
                                                  self.DEFAULT_MEMORY)

    @classmethod
    def job_spec(cls, cfg: TrexConfig) -> JobSpec:
        return JobSpec(
            inputs=(ArraySpec("tokens", ("B", "N", "dim"), "int", "residual-stream rows "
                              "(int16)", lo=-32768, hi=32767),
                    ArraySpec("params", (), "archive", "the encoders' integer parameters "
                              "(IntViT.archive())")),
            options=(Param("encoders", cfg.depth, "encoders to run (0 .. encoders - 1)", 1,
                           cfg.depth),
                     Param("reuse", "", "reusing encoders, j:i,... (j takes i's attention "
                           "output through its TB)"),
                     Param("adc_bits", cfg.adc_bits, "ADC resolution used", 1, cfg.adc_bits),
                     Param("adc_shift", cfg.shift, "ADC LSB as 2^adc_shift column units", 0,
                           cfg.max_shift)),
            outputs=(ArraySpec("tokens", ("B", "N", "dim"), "int", "the residual stream after "
                               "the encoders"),
                     ArraySpec("outputs", ("B", "E", "N", "dim"), "int", "each encoder's "
                               "attention output (int8)")))

    @classmethod
    def params_for(cls, inputs: dict) -> dict:
        out = {}
        x, params = inputs.get("tokens"), inputs.get("params")
        if x is not None and np.ndim(x) == 3:
            out.update(tokens=max(1, np.shape(x)[1]), dim=max(1, np.shape(x)[2]))
        if hasattr(params, "keys"):
            depth = {key.split(".")[0] for key in params.keys() if key.split(".")[0].isdigit()}
            if depth:
                out["depth"] = min(8, len(depth))
            if "0.fc1.w" in params.keys() and np.ndim(params["0.fc1.w"]) == 2:
                out["mlp"] = max(1, np.shape(params["0.fc1.w"])[1])
        return out

    @classmethod
    def check(cls, cfg: TrexConfig, job: Job) -> None:
        x, params = job.inputs["tokens"], job.inputs["params"]
        if x.shape[1:] != (cfg.tokens, cfg.dim) or x.shape[0] < 1:
            raise SnnforgeError(f"tokens has shape {list(x.shape)}; the core takes [B >= 1, "
                                f"{cfg.tokens}, {cfg.dim}]")
        E = job.options["encoders"]
        reuse = parse_reuse(job.options["reuse"], E)
        d, h = cfg.dim, cfg.mlp
        shapes = {"q": (d, d), "k": (d, d), "v": (d, d), "proj": (d, d), "tb": (d, d),
                  "fc1": (d, h), "fc2": (h, d)}
        w_max = cfg.w_max

        def need(key, shape, lo, hi):
            if key not in params:
                raise SnnforgeError(f"params lacks {key!r} (encoder {key.split('.')[0]} runs)")
            a = params[key]
            if a.shape != shape:
                raise SnnforgeError(f"params[{key}] has shape {list(a.shape)}, not "
                                    f"{list(shape)}")
            if a.size and (a.min() < lo or a.max() > hi):
                raise SnnforgeError(f"params[{key}] must lie within {lo}..{hi}, found "
                                    f"{a.min()}..{a.max()}")

        for j in range(E):
            for name in encoder_layers(j in reuse):
                key = f"{j}.{name}"
                if name.startswith(("ln", "tb_ln")):
                    for f in _LN:
                        need(f"{key}.{f}", (d,), -32768, 32767)
                elif name in shapes:
                    need(f"{key}.w", shapes[name], -w_max, w_max)
                    need(f"{key}.b", (shapes[name][1],), -(1 << 31), (1 << 31) - 1)
                    need(f"{key}.requant", (2,), 0, 65535)
                    if params[f"{key}.requant"][1] > 63:
                        raise SnnforgeError(f"params[{key}.requant]: S must be 0..63")
                elif name == "score":
                    need(key, (2,), 0, 65535)
                    if params[key][1] > 31:
                        raise SnnforgeError(f"params[{key}]: score_shift must be 0..31")
                else:
                    need(key, (2,), 0, 65535)
                    if params[key][1] > 63:
                        raise SnnforgeError(f"params[{key}]: S must be 0..63")

    def _param_words(self, params: dict, E: int, reuse: dict) -> np.ndarray:
        cfg = self.cfg
        words = np.zeros(E * cfg.param_stride, dtype=np.uint32)
        for j in range(E):
            base = j * cfg.param_stride
            for name in encoder_layers(j in reuse):
                at, size = cfg.param_fields[name]
                key = f"{j}.{name}"
                if f"{key}.g" in params:
                    g, b = (params[f"{key}.{f}"] & 0xFFFF for f in _LN)
                    value = g | (b << 16)
                elif f"{key}.w" in params:
                    M, S = params[f"{key}.requant"]
                    value = np.concatenate([[M | (S << 16)], params[f"{key}.b"] & 0xFFFFFFFF])
                else:
                    value = [params[key][0] | (params[key][1] << 16)]
                words[base + at:base + at + size] = value
        return words

    def _weights(self, params: dict, j: int, reusing: bool) -> bytes:
        cfg = self.cfg
        bpb = cfg.dma_width // 8
        out = []
        for name in encoder_layers(reusing):
            if f"{j}.{name}.w" not in params:
                continue
            w = params[f"{j}.{name}.w"]
            for k in range(0, w.shape[1], cfg.n_out):
                out += [word.to_bytes(cfg.chunks * bpb, "little") for word in
                        round_words(cell_levels(w[:, k:k + cfg.n_out], cfg.tile), cfg.tile)]
        return b"".join(out)

    async def run(self, job: Job) -> JobResult:
        cfg, o = self.cfg, job.options
        x, params = job.inputs["tokens"], job.inputs["params"]
        B, N, D = x.shape
        E = o["encoders"]
        reuse = parse_reuse(o["reuse"], E)
        bpb = cfg.dma_width // 8
        image = MemoryImage(self.memory_size, align=max(64, bpb))
        cl = CommandList(self.host.regmap)
        sources = sum(i << (cfg.source_bits * j) for j, i in reuse.items())
        cl.write_many({"encoders": E, "reuse": sum(1 << j for j in reuse), "sources": sources,
                       "adc_bits": o["adc_bits"], "adc_shift": o["adc_shift"],
                       "control": {"clear": 1}})
        words = self._param_words(params, E, reuse).tobytes()
        words += bytes(-len(words) % bpb)
        cl.load("params", image.put("params", words), len(words) // bpb, arg=0)
        weights = []
        for j in range(E):
            blob = self._weights(params, j, j in reuse)
            weights.append((image.put(f"weights {j}", blob), len(blob) // bpb,
                            len(blob) // (bpb * cfg.block_beats)))
        x_slot, a_slot = cfg.x_row_bits // 8, cfg.a_row_bits // 8
        x_beats, a_beats = -(-N * x_slot // bpb), -(-N * a_slot // bpb)
        outs = []
        for b in range(B):
            if b:
                cl.wait("status", busy=0)       # the last image's results have left
            rows = np.zeros((N, x_slot), dtype=np.uint8)
            rows[:, :2 * D] = x[b].astype("<i2").view(np.uint8).reshape(N, 2 * D)
            raw = rows.tobytes() + bytes(-rows.size % bpb)
            cl.load("tokens", image.put(f"tokens {b}", raw), len(raw) // bpb, arg=N)
            cl.write("control", run=1)
            for at, beats, blocks in weights:
                cl.load("weights", at, beats, arg=blocks)
            x_at = image.alloc(f"tokens out {b}", x_beats * bpb)
            cl.store("tokens_out", x_at, x_beats, arg=N)
            a_at = []
            for j in range(E):
                a_at.append(image.alloc(f"outputs {b} {j}", a_beats * bpb))
                cl.store("outputs", a_at[-1], a_beats, sel=j, arg=N)
            outs.append((x_at, a_at))
        cl.wait("status", busy=0)
        cl.end()
        dma = await self.host.run_commands(image, cl)
        status = await self.host.read("status")
        if status & 2:
            raise SnnforgeError("the encoder core stopped with an error (status.error)")
        tokens = np.zeros((B, N, D), dtype=np.int64)
        outputs = np.zeros((B, E, N, D), dtype=np.int64)
        for b, (x_at, a_at) in enumerate(outs):
            raw = np.frombuffer(await self.host.read_memory(x_at, N * x_slot), dtype=np.uint8)
            tokens[b] = raw.reshape(N, x_slot)[:, :2 * D].copy().view("<i2")
            for j, at in enumerate(a_at):
                raw = np.frombuffer(await self.host.read_memory(at, N * a_slot), dtype=np.uint8)
                outputs[b, j] = raw.reshape(N, a_slot)[:, :D].view(np.int8)
        counters = await self.host.read_many([name for name, _ in ENCODER_COUNTERS])
        counters.update(dma)
        return JobResult({"tokens": tokens, "outputs": outputs}, counters,
                         {"images": B, "encoders": E, "reuse": {str(j): i for j, i in
                                                                 reuse.items()}})

    @classmethod
    def report(cls, cfg: TrexConfig, job: Job, result: JobResult) -> list[str]:
        c = result.counters
        B = job.inputs["tokens"].shape[0]
        return [f"encoders: {B} images x {job.options['encoders']} encoders (reuse "
                f"{job.options['reuse'] or 'none'}): {c['vectors']:,} matrix-vector products, "
                f"{c['reads']:,} crossbar reads, {c['conversions']:,} ADC conversions, "
                f"{c['attention_macs']:,} attention MACs",
                f"cycles: LayerNorm {c['ln_cycles']:,}, matmul {c['matmul_cycles']:,}, "
                f"weights {c['weight_cycles']:,}, attention {c['attention_cycles']:,}, residual "
                f"{c['residual_cycles']:,}; busy {c['busy']:,}; end-to-end "
                f"{c['total_cycles']:,}"]
