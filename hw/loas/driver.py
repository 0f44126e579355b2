"""Host software for the LoAS core: tiles a whole layer into runs, writes the memory image and
the command list that run them, and reads the results back.

One class, :class:`LoASDriver`, over a :class:`~snnforge.host.HostDriver` -- so the same code runs a
layer under cocotb, in Amaranth's simulator, from ``snnforge run`` and on a board. A layer (or a
chained network) is one command list: one start, no host action until its end. The image holds
the operands in the chip's compressed formats (``hw/loas/core.py`` ``TARGETS``); the list loads
each run's operands into the banks the running run does not use, so loads overlap compute, and
stores each run's outputs while the next one computes; the first run starts before its weight
masks are loaded and follows their LOAD (``flags.follow``), and each weight block loads in pieces
that even out the bus work under the runs before it. Weights stay on chip across the row tiles
of a column block (the loop order is column block, row tile, K block).

Tiling (layers larger than the buffers are tiled, never refused):

* rows of the spike matrix in tiles of ``pes`` (one row per PE), walked forwards and backwards
  in turn for consecutive column blocks;
* output columns in blocks that fit the weight buffers (``n_max`` columns, ``v_max`` nonzero
  weights, ``rows_max`` broadcast rows), always whole ``tile_n`` tiles: as few as fit, their
  tiles spread evenly, the smaller blocks first (the first block's weights are what the list
  waits for before it computes);
* positions (K) in blocks of whole fibers that fit ``k_max``; the partial sums of earlier blocks
  stay on chip (``use_psum``) and only the last block runs the LIF (``final``).

Networks (:meth:`LoASDriver.run_layers`): consecutive layers are *chained* on chip where the
boundary allows it -- the layer's whole output row fits one run (one column block) and is the next
layer's whole K (one K block) -- so the hidden spikes never leave the core: each PE reloads its
spike row from its own outputs (``control.chain``) and the next layer's weights are loaded. Tiles
of rows are then the outer loop (every layer of the chain runs per tile). Other boundaries go
through the host (outputs read, sent again).

Sequential (time-step by time-step, SparTen-S-like) mode runs on the same hardware: each fiber of
the spike matrix is expanded into T fibers, fiber ``t`` holding the neurons that fire at step ``t``
(one-hot words), each paired with the same weight fiber; the TPPE's pseudo/correction arithmetic
then yields the same ``O[t]`` one step at a time.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

from ...driver import ArraySpec, Driver, Flag, Job, JobResult, JobSpec
from ...host import CommandList, MemoryImage
from ...params import Param, SnnforgeError
from .config import LoASConfig
from .core import BEGUN_BITS, COUNTERS

__all__ = ["LoASDriver", "LayerResult", "LayerSettings", "NetworkResult", "validate_layer",
           "validate_weights", "parse_lif"]


def _numbers(array, name):
    """``array`` (a NumPy array, a CPU torch tensor, nested lists) as a NumPy array of numbers."""
    a = np.asarray(array)
    if a.dtype == bool:
        a = a.astype(np.int64)
    if not (np.issubdtype(a.dtype, np.integer) or np.issubdtype(a.dtype, np.floating)
            or np.issubdtype(a.dtype, np.complexfloating)):
        raise SnnforgeError(f"{name} must hold numbers, not {a.dtype}")
    return a


def validate_weights(weights):
    """A weight matrix ``[K, N]`` within int8 as int64; raises SnnforgeError with a clear
    message."""
    w = _numbers(weights, "weights")
    if w.ndim != 2:
        raise SnnforgeError(f"weights must have shape [K, N], not {list(w.shape)}")
    if not np.issubdtype(w.dtype, np.integer) and not np.all(w == np.round(w)):
        raise SnnforgeError("weights must be integers within int8 (-128..127)")
    if w.size and (w.min() < -128 or w.max() > 127):
        raise SnnforgeError(f"weights must lie within int8 (-128..127), found {int(w.min())}.."
                            f"{int(w.max())}")
    if w.shape[0] == 0 or w.shape[1] == 0:
        raise SnnforgeError(f"weights must have K and N of at least 1, not {list(w.shape)}")
    return w.astype(np.int64)


def validate_layer(spikes, weights, T=None):
    """Shapes and values of a layer's operands (as int64 arrays); raises SnnforgeError with a
    clear message."""
    x = _numbers(spikes, "spikes")
    if x.ndim != 3:
        raise SnnforgeError(f"spikes must have shape [T, M, K], not {list(x.shape)}")
    w = validate_weights(weights)
    if T is not None and x.shape[0] != T:
        raise SnnforgeError(f"spikes have T={x.shape[0]} time steps; the core was built for T={T}")
    if x.size and not np.all((x == 0) | (x == 1)):
        raise SnnforgeError("spikes must be binary (0/1)")
    if x.shape[2] != w.shape[0]:
        raise SnnforgeError(f"spikes have K={x.shape[2]} positions but weights have "
                            f"{w.shape[0]} rows: K must match")
    if x.shape[1] == 0:
        raise SnnforgeError("spikes must have at least one row (M >= 1)")
    return x.real.astype(np.int64), w


def _ftp_words(x):
    """FTP word of every neuron of spikes ``x [T, M, K]``: ``sum_t x[t] << t`` (int64 ``[M, K]``),
    the word the spike image packs (``golden.loas.spike_words`` defines it)."""
    return (x << np.arange(x.shape[0], dtype=np.int64)[:, None, None]).sum(0)


def _strong_spikes(x):
    """LoAS-FT strong mode on spikes ``x [T, M, K]``: neurons that fire once are silenced
    (``golden.loas.apply_strong`` defines it)."""
    return np.where(x.sum(0) == 1, 0, x)


def _even_out(busy, total):
    """``total`` beats shared over slots already ``busy`` with that many beats each, so that the
    slots' sums come out as even as they can (water filling); the shares, in slot order."""
    lo, hi = min(busy), max(busy) + total
    while lo < hi:                  # the lowest level the shares can fill up to
        level = (lo + hi) // 2
        if sum(max(0, level - b) for b in busy) >= total:
            hi = level
        else:
            lo = level + 1
    shares = [max(0, lo - b) for b in busy]
    extra = sum(shares) - total     # one beat less in that many of the slots with a share
    for k in range(len(shares)):
        take = min(extra, int(shares[k] > 0))
        shares[k] -= take
        extra -= take
    return shares


