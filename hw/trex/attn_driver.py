"""Host software for the attention core: heads one after another, as one command list.

The memory image holds each head's keys and values (per token ``kv_bits``: the key row, then the
value row), its query rows (``row_bits`` each) and room for its output rows; see
:data:`~snnforge.hw.trex.attn_core.ATTN_TARGETS`. Per head the list waits for the unit to be
idle, loads the keys and values, posts the outputs' STORE and loads the queries. NumPy only.
"""

from __future__ import annotations

import numpy as np

from ...driver import ArraySpec, Driver, Job, JobResult, JobSpec
from ...host import CommandList, MemoryImage
from ...params import Param, SnnforgeError
from .attn_core import ATTN_COUNTERS, AttnConfig

__all__ = ["AttnDriver"]


def _rows(values: np.ndarray, slot_bits: int) -> bytes:
    """int8 rows ``[N, k]`` as ``slot_bits``-bit items (zero-padded above)."""
    raw = values.astype(np.int8).view(np.uint8)
    out = np.zeros((len(values), slot_bits // 8), dtype=np.uint8)
    out[:, :raw.shape[1]] = raw
    return out.tobytes()


class AttnDriver(Driver):
    """Runs heads of integer self-attention on a :class:`~snnforge.hw.trex.attn_core.AttnCore`.

    Its job (``snnforge run attn``): ``q``, ``k``, ``v`` ``[H, N, d]`` int8 (``N <=
    max_tokens``, ``d = d_head``); options ``score_mult``, ``score_shift``, ``out_shift``.
    Output: ``out [H, N, d]``, ``golden.trex.attention.attention_head``'s of each head.
    """

    DEFAULT_MEMORY = 1 << 22

    def __init__(self, host, cfg: AttnConfig, *, memory_size: int | None = None):
        super().__init__(host, cfg)
        self.memory_size = memory_size or getattr(host.transport, "memory_size",
                                                  self.DEFAULT_MEMORY)

    @classmethod
    def job_spec(cls, cfg: AttnConfig) -> JobSpec:
        row = lambda name, what: ArraySpec(name, ("H", "N", "d"), "int", what, lo=-128, hi=127)
        return JobSpec(
            inputs=(row("q", "query rows"), row("k", "key rows"), row("v", "value rows")),
            options=(Param("score_mult", cfg.score_mult, "u = (q.k * score_mult) >> "
                           "score_shift (base-2 exponent with frac_bits fraction bits)", 0,
                           65535),
                     Param("score_shift", cfg.score_shift, "see score_mult", 0, 31),
                     Param("out_shift", cfg.shift_out, "out = sat8(round(sum a v >> "
                           "out_shift))", 0, 31)),
            outputs=(ArraySpec("out", ("H", "N", "d"), "int", "output rows"),))

    @classmethod
    def params_for(cls, inputs: dict) -> dict:
        q = inputs.get("q")
        if q is not None and np.ndim(q) == 3:
            return {"max_tokens": max(1, np.shape(q)[1]), "d_head": max(1, np.shape(q)[2])}
        return {}

    @classmethod
    def check(cls, cfg: AttnConfig, job: Job) -> None:
        q = job.inputs["q"]
        for name in ("k", "v"):
            if job.inputs[name].shape != q.shape:
                raise SnnforgeError(f"{name} has shape {list(job.inputs[name].shape)}; q has "
                                    f"{list(q.shape)}")
        H, N, d = q.shape
        if d != cfg.d_head or not 1 <= N <= cfg.max_tokens or H < 1:
            raise SnnforgeError(f"q has {H} heads of {N} tokens x {d}; the core takes "
                                f"1..{cfg.max_tokens} tokens of d_head={cfg.d_head}")

    async def run(self, job: Job) -> JobResult:
        cfg, o = self.cfg, job.options
        q, k, v = (job.inputs[n] for n in ("q", "k", "v"))
        H, N, d = q.shape
        bpb = cfg.dma_width // 8
        image = MemoryImage(self.memory_size, align=max(64, bpb))
        cl = CommandList(self.host.regmap)
        cl.write_many({"tokens": N, "score_mult": o["score_mult"],
                       "score_shift": o["score_shift"], "out_shift": o["out_shift"],
                       "control": {"clear": 1}})
        pad = lambda raw: raw + bytes(-len(raw) % bpb)
        out_bytes = -(-N * cfg.row_bits // 8)
        outs = []
        for h in range(H):
            if h:
                cl.wait("status", busy=0)       # the last head's rows have left the unit
            kv = pad(_rows(np.concatenate([k[h], v[h]], axis=1), cfg.kv_bits))
            cl.load("kv", image.put(f"kv {h}", kv), len(kv) // bpb, arg=N)
            at = image.alloc(f"out {h}", len(pad(bytes(out_bytes))))
            cl.store("out", at, len(pad(bytes(out_bytes))) // bpb, arg=N)
            rows = pad(_rows(q[h], cfg.row_bits))
            cl.load("q", image.put(f"q {h}", rows), len(rows) // bpb, arg=N)
            outs.append(at)
        cl.end()
        dma = await self.host.run_commands(image, cl)
        out = np.zeros((H, N, d), dtype=np.int64)
        for h, at in enumerate(outs):
            raw = np.frombuffer(await self.host.read_memory(at, out_bytes), dtype=np.uint8)
            out[h] = raw.reshape(N, cfg.row_bits // 8)[:, :d].view(np.int8)
        counters = await self.host.read_many([name for name, _ in ATTN_COUNTERS])
        counters.update(dma)
        return JobResult({"out": out}, counters, {"heads": H})

    @classmethod
    def report(cls, cfg: AttnConfig, job: Job, result: JobResult) -> list[str]:
        H, N, d = job.inputs["q"].shape
        c = result.counters
        return [f"attention: {H} heads of {N} tokens x {d}: {c['macs']:,} multiply-accumulates, "
                f"unit busy {c['busy']:,} cycles; end-to-end cycles {c['total_cycles']:,}"]
