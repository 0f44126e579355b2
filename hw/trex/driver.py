"""Host software for the crossbar core: a batch of matrix-vector products (or of spiking
neurons' time steps) on one weight matrix, as one command list.

The memory image holds the cell words (``golden.trex.params.round_words``, each padded to whole
beats), the input vectors (``input_bits`` each; spiking: ``spike_bits`` per step) and room for
the result records (32-bit words, each record padded to whole beats); see :data:`~snnforge.hw.trex.core.TARGETS`. The list loads the cells,
writes the registers, then per batch posts the results' STORE and LOADs the batch's vectors,
which stream through the tile while its results are written; a matrix wider than the tile
repeats that per block of ``n_out`` columns, once the tile is idle. NumPy only.
"""

from __future__ import annotations

import numpy as np

from ...driver import ArraySpec, Driver, Job, JobResult, JobSpec
from ...golden.trex.params import cell_levels, round_words
from ...host import CommandList, MemoryImage
from ...params import Param, SnnforgeError
from .config import XbarConfig
from .core import COUNTERS

__all__ = ["XbarDriver"]

#: Longest LOAD or STORE of one batch (beats): the host interface's limit.
MAX_BEATS = 1 << 16


def _pack(fields: np.ndarray, width: int, slot: int) -> bytes:
    """Rows of unsigned ``width``-bit fields ``[N, k]`` as ``slot``-bit items, field ``i`` at bit
    ``i * width``, lowest bits first."""
    N, k = fields.shape
    bits = np.zeros((N, slot), dtype=np.uint8)
    bits[:, :k * width] = ((fields[..., None] >> np.arange(width)) & 1).reshape(N, k * width)
    return np.packbits(bits.reshape(-1), bitorder="little").tobytes()