@dataclass
class LayerResult:
    spikes: np.ndarray              # uint8 [T, M, N]
    membrane: np.ndarray            # int64 [M, N]
    counters: dict                  # summed over runs
    runs: list = field(default_factory=list)   # per run: {m0, n0, n_cols, k0, k_len, cycles}
    k_block: int = 0                           # positions of K per run (partial sums carried)

    @property
    def cycles(self) -> int:
        return self.counters["cycles"]


@dataclass
class LayerSettings:
    """One layer of a network for :meth:`LoASDriver.run_layers`: weights ``[K, N]`` and the LIF
    registers it runs with."""
    weights: np.ndarray             # or anything validate_weights takes (a tensor, lists)
    threshold: int
    leak_amount: int = 0
    tmask: int | None = None


@dataclass
class NetworkResult:
    spikes: np.ndarray              # uint8 [T, M, N] of the last layer
    membrane: np.ndarray            # int64 [M, N] of the last layer
    counters: dict                  # summed over every run of every layer
    chained: list                   # per boundary between layers: True if it stayed on chip
    k_blocks: list                  # per layer: positions of K per run (partial sums carried)

    @property
    def cycles(self) -> int:
        return self.counters["cycles"]


@dataclass
class _WeightBlock:
    """A column block's weights over one K block, in memory order."""
    n0: int
    n_cols: int
    k0: int
    k_len: int
    n_tiles: int
    headers: list           # per broadcast row: {chunk, count, tile_last, n: [...]}
    masks: list             # fiber bitmasks in broadcast order
    values: list            # int8 values in broadcast order


@dataclass
class _Run:
    """One run of a command list: its operands (image keys), registers and outputs."""
    spikes: tuple           # key of its spike image (("chain", ...) when chained)
    weights: tuple          # key of its weight image
    rows: int
    regs: dict              # registers written before its start
    out: tuple | None       # (m0, n0, n_cols) where its outputs go, if it is a final K block
    chain_len: int = 0      # > 0: its spike rows come from the last run's outputs
    strong: bool = False
    info: dict = field(default_factory=dict)


def parse_lif(text: str) -> tuple[dict, dict]:
    """``threshold=64,leak=shift:2,reset=soft`` -> (generator parameters, job options).

    Structure (leak kind, reset kind) is hardware: it becomes generator parameters; amounts
    (threshold, leak shift or factor) are register values, options of the job.
    """
    params, options = {}, {}
    for item in filter(None, (part.strip() for part in (text or "").split(","))):
        key, sep, value = item.partition("=")
        if not sep:
            raise SnnforgeError(f"--lif {item!r}: expected key=value (threshold, leak, reset)")
        key, value = key.strip(), value.strip()
        if key == "threshold":
            options["threshold"] = value
        elif key == "leak":
            kind, _, amount = value.partition(":")
            if kind not in ("none", "shift", "mul"):
                raise SnnforgeError(f"--lif leak={value!r}: use none, shift:K or mul:BETA")
            params["leak"] = kind
            if amount:
                options["leak_amount"] = amount
        elif key == "reset":
            if value not in ("hard", "soft"):
                raise SnnforgeError(f"--lif reset={value!r} is not one of hard, soft")
            params["reset"] = value
        else:
            raise SnnforgeError(f"--lif {key!r} is not one of threshold, leak, reset")
    return params, options


