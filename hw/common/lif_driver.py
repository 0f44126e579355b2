"""Host software for the LIF core: a batch of neurons through its DMA, as one command list."""

from __future__ import annotations

import numpy as np

from ...driver import ArraySpec, Driver, Job, JobResult, JobSpec
from ...golden.common.lif_params import signed_range
from ...host import CommandList, MemoryImage
from ...params import Param, SnnforgeError
from .lif_core import LIF_CORE_COUNTERS, LIFCoreConfig

__all__ = ["LIFDriver"]


class LIFDriver(Driver):
    """Runs neurons on a :class:`~.lif_core.LIFCore`: its job is the currents ``[N, T]`` of N
    neurons and the register values (threshold, leak amount, time-step mask); its outputs the
    spikes ``[N, T]`` and, if the core has the membrane output, the final membranes ``[N]``.

    The currents are packed into 32-bit host words in memory; the one command list loads a
    FIFO's worth of neurons at a time and stores their results before the next batch."""

    DEFAULT_MEMORY = 1 << 24

    def __init__(self, host, cfg: LIFCoreConfig, *, memory_size: int | None = None):
        super().__init__(host, cfg)
        self.memory_size = memory_size or getattr(host.transport, "memory_size",
                                                  self.DEFAULT_MEMORY)

    @classmethod
    def job_spec(cls, cfg: LIFCoreConfig) -> JobSpec:
        lif = cfg.lif
        lo, hi = signed_range(lif.in_width)
        outputs = (ArraySpec("spikes", ("N", "T"), "binary", "output spikes"),)
        if cfg.membrane:
            outputs += (ArraySpec("membrane", ("N",), "int", "final membranes"),)
        return JobSpec(
            inputs=(ArraySpec("currents", ("N", "T"), "int", "input currents", lo=lo, hi=hi),),
            options=(Param("threshold", lif.threshold, "LIF threshold", 0,
                           (1 << lif.threshold_bits) - 1),
                     Param("leak_amount", lif.leak_amount, f"LIF {lif.leak_amount_doc}", 0,
                           lif.leak_amount_max),
                     Param("tmask", (1 << lif.T) - 1, "dynamic time-step mask", 0,
                           (1 << lif.T) - 1)),
            outputs=outputs)

    @classmethod
    def params_for(cls, inputs: dict) -> dict:
        currents = inputs.get("currents")
        return {"T": currents.shape[1]} if currents is not None and np.ndim(currents) == 2 \
            else {}

    @classmethod
    def check(cls, cfg, job: Job) -> None:
        T = job.inputs["currents"].shape[1]
        if T != cfg.T:
            raise SnnforgeError(f"currents have T={T} time steps; the core was built for "
                                f"T={cfg.T}")

    def _words(self, currents):
        """Each neuron's currents as host words, lowest first."""
        lif, dw = self.cfg.lif, 32
        per = -(-(lif.T * lif.in_width) // dw)
        mask = (1 << lif.in_width) - 1
        words = []
        for row in currents.tolist():
            value = sum((int(c) & mask) << (lif.in_width * t) for t, c in enumerate(row))
            words += [(value >> (dw * k)) & 0xFFFFFFFF for k in range(per)]
        return words, per

    async def run(self, job: Job) -> JobResult:
        cfg, lif = self.cfg, self.cfg.lif
        currents = job.inputs["currents"]
        N = currents.shape[0]
        words, per_neuron = self._words(currents)
        per_result = -(-(lif.T + cfg.membrane * lif.mem_width) // 32)
        batch = max(1, cfg.fifo_depth // max(per_neuron, per_result))
        per_beat = cfg.dma_width // 32
        bpb = cfg.dma_width // 8
        image = MemoryImage(self.memory_size, align=max(64, bpb))
        cl = CommandList(self.host.regmap)
        cl.write_many({"threshold": job.options["threshold"],
                       "leak_amount": job.options["leak_amount"], "tmask": job.options["tmask"],
                       "control": {"clear": 1}})
        outs = []
        for n0 in range(0, N, batch):
            count = min(batch, N - n0)
            chunk = words[n0 * per_neuron:(n0 + count) * per_neuron]
            data = b"".join(w.to_bytes(4, "little") for w in chunk)
            addr = image.put(f"currents {n0}", data + bytes(-len(data) % bpb))
            cl.load("currents", addr, -(-len(chunk) // per_beat), arg=len(chunk))
            n_words = count * per_result
            beats = -(-n_words // per_beat)
            out = image.alloc(f"results {n0}", beats * bpb)
            cl.store("results", out, beats, arg=n_words)
            outs.append((n0, count, out, n_words))
        cl.end()
        dma = await self.host.run_commands(image, cl)
        spikes = np.zeros((N, lif.T), dtype=np.uint8)
        membrane = np.zeros(N, dtype=np.int64)
        for n0, count, addr, n_words in outs:
            raw = await self.host.read_memory(addr, n_words * 4)
            words_out = [int.from_bytes(raw[4 * i:4 * i + 4], "little") for i in range(n_words)]
            for k in range(count):
                value = sum(w << (32 * j) for j, w in
                            enumerate(words_out[k * per_result:(k + 1) * per_result]))
                spikes[n0 + k] = [(value >> t) & 1 for t in range(lif.T)]
                v = (value >> lif.T) & ((1 << lif.mem_width) - 1)
                membrane[n0 + k] = v - (1 << lif.mem_width) if v >> (lif.mem_width - 1) else v
        counters = await self.host.read_many([name for name, _ in LIF_CORE_COUNTERS])
        counters.update(dma)
        outputs = {"spikes": spikes, **({"membrane": membrane} if cfg.membrane else {})}
        return JobResult(outputs, counters, {"batches": len(outs)})

    @classmethod
    def report(cls, cfg, job: Job, result: JobResult) -> list[str]:
        c = result.counters
        return [f"{job.inputs['currents'].shape[0]} neurons in {result.facts['batches']} "
                f"batches: {c['evaluated']:,} neuron-steps, end-to-end cycles "
                f"{c['total_cycles']:,}"]