class XbarDriver(Driver):
    """Runs matrix-vector products on a :class:`~snnforge.hw.trex.core.XbarCore`.

    Its job (``snnforge run xbar``): the weights ``w [R, n]`` (``R <= rows``, within
    ``+-w_max``; ``n`` beyond the tile's ``n_out`` columns runs one block of columns after the
    other, the tile reloaded between them) and the inputs ``x [B, R]`` (signed ``in_bits``-bit integers) -- or,
    with ``spiking``, spikes ``x [T, B, R]``; options: ``in_bits``, ``adc_bits``, ``adc_shift``,
    ``spiking`` and the LIF's ``threshold``, ``leak_amount``, ``tmask``. Outputs: ``y [B, n]``
    (``golden.trex.xbar.xbar_mvm``'s), or with ``spiking`` the per-step results ``y [T, B, n]``
    and the LIF's ``spikes [T, B, n]`` (``xbar_spiking``'s). With the optional ``codes
    [blocks, in_bits, B, cols]`` (a core built with ``code_input``; ``XbarResult.codes`` of a
    ``golden.trex.xbar.xbar_mvm`` call, e.g. with its ``NonIdeal`` front end) the tile's digital
    back end takes those ADC codes instead of its own; each vector then goes with its codes.
    """

    DEFAULT_MEMORY = 1 << 24

    def __init__(self, host, cfg: XbarConfig, *, memory_size: int | None = None):
        super().__init__(host, cfg)
        self.memory_size = memory_size or getattr(host.transport, "memory_size",
                                                  self.DEFAULT_MEMORY)

    @classmethod
    def _x_spec(cls, cfg: XbarConfig, in_bits: int) -> ArraySpec:
        lo, hi = -(1 << (in_bits - 1)), (1 << (in_bits - 1)) - 1
        return ArraySpec("x", ("B", "R"), "int", "input vectors, signed in_bits-bit (with "
                         "spiking: spikes [T, B, R])", lo=lo, hi=hi)

    @classmethod
    def job_spec(cls, cfg: XbarConfig) -> JobSpec:
        lif = cfg.lif
        return JobSpec(
            inputs=(cls._x_spec(cfg, cfg.in_bits),
                    ArraySpec("w", ("R", "n"), "int", f"weights, R <= {cfg.rows} rows (n: any, "
                              f"{cfg.n_out} columns per load of the tile)", lo=-cfg.w_max,
                              hi=cfg.w_max),
                    ArraySpec("codes", ("blocks", "P", "B", "cols"), "int", "outside ADC "
                              "codes per column block, plane, vector and physical column "
                              "(code_input cores)", lo=0, hi=(1 << cfg.code_bits) - 1,
                              optional=True)),
            options=(Param("in_bits", cfg.in_bits, "input width (bit-serial planes)", 2,
                           cfg.in_bits),
                     Param("adc_bits", cfg.adc_bits, "ADC resolution used", 1, cfg.adc_bits),
                     Param("adc_shift", cfg.shift, "ADC LSB as 2^adc_shift column units", 0,
                           cfg.max_shift),
                     Param("spiking", False, "spiking mode: x holds spikes [T, B, R], one "
                           "crossbar read per step, the LIF on the results"),
                     Param("threshold", lif.threshold, "LIF threshold (spiking)", 0,
                           (1 << lif.threshold_bits) - 1),
                     Param("leak_amount", lif.leak_amount, f"LIF {lif.leak_amount_doc} "
                           "(spiking)", 0, lif.leak_amount_max),
                     Param("tmask", (1 << lif.T) - 1, "dynamic time-step mask (spiking)", 0,
                           (1 << lif.T) - 1)),
            outputs=(ArraySpec("y", ("B", "n"), "int", "results (spiking: each step's, "
                               "[T, B, n])"),
                     ArraySpec("spikes", ("T", "B", "n"), "binary", "output spikes (spiking)")))

    @classmethod
    def input_specs(cls, cfg: XbarConfig, options: dict) -> tuple[ArraySpec, ...]:
        x = (ArraySpec("x", ("T", "B", "R"), "binary", "input spikes") if options["spiking"]
             else cls._x_spec(cfg, options["in_bits"]))
        return (x, *cls.job_spec(cfg).inputs[1:])

    @classmethod
    def params_for(cls, inputs: dict) -> dict:
        """Spikes ``[T, B, R]`` imply the LIF's ``T``."""
        x = inputs.get("x")
        return {"T": np.shape(x)[0]} if x is not None and np.ndim(x) == 3 else {}

    @classmethod
    def check(cls, cfg: XbarConfig, job: Job) -> None:
        x, w = job.inputs["x"], job.inputs["w"]
        R, n = w.shape
        if R > cfg.rows:
            raise SnnforgeError(f"w has {R} rows; a tile takes at most {cfg.rows} (partial sums "
                                "across tiles are not supported)")
        if x.shape[-1] != R:
            raise SnnforgeError(f"x has {x.shape[-1]} values per vector; w has {R} rows")
        if x.shape[-2] == 0:
            raise SnnforgeError("x holds no vectors (B = 0)")
        codes = job.inputs.get("codes")
        if codes is not None:
            if not cfg.code_input:
                raise SnnforgeError("codes: the core was built without code_input (generate "
                                    "it with -p code_input=true)")
            if job.options["spiking"]:
                raise SnnforgeError("codes: outside codes are for bit-serial inputs, not "
                                    "spiking")
            want = (-(-n // cfg.n_out), job.options["in_bits"], x.shape[0], cfg.cols)
            if codes.shape != want:
                raise SnnforgeError(f"codes has shape {list(codes.shape)}; this job needs "
                                    f"{list(want)} (blocks, planes, vectors, columns)")
        if job.options["spiking"] and x.shape[0] != cfg.T:
            raise SnnforgeError(f"x has T={x.shape[0]} time steps; the core was built for "
                                f"T={cfg.T}")

    def _vectors(self, x: np.ndarray, spiking: bool) -> tuple[np.ndarray, int, int]:
        """The input vectors in the order the tile takes them (spiking: per batch row, its
        steps), their memory bits and the width of one row's field."""
        cfg = self.cfg
        if spiking:
            v = x.transpose(1, 0, 2).reshape(-1, x.shape[-1])
            return v, cfg.spike_bits, 1
        return x & ((1 << cfg.in_bits) - 1), cfg.input_bits, cfg.in_bits

    def _with_codes(self, cl, image, vectors: np.ndarray, codes: np.ndarray, k: int):
        """One column block's vectors, each LOADed with its outside codes (``[planes, B,
        cols]``: a round's ``n_adc`` per item, planes then rounds) after its results' STORE;
        returns the results' (address, bytes)."""
        cfg = self.cfg
        bpb = cfg.dma_width // 8
        B = len(vectors)
        records = B * cfg.vector_beats
        out = image.alloc(f"results {k} codes", records * bpb)
        cl.store("results", out, records, arg=B)
        rounds = codes.reshape(codes.shape[0], B, cfg.cols_per_adc, cfg.n_adc)
        for v in range(B):
            data = _pack(vectors[v:v + 1] & ((1 << cfg.in_bits) - 1), cfg.in_bits,
                         cfg.input_bits)
            data += bytes(-len(data) % bpb)
            cl.load("inputs", image.put(f"vector {k} {v}", data), len(data) // bpb, arg=1)
            items = rounds[:, v].reshape(-1, cfg.n_adc)
            raw = _pack(items, cfg.code_bits, cfg.code_slot_bits)
            raw += bytes(-len(raw) % bpb)
            cl.load("codes", image.put(f"codes {k} {v}", raw), len(raw) // bpb, arg=len(items))
        return out, records * bpb

    async def run(self, job: Job) -> JobResult:
        cfg, o = self.cfg, job.options
        x, w = job.inputs["x"], job.inputs["w"]
        codes = job.inputs.get("codes")
        spiking = bool(o["spiking"])
        bpb = cfg.dma_width // 8
        image = MemoryImage(self.memory_size, align=max(64, bpb))
        cl = CommandList(self.host.regmap)
        chunks = -(-cfg.rows * cfg.n_adc * cfg.cell_bits // cfg.dma_width)
        vectors, slot, width = self._vectors(x, spiking)
        padded = np.zeros((len(vectors), cfg.rows), dtype=np.int64)
        padded[:, :vectors.shape[1]] = vectors
        data = _pack(padded, width, slot)
        per_vector = slot // 8
        # Spiking: a batch row's T steps make n_out neurons, each a record of 1 + T words.
        group = cfg.T if spiking else 1
        record_beats = cfg.neuron_beats if spiking else cfg.vector_beats
        record_words = record_beats * cfg.dma_width // 32
        per_group = cfg.n_out if spiking else 1            # records per group
        groups = len(vectors) // group
        batch = max(1, min(MAX_BEATS // (per_group * record_beats),
                           MAX_BEATS * bpb // (per_vector * group)))
        batches = []
        for g0 in range(0, groups, batch):
            count = min(batch, groups - g0)
            chunk = data[g0 * group * per_vector:(g0 + count) * group * per_vector]
            batches.append((image.put(f"vectors {g0}", chunk + bytes(-len(chunk) % bpb)),
                            -(-len(chunk) // bpb), count))
        outs = []                       # per column block: (address, words) of each batch
        for k in range(0, w.shape[1], cfg.n_out):
            if k:
                cl.wait("status", busy=0)       # the last block's vectors have left the tile
            cells = b"".join(word.to_bytes(chunks * bpb, "little") for word in
                             round_words(cell_levels(w[:, k:k + cfg.n_out], cfg.tile), cfg.tile))
            addr = image.put(f"cells {k}", cells)
            cl.load("cells", addr, len(cells) // bpb, sel=0, arg=cfg.cols_per_adc)
            if not k:
                cl.write_many({"in_bits": o["in_bits"], "adc_bits": o["adc_bits"],
                               "adc_shift": o["adc_shift"], "spiking": int(spiking),
                               "threshold": o["threshold"], "leak_amount": o["leak_amount"],
                               "tmask": o["tmask"], "control": {"clear": 1},
                               **({"inject": int(codes is not None)} if cfg.code_input
                                  else {})})
            block = []
            if codes is not None:
                block.append(self._with_codes(cl, image, padded, codes[k // cfg.n_out], k))
                outs.append(block)
                continue
            for at, beats, count in batches:
                records = count * per_group
                out = image.alloc(f"results {k} {at}", records * record_beats * bpb)
                cl.store("results", out, records * record_beats, arg=records)
                cl.load("spikes" if spiking else "inputs", at, beats, arg=count * group)
                block.append((out, records * record_beats * bpb))
            outs.append(block)
        cl.end()
        dma = await self.host.run_commands(image, cl)
        results = []                    # per block: the records' words [records, words]
        for block in outs:
            raw = b"".join([await self.host.read_memory(at, size) for at, size in block])
            results.append(np.frombuffer(raw, dtype="<i4").astype(np.int64)
                           .reshape(-1, record_words))
        n = w.shape[1]
        if spiking:
            # [B, n, 1 + T] per block, the blocks side by side
            per = np.concatenate([r[:, :cfg.neuron_words].reshape(-1, cfg.n_out,
                                                                  cfg.neuron_words)
                                  for r in results], axis=1)[:, :n]
            steps = (per[..., :1] >> np.arange(cfg.T)) & 1
            outputs = {"y": per[..., 1:].transpose(2, 0, 1),
                       "spikes": steps.transpose(2, 0, 1).astype(np.uint8)}
        else:
            outputs = {"y": np.concatenate([r[:, :cfg.n_out] for r in results], axis=1)[:, :n]}
        counters = await self.host.read_many([name for name, _ in COUNTERS])
        counters.update(dma)
        return JobResult(outputs, counters, {"spiking": spiking, "batches": len(batches),
                                             "column_blocks": len(outs)})

    @classmethod
    def report(cls, cfg: XbarConfig, job: Job, result: JobResult) -> list[str]:
        x, w = job.inputs["x"], job.inputs["w"]
        c = result.counters
        planes = 1 if job.options["spiking"] else job.options["in_bits"]
        bound = c["vectors"] * planes * cfg.cols_per_adc
        what = (f"{x.shape[1]} x {x.shape[0]} spike steps" if job.options["spiking"]
                else f"{x.shape[0]} vectors")
        return [f"crossbar {w.shape[0]}x{w.shape[1]} on a {cfg.rows}x{cfg.cols} tile: {what}, "
                f"{c['reads']:,} crossbar reads, {c['conversions']:,} ADC conversions",
                f"tile busy {c['busy']:,} cycles (issue bound {bound:,}); end-to-end cycles "
                f"{c['total_cycles']:,}"]