class LoASDriver(Driver):
    """Runs whole layers on a :class:`~snnforge.hw.loas.core.LoASCore` through its host port.

    Its job (``snnforge run loas``) is one layer: spikes ``[T, M, K]`` and weights ``[K, N]``,
    the LIF register values, the time-step mask, strong and sequential mode; outputs are the
    output spikes ``[T, M, N]`` and final membranes ``[M, N]``.
    """

    flags = (
        Flag("spikes", "Input spikes [T, M, K], 0/1 (the input `spikes`).", "S.npy"),
        Flag("weights", "Weights [K, N] within int8 (the input `weights`).", "W.npy"),
        Flag("lif", "LIF settings, e.g. threshold=64,leak=shift:2,reset=hard.", "SPEC"),
        Flag("tmask", "Dynamic time-step mask (bit t = step t).", "MASK"),
        Flag("strong", "LoAS-FT strong mode: single-spike neurons silent.", is_flag=True),
        Flag("sequential", "Process time steps one after another (SparTen-S-like baseline).",
             is_flag=True),
        Flag("no_follow", "The first run waits for its whole weight block (compute cycles then "
                          "count compute alone).", is_flag=True),
    )

    #: Memory the driver may use when the transport does not say (``memory_size``).
    DEFAULT_MEMORY = 1 << 24

    def __init__(self, host, cfg: LoASConfig, *, memory_size: int | None = None):
        super().__init__(host, cfg)
        self.memory_size = memory_size or getattr(host.transport, "memory_size",
                                                  self.DEFAULT_MEMORY)
        #: The first run of a command list starts before its weight masks are loaded and
        #: follows their LOAD (``flags.follow``); off, it waits for its whole weight block, so
        #: that the ``cycles`` counter counts compute alone.
        self.follow = True

    # -- the job of `snnforge run` -------------------------------------------------------------
    @classmethod
    def job_spec(cls, cfg: LoASConfig) -> JobSpec:
        lif = cfg.lif
        # Without a leak amount a run leaks gently: a shift of 1, a factor of one half.
        gentle = {"none": 0, "shift": 1, "mul": 1 << (lif.leak_frac - 1)}[lif.leak]
        return JobSpec(
            inputs=(ArraySpec("spikes", ("T", "M", "K"), "binary", "input spikes, 0/1"),
                    ArraySpec("weights", ("K", "N"), "int", "weights", lo=-128, hi=127)),
            options=(
                Param("threshold", 64, "LIF threshold", 0, (1 << lif.threshold_bits) - 1),
                Param("leak_amount", gentle, f"LIF {lif.leak_amount_doc}", 0,
                      lif.leak_amount_max),
                Param("tmask", (1 << cfg.T) - 1, "dynamic time-step mask (bit t = step t)", 0,
                      (1 << cfg.T) - 1),
                Param("strong", False, "LoAS-FT strong mode: single-spike neurons silent"),
                Param("sequential", False, "time steps one after another (baseline mode)"),
                Param("follow", True, "the first run follows its weight masks' LOAD (off: it "
                                      "waits for its whole weight block, and compute cycles "
                                      "count compute alone)"),
            ),
            outputs=(ArraySpec("spikes", ("T", "M", "N"), "binary", "output spikes"),
                     ArraySpec("membrane", ("M", "N"), "int", "final membranes")))

    @classmethod
    def params_for(cls, inputs: dict) -> dict:
        spikes = inputs.get("spikes")
        return {"T": spikes.shape[0]} if spikes is not None and np.ndim(spikes) == 3 else {}

    @classmethod
    def from_flags(cls, values: dict) -> tuple[dict, dict, dict]:
        inputs = {name: values[name] for name in ("spikes", "weights") if name in values}
        params, options = parse_lif(values.get("lif", ""))
        if "tmask" in values:
            options["tmask"] = values["tmask"]
        for name in ("strong", "sequential"):
            if values.get(name):
                options[name] = True
        if values.get("no_follow"):
            options["follow"] = False
        return inputs, options, params

    @classmethod
    def check(cls, cfg: LoASConfig, job: Job) -> None:
        x, w = job.inputs["spikes"], job.inputs["weights"]
        validate_layer(x, w, cfg.T)
        try:
            cfg.k_block(job.options["sequential"])
        except ValueError as error:
            raise SnnforgeError(str(error)) from None

    async def run(self, job: Job) -> JobResult:
        o = job.options
        self.follow = o["follow"]
        result = await self.run_layer(
            job.inputs["spikes"], job.inputs["weights"],
            threshold=o["threshold"], leak_amount=o["leak_amount"], tmask=o["tmask"],
            strong=o["strong"], sequential=o["sequential"])
        return JobResult({"spikes": result.spikes, "membrane": result.membrane},
                         result.counters, {"runs": result.runs, "k_block": result.k_block})

    @classmethod
    def report(cls, cfg: LoASConfig, job: Job, result: JobResult) -> list[str]:
        T, M, K = job.inputs["spikes"].shape
        N = job.inputs["weights"].shape[1]
        c = result.counters
        utilization = c["matches"] / (cfg.pes * c["cycles"]) if c["cycles"] else 0.0
        lines = [f"layer T={T} M={M} K={K} N={N} ({len(result.facts['runs'])} runs)",
                 f"compute cycles {c['cycles']:,}, matches {c['matches']:,}, PE utilization "
                 f"{utilization:.1%} of {cfg.pes} PEs",
                 f"end-to-end cycles {c['total_cycles']:,} (one command list: loads, runs, "
                 f"stores); DMA {c['dma_read_bytes']:,} bytes read, {c['dma_write_bytes']:,} "
                 f"written"]
        if job.options.get("follow", True):
            lines.append("(the first run followed its weight masks' LOAD: its cycles include "
                         "that loading; --no-follow counts compute alone)")
        full = [name for name, value in c.items() if value >= (1 << cfg.counter_width) - 1]
        if full:
            lines.append(f"saturated at 2**{cfg.counter_width} - 1 (counter_width): "
                         f"{', '.join(full)}: these counts are lower bounds")
        return lines

    # -- planning ----------------------------------------------------------------------------------
    def _weight_block(self, w, n0, n_cols, k0, k_len, sequential) -> _WeightBlock | None:
        """Compress w[k0:k0+k_len, n0:n0+n_cols] into its memory arrays; None if it does not
        fit the buffers."""
        cfg = self.cfg
        W, G, T = cfg.fiber, cfg.group, cfg.T
        # Bitmask compression (golden.loas.compress_weights defines it): per fiber c of column
        # n, the mask of its nonzero positions and those values in increasing k.
        C = -(-k_len // W)
        block = np.zeros((C * W, n_cols), dtype=np.int64)
        block[:k_len] = w[k0:k0 + k_len, n0:n0 + n_cols]
        fibers_of = block.reshape(C, W, n_cols).transpose(0, 2, 1)          # [C, n, W]
        nonzero = fibers_of != 0
        mask_bytes = np.packbits(nonzero, axis=2, bitorder="little")
        # In sequential mode fiber c of the block becomes T fibers c*T + t with the same weights.
        expand = T if sequential else 1
        headers, masks, values = [], [], []
        n_tiles = -(-n_cols // cfg.tile_n)
        for tile in range(n_tiles):
            cols = range(tile * cfg.tile_n, min(n_cols, (tile + 1) * cfg.tile_n))
            tile_rows = []
            for c in range(C):
                fibers = []                     # (column in tile, mask, values)
                for n in cols:
                    if nonzero[c, n].any():
                        fibers.append((n - tile * cfg.tile_n,
                                       int.from_bytes(mask_bytes[c, n].tobytes(), "little"),
                                       fibers_of[c, n][nonzero[c, n]]))
                for t in range(expand):
                    for g in range(0, len(fibers), G):
                        group = fibers[g:g + G]
                        tile_rows.append({"chunk": c * expand + t, "count": len(group),
                                          "n": [f[0] for f in group] + [0] * (G - len(group))})
                        for _, mask, vals in group:
                            masks.append(mask)
                            values.extend(vals.tolist())
            if not tile_rows:                   # a tile without weights still needs its marker
                tile_rows.append({"chunk": 0, "count": 0, "n": [0] * G})
            for index, row in enumerate(tile_rows):
                headers.append({**row, "tile_last": int(index == len(tile_rows) - 1)})
        if len(values) > cfg.v_max or len(headers) > cfg.rows_max:
            return None
        return _WeightBlock(n0, n_cols, k0, k_len, n_tiles, headers, masks, values)

    #: A layer of one row tile is cut into at least this many column blocks (where it has the
    #: tiles): the next block's weights load while a block computes.
    PIPELINE_BLOCKS = 4

    def plan(self, w, sequential, *, rows=None):
        """K blocks and column blocks of a layer. K blocks are the largest whole-fiber blocks that
        fit ``k_max`` -- made smaller when even one tile of columns would overflow the weight
        buffers over a block. With ``rows`` (the layer's M) of one row tile, the columns are cut
        into at least :attr:`PIPELINE_BLOCKS` blocks, so that loads overlap compute."""
        cfg = self.cfg
        K = w.shape[0]
        try:
            kb = cfg.k_block(sequential)
        except ValueError as error:
            raise SnnforgeError(str(error)) from None
        tiles = -(-w.shape[1] // cfg.tile_n)
        most = (-(-tiles // self.PIPELINE_BLOCKS) if rows is not None and rows <= cfg.pes
                else tiles)
        while True:
            k_blocks = [(k0, min(kb, K - k0)) for k0 in range(0, K, kb)]
            try:
                return kb, k_blocks, self._column_blocks(w, k_blocks, sequential, most)
            except SnnforgeError:
                if kb <= cfg.fiber:
                    raise
                kb = max(cfg.fiber, (kb // cfg.fiber // 2) * cfg.fiber)

    def _column_blocks(self, w, k_blocks, sequential, most_tiles):
        """Greedy: as many whole tiles of columns per block as the buffers hold for every K block
        (at most ``most_tiles``); then as many blocks, balanced (:meth:`_balanced`)."""
        cfg = self.cfg
        N = w.shape[1]
        blocks = []
        n0 = 0
        while n0 < N:
            tiles = 1
            best = None
            while True:
                n_cols = min(N - n0, tiles * cfg.tile_n)
                if n_cols > cfg.n_max or tiles > most_tiles:
                    break
                images = [self._weight_block(w, n0, n_cols, k0, k_len, sequential)
                          for k0, k_len in k_blocks]
                if any(img is None for img in images):
                    break
                best = (n_cols, images)
                if n0 + n_cols >= N:
                    break
                tiles += 1
            if best is None:
                raise SnnforgeError(f"one tile of {cfg.tile_n} columns does not fit the weight "
                                    f"buffers (v_max={cfg.v_max}, f_max={cfg.f_max}); build a core "
                                    f"with larger buffers or a smaller tile_n")
            blocks.append(best)
            n0 += best[0]
        return self._balanced(w, k_blocks, sequential, blocks) or blocks

    def _balanced(self, w, k_blocks, sequential, greedy):
        """As many column blocks as ``greedy``, their tiles spread evenly, the smaller blocks
        first (the first block's weights are what a list waits for before it computes); None if
        one of them does not fit the buffers."""
        cfg = self.cfg
        N, n = w.shape[1], len(greedy)
        tiles = -(-N // cfg.tile_n)
        if n < 2 or tiles < n:
            return None
        sizes = [tiles // n + (k >= n - tiles % n) for k in range(n)]
        blocks, n0 = [], 0
        for size in sizes:
            n_cols = min(N - n0, size * cfg.tile_n)
            images = [self._weight_block(w, n0, n_cols, k0, k_len, sequential)
                      for k0, k_len in k_blocks]
            if n_cols > cfg.n_max or any(img is None for img in images):
                return None
            blocks.append((n_cols, images))
            n0 += n_cols
        return blocks

    # -- memory formats ----------------------------------------------------------------------------
    def _pad(self, data: bytes) -> bytes:
        bpb = self.cfg.beat_bytes
        return bytes(data) + bytes(-len(data) % bpb)

    def _lanes(self, values, width: int, lanes: int) -> bytes:
        """Small non-negative integers, ``lanes`` of ``width`` bits per beat, lowest first."""
        v = np.asarray(values, dtype=np.int64).reshape(-1)
        beats = -(-len(v) // lanes)
        padded = np.zeros(beats * lanes, dtype=np.int64)
        padded[:len(v)] = v
        bits = ((padded[:, None] >> np.arange(width)) & 1).astype(np.uint8)
        bits = bits.reshape(beats, lanes * width)
        full = np.zeros((beats, self.cfg.dma_width), dtype=np.uint8)
        full[:, :lanes * width] = bits
        return np.packbits(full, axis=1, bitorder="little").tobytes()

    def _unlanes(self, data: bytes, width: int, lanes: int, count: int, signed=False):
        bits = np.unpackbits(np.frombuffer(data, dtype=np.uint8), bitorder="little")
        bits = bits.reshape(-1, self.cfg.dma_width)[:, :lanes * width].reshape(-1, width)
        values = (bits.astype(np.int64) << np.arange(width)).sum(1)[:count]
        if signed:
            values = np.where(values >= 1 << (width - 1), values - (1 << width), values)
        return values

    def _masks(self, masks) -> bytes:
        size = self.cfg.fiber // 8
        return self._pad(b"".join(int(mask).to_bytes(size, "little") for mask in masks))

    def _spike_image(self, words, m0, rows, k0, k_len):
        """A row tile's spikes over positions k0 .. k0+k_len: fiber masks chunk by chunk (PE by
        PE within a chunk) and each PE's packed words."""
        cfg = self.cfg
        W, chunks = cfg.fiber, -(-k_len // cfg.fiber)
        block = np.zeros((rows, chunks * W), dtype=np.int64)
        block[:, :k_len] = words[m0:m0 + rows, k0:k0 + k_len]
        nonzero = (block != 0).reshape(rows, chunks, W).transpose(1, 0, 2)    # [c][pe]
        masks = np.packbits(nonzero, axis=2, bitorder="little").tobytes()
        packed = b"".join(self._lanes(row[row != 0], cfg.T, cfg.word_lanes) for row in block)
        return {"masks": self._pad(masks), "words": packed, "rows": rows, "chunks": chunks}

    def _weight_image(self, block: _WeightBlock):
        cfg = self.cfg
        layout, hb, H = cfg.header_layout, cfg.header_bits, cfg.headers_per_beat
        codes = [layout.const(h).as_bits() for h in block.headers]
        beats = [sum(c << (k * hb) for k, c in enumerate(codes[i:i + H]))
                 for i in range(0, len(codes), H)]
        headers = b"".join(b.to_bytes(cfg.beat_bytes, "little") for b in beats)
        values = np.asarray(block.values, dtype=np.int64).astype(np.int8).tobytes()
        return {"headers": headers, "masks": self._masks(block.masks),
                "values": self._pad(values), "rows": len(block.headers)}

    def _output_beats(self, n_cols):
        """Beats per PE of the output masks, words and membranes of ``n_cols`` columns."""
        cfg = self.cfg
        chunks = -(-n_cols // cfg.fiber)
        mask_beats = -(-chunks * cfg.fiber // cfg.dma_width)
        return (mask_beats, -(-n_cols // cfg.word_lanes), -(-n_cols // cfg.mem_lanes))

    # -- one command list ----------------------------------------------------------------------------
    def _program(self, runs, spike_images, weight_images):
        """The memory image and command list of ``runs`` (see the module docstring)."""
        cfg = self.cfg
        image = MemoryImage(self.memory_size, align=max(64, cfg.beat_bytes))
        at = {}
        for key, img in spike_images.items():
            at[("s",) + key] = (image.put(f"spike masks {key}", img["masks"]),
                                image.put(f"spike words {key}", img["words"]))
        for key, img in weight_images.items():
            at[("w",) + key] = (image.put(f"weight headers {key}", img["headers"]),
                                image.put(f"weight masks {key}", img["masks"]),
                                image.put(f"weight values {key}", img["values"]))
        outs = []
        for run in runs:
            if run.out is None:
                outs.append(None)
                continue
            beats = self._output_beats(run.out[2])
            outs.append(tuple(image.alloc(f"outputs {name} {run.out}", run.rows * b *
                                          cfg.beat_bytes)
                              for name, b in zip(("masks", "words", "membranes"), beats)))
        bpb = cfg.beat_bytes
        cl = CommandList(self.host.regmap)
        cl.write("control", clear=1)

        # Banks: an operand that changes goes to the other bank; outputs alternate.
        banks, s_bank, w_bank, last_s, last_w = [], 1, 1, None, None
        for run in runs:
            if run.chain_len or run.spikes != last_s:
                s_bank ^= 1
            if run.weights != last_w:
                w_bank ^= 1
            banks.append((s_bank, w_bank, len(banks) % 2))
            last_s, last_w = run.spikes, run.weights

        def spike_beats(i):
            img = spike_images[runs[i].spikes]
            return (len(img["masks"]) + len(img["words"])) // bpb

        def spikes_loaded(i):
            """Whether run ``i`` needs its spike rows loaded (they differ from the last run's)."""
            return not runs[i].chain_len and (i == 0 or runs[i].spikes != runs[i - 1].spikes)

        def block_beats(key, arrays=("headers", "masks", "values")):
            return sum(len(weight_images[key][a]) for a in arrays) // bpb

        # The first run follows its weight masks (flags.follow): it starts once its spikes,
        # headers and values are in, and the masks -- most of a weight block's bytes -- load
        # under it.
        follow = self.follow and bool(weight_images[runs[0].weights]["masks"])
        # A new weight block loads in pieces while the runs of the block before it compute (its
        # bank is free all that time): one piece per run, sized so that each run's bus work --
        # the next run's spikes, the first run's masks, the piece -- comes out as even as it can.
        starts = [i for i, run in enumerate(runs) if i == 0 or run.weights != runs[i - 1].weights]
        pieces = {}                 # slot (run index) -> (weight key, first, last, of)
        for before, start in zip(starts, starts[1:]):
            slots = range(before, start)
            busy = [(spike_beats(i + 1) if spikes_loaded(i + 1) else 0)
                    + (block_beats(runs[0].weights, ("masks",)) if i == 0 and follow else 0)
                    for i in slots]
            key = runs[start].weights
            headers = block_beats(key, ("headers",))
            total = block_beats(key)
            done = 0
            # Shares of the whole block; the headers come first, the rest are shares of the
            # masks and values.
            for i, beats in zip(slots, _even_out(busy, total)):
                if beats:
                    pieces[i] = (key, max(0, done - headers), max(0, done + beats - headers),
                                 max(1, total - headers),
                                 ("masks", "values") + (("headers",) if done == 0 else ()))
                done += beats
        next_w = {}                 # slot -> bank of the weights loading in it
        for before, start in zip(starts, starts[1:]):
            for k in range(before, start):
                next_w[k] = banks[start][1]
        mask_step = max(1, cfg.fiber // cfg.dma_width)     # beats per fiber mask

        def split(beats, first, last, of, step=1):
            """Share ``first .. last`` of ``of`` of an array of ``beats``, in units of ``step``."""
            units = -(-beats // step)
            lo, hi = units * first // of * step, min(beats, units * last // of * step)
            return lo, hi - lo

        def load_weights(key, first=0, last=1, of=1, arrays=("headers", "masks", "values")):
            """Share ``first .. last`` of ``of`` of a weight block's masks and values, and its
            headers if ``arrays`` (which to load) names them: a share appends to the last unless
            it starts its array, and says whether more follow."""
            img, (hd, masks, values) = weight_images[key], at[("w",) + key]
            if "headers" in arrays:
                cl.load("weight_headers", hd, len(img["headers"]) // bpb)
            total = len(img["masks"]) // bpb
            lo, count = split(total, first, last, of, mask_step)
            if count and "masks" in arrays:
                cl.load("weight_masks", masks + lo * bpb, count,
                        arg=img["rows"] | ((1 << 31) if lo else 0)
                        | ((1 << 30) if lo + count < total else 0))
            lo, count = split(len(img["values"]) // bpb, first, last, of)
            if count and "values" in arrays:
                cl.load("weight_values", values + lo * bpb, count,
                        arg=(1 << 31) if lo else 0)

        def load_spikes(i):
            if spikes_loaded(i):
                img, (masks, words) = spike_images[runs[i].spikes], at[("s",) + runs[i].spikes]
                cl.load("spike_masks", masks, len(img["masks"]) // bpb,
                        arg=img["rows"] | (img["chunks"] << 8))
                cl.load("spike_words", words, len(img["words"]) // bpb, arg=img["rows"])

        def stores(i):
            run = runs[i]
            if run.out is None:
                return
            arg = run.rows | (run.out[2] << 8)
            for name, addr, beats in zip(("out_masks", "out_words", "out_membranes"), outs[i],
                                         self._output_beats(run.out[2])):
                cl.store(name, addr, run.rows * beats, arg=arg)

        # A register is written only when its value changes (a WRITE costs the command
        # processor some cycles, and between two runs of a column block only the banks do).
        written = {}

        def write_changed(values):
            for name, value in values.items():
                r = self.host.regmap[name]
                code = r.encode(**value) if isinstance(value, dict) else int(value)
                if written.get(name) != code:
                    cl.write(name, code)
                    written[name] = code

        def xfer(spikes, weights, out):
            write_changed({"xfer_bank": {"spikes": spikes, "weights": weights, "out": out}})

        xfer(banks[0][0], banks[0][1], 0)
        load_spikes(0)
        load_weights(runs[0].weights,
                     arrays=("headers", "values") if follow else ("headers", "masks", "values"))
        for i, run in enumerate(runs):
            s, w, o = banks[i]
            if run.chain_len:
                if i:
                    cl.wait("status", running=0)
                xfer(s, w, banks[i - 1][2])
                write_changed({"k_len": run.chain_len, "active": run.rows,
                               "flags": {"strong": int(run.strong)}})
                cl.write("control", chain=1)
            cl.wait("status", loading=0)
            regs = run.regs
            if follow and i == 0:
                regs = {**regs, "flags": {**regs["flags"], "follow": 1}}
            write_changed({**regs, "run_bank": {"spikes": s, "weights": w, "out": o}})
            # Queued while the last run computes (it took its registers as it began); the
            # operands of that run's banks and its outputs wait until it has ended.
            cl.write("control", start=1)
            if i and not run.chain_len:
                cl.wait("status", begun=(i + 1) % (1 << BEGUN_BITS))
            if follow and i == 0:
                load_weights(run.weights, arrays=("masks",))
            # While it runs: the last run's outputs out, the next run's spikes and a piece of
            # the next weight block in.
            spikes_next = banks[i + 1][0] if i + 1 < len(runs) else s
            xfer(spikes_next, next_w.get(i, w), banks[i - 1][2] if i else o)
            if i:
                stores(i - 1)
            if i + 1 < len(runs):
                load_spikes(i + 1)
            if i in pieces:
                load_weights(*pieces[i])
        cl.wait("status", running=0)
        xfer(banks[-1][0], banks[-1][1], banks[-1][2])
        stores(len(runs) - 1)
        cl.end()
        return image, cl, outs

    async def _execute(self, runs, spike_images, weight_images, T, M, N):
        """Run the list of ``runs``; returns the output spikes, membranes and counters."""
        cfg = self.cfg
        image, cl, outs = self._program(runs, spike_images, weight_images)
        dma = await self.host.run_commands(image, cl)
        out = np.zeros((T, M, N), dtype=np.uint8)
        membrane = np.zeros((M, N), dtype=np.int64)
        bpb = cfg.beat_bytes
        for run, addrs in zip(runs, outs):
            if addrs is None:
                continue
            m0, n0, n_cols = run.out
            beats = self._output_beats(n_cols)
            data = [await self.host.read_memory(addr, run.rows * b * bpb)
                    for addr, b in zip(addrs, beats)]
            chunks = -(-n_cols // cfg.fiber)
            for r in range(run.rows):
                part = [d[r * b * bpb:(r + 1) * b * bpb] for d, b in zip(data, beats)]
                bits = np.unpackbits(np.frombuffer(part[0], dtype=np.uint8),
                                     bitorder="little")[:chunks * cfg.fiber][:n_cols]
                count = int(bits.sum())
                words = self._unlanes(part[1], cfg.T, cfg.word_lanes, count)
                dense = np.zeros(n_cols, dtype=np.int64)
                dense[bits.astype(bool)] = words
                for t in range(T):
                    out[t, m0 + r, n0:n0 + n_cols] = (dense >> t) & 1
                membrane[m0 + r, n0:n0 + n_cols] = self._unlanes(
                    part[2], cfg.mem_width, cfg.mem_lanes, n_cols, signed=True)
        counters = await self.host.read_many([name for name, _ in COUNTERS])
        counters.update(dma)
        return out, membrane, counters

    def _lif_regs(self, threshold, leak_amount, tmask):
        full = (1 << self.cfg.T) - 1
        return {"threshold": threshold, "leak_amount": leak_amount,
                "tmask": full if tmask is None else int(tmask)}

    def _layer_runs(self, key, words, w_images, k_blocks, M, K, K_eff, scale, lif,
                    spike_images, *, row_tiles=None, chained=False):
        """The runs of one layer (column block, row tile, K block), registering the spike images
        they use. ``chained``: the row tiles' spikes come from the previous layer's outputs."""
        cfg = self.cfg
        runs = []
        tiles = list(range(0, M, cfg.pes) if row_tiles is None else row_tiles)
        for b, (n_cols, images) in enumerate(w_images):
            # Every other column block walks the row tiles backwards: the tile at the turn keeps
            # its spike rows on chip.
            for m0 in (tiles if b % 2 == 0 else tiles[::-1]):
                rows = min(cfg.pes, M - m0)
                for kb, ((k0, k_len), wimg) in enumerate(zip(k_blocks, images)):
                    final = kb == len(k_blocks) - 1
                    if chained:
                        skey = ("chain", key, m0)
                    else:
                        skey = (key, m0, k0)
                        if skey not in spike_images:
                            ks, kl = k0 * scale, (k_len * scale if k0 + k_len < K
                                                  else K_eff - k0 * scale)
                            spike_images[skey] = self._spike_image(words, m0, rows, ks, kl)
                    regs = {"n_cols": wimg.n_cols, "n_tiles": wimg.n_tiles,
                            "n_rows": len(wimg.headers), "active": rows,
                            "flags": {"strong": 0, "use_psum": int(kb > 0), "final": int(final)},
                            **lif}
                    runs.append(_Run(skey, (key, wimg.n0, wimg.k0), rows, regs,
                                     (m0, wimg.n0, n_cols) if final else None,
                                     info={"m0": m0, "n0": wimg.n0, "n_cols": n_cols, "k0": k0,
                                           "k_len": k_len}))
        return runs

    # -- the layer ---------------------------------------------------------------------------------
    async def run_layer(self, spikes, weights, *, threshold: int, leak_amount: int = 0,
                        tmask: int | None = None, strong: bool = False,
                        temporal_parallel: bool = True, sequential: bool | None = None
                        ) -> LayerResult:
        """Run ``O[t] = x[t] @ w`` + LIF over the whole layer (one command list); returns output
        spikes, membranes and the counters summed over all runs (the core's and the host
        interface's: ``total_cycles`` from start to end of the list).

        ``temporal_parallel=False`` (or ``sequential=True``) processes the time steps one after
        another on the same hardware -- the SparTen-S-like baseline mode. ``strong`` is LoAS-FT
        (applied to the spike image).
        """
        if sequential is None:
            sequential = not temporal_parallel
        cfg = self.cfg
        x, w = validate_layer(spikes, weights, cfg.T)
        T, M, K = x.shape
        N = w.shape[1]
        if strong:
            x = _strong_spikes(x)
        if sequential:
            words, K_eff = self._sequential_words(x)
        else:
            words, K_eff = _ftp_words(x), K
        kb, k_blocks, col_blocks = self.plan(w, sequential, rows=M)
        spike_images, weight_images = {}, {}
        runs = self._layer_runs(0, words, col_blocks, k_blocks, M, K, K_eff,
                                T if sequential else 1,
                                self._lif_regs(threshold, leak_amount, tmask), spike_images)
        for _, images in col_blocks:
            for img in images:
                weight_images[(0, img.n0, img.k0)] = self._weight_image(img)
        out, membrane, counters = await self._execute(runs, spike_images, weight_images, T, M, N)
        return LayerResult(out, membrane, counters, [r.info for r in runs], kb)

    # -- networks ----------------------------------------------------------------------------------
    async def run_layers(self, spikes, layers, *, strong: bool = False, chain: bool = True
                         ) -> NetworkResult:
        """Run a feed-forward network: ``layers`` (:class:`LayerSettings`) one after another, each
        layer's output spikes the next layer's input. Boundaries are chained on chip wherever
        they can be (``chain=False``: every boundary through the host). ``strong`` applies to
        every layer's input, as it does in :func:`golden.loas.layer`."""
        if not layers:
            raise SnnforgeError("a network needs at least one layer")
        cfg = self.cfg
        x, _ = validate_layer(spikes, layers[0].weights, cfg.T)
        weights = [validate_weights(spec.weights) for spec in layers]
        for i in range(1, len(layers)):
            if weights[i].shape[0] != weights[i - 1].shape[1]:
                raise SnnforgeError(f"layer {i}: weights have {weights[i].shape[0]} rows but layer "
                                    f"{i - 1} has N={weights[i - 1].shape[1]} outputs: K must match")
        layers = [dataclasses.replace(spec, weights=w) for spec, w in zip(layers, weights)]
        plans = [self.plan(w, False) for w in weights]
        links = [chain and len(plans[i][2]) == 1 and len(plans[i + 1][1]) == 1
                 and weights[i].shape[1] <= cfg.n_max
                 for i in range(len(layers) - 1)]
        counters = {}
        i = 0
        while i < len(layers):
            j = i
            while j < len(links) and links[j]:
                j += 1
            out, membrane, found = await self._run_group(x, layers[i:j + 1], plans[i:j + 1],
                                                         strong)
            for name, value in found.items():
                counters[name] = counters.get(name, 0) + value
            x = out
            i = j + 1
        return NetworkResult(out, membrane, counters, links, [plan[0] for plan in plans])

    async def _run_group(self, x, layers, plans, strong):
        """Layers whose boundaries stay on chip, in one command list: per tile of rows, every
        layer in turn, each after the first loading its spike rows from the last one's outputs."""
        cfg = self.cfg
        if strong:
            x = _strong_spikes(x)
        T, M, _ = x.shape
        words = _ftp_words(x)
        spike_images, weight_images, runs = {}, {}, []
        for m0 in range(0, M, cfg.pes):
            for j, (spec, (_, k_blocks, col_blocks)) in enumerate(zip(layers, plans)):
                lif = self._lif_regs(spec.threshold, spec.leak_amount, spec.tmask)
                K = spec.weights.shape[0]
                tile_runs = self._layer_runs(j, words, col_blocks, k_blocks, M, K, K, 1, lif,
                                             spike_images, row_tiles=[m0], chained=j > 0)
                if j:
                    tile_runs[0].chain_len = spec.weights.shape[0]
                    tile_runs[0].strong = strong
                if j < len(layers) - 1:
                    for r in tile_runs:
                        r.out = None              # hidden outputs stay on chip
                runs += tile_runs
                for _, images in col_blocks:
                    for img in images:
                        weight_images.setdefault((j, img.n0, img.k0), self._weight_image(img))
        N = layers[-1].weights.shape[1]
        return await self._execute(runs, spike_images, weight_images, T, M, N)

    def _sequential_words(self, x):
        """Time-unrolled words: fiber c becomes fibers c*T + t holding x[t] as one-hot words."""
        cfg = self.cfg
        T, M, K = x.shape
        W = cfg.fiber
        chunks = -(-K // W)
        padded = np.zeros((T, M, chunks * W), dtype=np.int64)
        padded[:, :, :K] = x
        per_t = padded.reshape(T, M, chunks, W) << np.arange(T).reshape(T, 1, 1, 1)
        unrolled = per_t.transpose(1, 2, 0, 3).reshape(M, chunks * T * W)
        return unrolled, chunks * T * W
