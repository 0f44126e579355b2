"""Host software for the LoAS core: tiles a whole layer into runs and speaks the host port.

One class, :class:`LoASDriver`, over a :class:`~snnforge.host.HostDriver` -- so the same code runs a
layer under cocotb, in Amaranth's simulator, from ``snnforge run`` and on a board.

Tiling (layers larger than the buffers are tiled, never refused):

* rows of the spike matrix in tiles of ``pes`` (one row per PE);
* output columns in blocks that fit the weight buffers (``n_max`` columns, ``v_max`` nonzero
  weights, ``rows_max`` broadcast rows), always whole ``tile_n`` tiles;
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
import torch

from ...driver import ArraySpec, Driver, Flag, Job, JobResult, JobSpec
from ...golden.loas import apply_strong, compress_weights, spike_words
from ...params import Param, SnnforgeError
from .config import LoASConfig
from .core import COUNTERS

__all__ = ["LoASDriver", "LayerResult", "LayerSettings", "NetworkResult", "validate_layer",
           "validate_weights", "parse_lif"]


def validate_weights(weights):
    """A weight matrix ``[K, N]`` within int8; raises SnnforgeError with a clear message."""
    w = torch.as_tensor(weights)
    if w.dim() != 2:
        raise SnnforgeError(f"weights must have shape [K, N], not {list(w.shape)}")
    if w.is_floating_point() and not torch.all(w == w.round()):
        raise SnnforgeError("weights must be integers within int8 (-128..127)")
    if w.numel() and (w.min() < -128 or w.max() > 127):
        raise SnnforgeError(f"weights must lie within int8 (-128..127), found {int(w.min())}.."
                            f"{int(w.max())}")
    if w.shape[0] == 0 or w.shape[1] == 0:
        raise SnnforgeError(f"weights must have K and N of at least 1, not {list(w.shape)}")
    return w.to(torch.int64)


def validate_layer(spikes, weights, T=None):
    """Shapes and values of a layer's operands; raises SnnforgeError with a clear message."""
    x = torch.as_tensor(spikes)
    if x.dim() != 3:
        raise SnnforgeError(f"spikes must have shape [T, M, K], not {list(x.shape)}")
    w = validate_weights(weights)
    if T is not None and x.shape[0] != T:
        raise SnnforgeError(f"spikes have T={x.shape[0]} time steps; the core was built for T={T}")
    if x.is_floating_point() or x.is_complex():
        if not torch.all((x == 0) | (x == 1)):
            raise SnnforgeError("spikes must be binary (0/1)")
    elif x.numel() and (x.min() < 0 or x.max() > 1):
        raise SnnforgeError("spikes must be binary (0/1)")
    if x.shape[2] != w.shape[0]:
        raise SnnforgeError(f"spikes have K={x.shape[2]} positions but weights have "
                            f"{w.shape[0]} rows: K must match")
    if x.shape[1] == 0:
        raise SnnforgeError("spikes must have at least one row (M >= 1)")
    return x.to(torch.int64), w


@dataclass
class LayerResult:
    spikes: torch.Tensor            # uint8 [T, M, N]
    membrane: torch.Tensor          # int64 [M, N]
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
    weights: torch.Tensor
    threshold: int
    leak_amount: int = 0
    tmask: int | None = None


@dataclass
class NetworkResult:
    spikes: torch.Tensor            # uint8 [T, M, N] of the last layer
    membrane: torch.Tensor          # int64 [M, N] of the last layer
    counters: dict                  # summed over every run of every layer
    layer_cycles: list              # compute cycles per layer
    chained: list                   # per boundary between layers: True if it stayed on chip
    k_blocks: list                  # per layer: positions of K per run (partial sums carried)

    @property
    def cycles(self) -> int:
        return self.counters["cycles"]


@dataclass
class _WeightBlock:
    n0: int
    n_cols: int
    k0: int
    k_len: int
    values: list            # 32-bit words
    entries: list           # (element address, packed entry)
    rows: list              # packed row descriptors
    n_tiles: int


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
    )

    def __init__(self, host, cfg: LoASConfig):
        super().__init__(host, cfg)
        regmap = host.regmap
        self._entry_stride = regmap["entries"].block
        self._n_span = regmap["out_words"].block
        self._c_span = regmap["out_mask"].block

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
        return inputs, options, params

    @classmethod
    def check(cls, cfg: LoASConfig, job: Job) -> None:
        x, w = job.inputs["spikes"], job.inputs["weights"]
        validate_layer(torch.from_numpy(x), torch.from_numpy(w), cfg.T)
        try:
            cfg.k_block(job.options["sequential"])
        except ValueError as error:
            raise SnnforgeError(str(error)) from None

    async def run(self, job: Job) -> JobResult:
        o = job.options
        result = await self.run_layer(
            torch.from_numpy(job.inputs["spikes"]), torch.from_numpy(job.inputs["weights"]),
            threshold=o["threshold"], leak_amount=o["leak_amount"], tmask=o["tmask"],
            strong=o["strong"], sequential=o["sequential"])
        return JobResult({"spikes": result.spikes.numpy(), "membrane": result.membrane.numpy()},
                         result.counters, {"runs": result.runs, "k_block": result.k_block})

    @classmethod
    def report(cls, cfg: LoASConfig, job: Job, result: JobResult) -> list[str]:
        T, M, K = job.inputs["spikes"].shape
        N = job.inputs["weights"].shape[1]
        c = result.counters
        utilization = c["matches"] / (cfg.pes * c["cycles"]) if c["cycles"] else 0.0
        return [f"layer T={T} M={M} K={K} N={N} ({len(result.facts['runs'])} runs)",
                f"compute cycles {c['cycles']:,}, matches {c['matches']:,}, PE utilization "
                f"{utilization:.1%} of {cfg.pes} PEs"]

    # -- planning ----------------------------------------------------------------------------------
    def _pack_row(self, kind, **fields):
        layout = getattr(self.cfg, kind)
        return layout.const(fields).as_bits()

    def _weight_block(self, w, n0, n_cols, k0, k_len, sequential) -> _WeightBlock | None:
        """Compress w[k0:k0+k_len, n0:n0+n_cols] into buffer images; None if it does not fit."""
        cfg = self.cfg
        W, G, T = cfg.fiber, cfg.group, cfg.T
        block = w[k0:k0 + k_len, n0:n0 + n_cols]
        cw = compress_weights(block, fiber=W)
        chunk_ids = range(cw.n_chunks)
        # In sequential mode fiber c of the block becomes T fibers c*T + t with the same weights.
        expand = T if sequential else 1
        values, entries, rows = [], [], []
        vbase = 0
        n_tiles = -(-n_cols // cfg.tile_n)
        for tile in range(n_tiles):
            cols = range(tile * cfg.tile_n, min(n_cols, (tile + 1) * cfg.tile_n))
            tile_rows = []
            for c in chunk_ids:
                fibers = []                     # (column in tile, mask, vbase)
                for n in cols:
                    mask, vals = cw.fiber_of(c, n)
                    if mask:
                        fibers.append((n - tile * cfg.tile_n, mask, vbase))
                        values.extend(int(v) for v in vals)
                        vbase += len(vals)
                for t in range(expand):
                    for g in range(0, len(fibers), G):
                        group = fibers[g:g + G]
                        row = len(rows) + len(tile_rows)
                        entries += [(row * self._entry_stride + j,
                                     self._pack_row("entry_layout", mask=mask, n=n_local, vbase=vb))
                                    for j, (n_local, mask, vb) in enumerate(group)]
                        tile_rows.append((c * expand + t, len(group)))
            if not tile_rows:
                tile_rows.append((0, 0))        # a tile without weights still needs its marker
            for index, (chunk, count) in enumerate(tile_rows):
                rows.append(self._pack_row("row_layout", chunk=chunk, count=count,
                                           tile_last=int(index == len(tile_rows) - 1)))
        if len(values) > cfg.v_max or len(rows) > cfg.rows_max:
            return None
        words = [sum((v & 0xFF) << (8 * b) for b, v in enumerate(values[i:i + 4]))
                 for i in range(0, len(values), 4)]
        return _WeightBlock(n0, n_cols, k0, k_len, words, entries, rows, n_tiles)

    def plan(self, w, sequential):
        """K blocks and column blocks of a layer. K blocks are the largest whole-fiber blocks that
        fit ``k_max`` -- made smaller when even one tile of columns would overflow the weight
        buffers over a block."""
        cfg = self.cfg
        K = w.shape[0]
        try:
            kb = cfg.k_block(sequential)
        except ValueError as error:
            raise SnnforgeError(str(error)) from None
        while True:
            k_blocks = [(k0, min(kb, K - k0)) for k0 in range(0, K, kb)]
            try:
                return kb, k_blocks, self._column_blocks(w, k_blocks, sequential)
            except SnnforgeError:
                if kb <= cfg.fiber:
                    raise
                kb = max(cfg.fiber, (kb // cfg.fiber // 2) * cfg.fiber)

    def _column_blocks(self, w, k_blocks, sequential):
        """Greedy: as many whole tiles of columns per block as the buffers hold for every K block."""
        cfg = self.cfg
        N = w.shape[1]
        blocks = []
        n0 = 0
        while n0 < N:
            tiles = 1
            best = None
            while True:
                n_cols = min(N - n0, tiles * cfg.tile_n)
                if n_cols > cfg.n_max:
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
        return blocks

    # -- host-port steps ---------------------------------------------------------------------------
    async def _wait(self, busy):
        await self.host.wait_field("status", busy, 0)

    async def _load_spikes(self, words, m0, rows, k0, k_len, strong):
        """Stream each row's dense words for positions k0..k0+k_len into its PE, PEs interleaved
        so that their compressors work in parallel."""
        cfg = self.cfg
        per = cfg.words_per_host_word
        await self.host.write_many({"k_len": k_len, "flags": {"strong": int(strong)},
                                    "active": rows, "control": {"load": 1}})
        spikes = self.host.regmap["spikes"]
        stride = self.host.regmap.stride(spikes.element_width)
        n_host = -(-k_len // per)
        packed = []
        for r in range(rows):
            row = words[m0 + r, k0:k0 + k_len].tolist()
            row += [0] * (n_host * per - len(row))
            packed.append([sum(v << (cfg.T * i) for i, v in enumerate(row[h * per:(h + 1) * per]))
                           for h in range(n_host)])
        cmds = [(True, spikes.address + r * stride, packed[r][h])
                for h in range(n_host) for r in range(rows)]
        await self.host.transport.transact(cmds)
        await self._wait("loading")

    async def _load_weights(self, image: _WeightBlock):
        await self.host.write_window("weights", image.values)
        entries = self.host.regmap["entries"]
        wpe = self.host.regmap.words_per_element(entries.element_width)
        stride = self.host.regmap.stride(entries.element_width)
        mask = (1 << 32) - 1
        cmds = [(True, entries.address + address * stride + k, (value >> (32 * k)) & mask)
                for address, value in image.entries for k in range(wpe)]
        await self.host.transport.transact(cmds)
        await self.host.write_window("rows", image.rows)

    async def _read_outputs(self, rows, n_cols):
        cfg = self.cfg
        T = cfg.T
        chunks = -(-n_cols // cfg.fiber)
        out = torch.zeros(T, rows, n_cols, dtype=torch.uint8)
        membrane = torch.zeros(rows, n_cols, dtype=torch.int64)
        for r in range(rows):
            masks = await self.host.read_window("out_mask", chunks, offset=r * self._c_span)
            count = sum(bin(x).count("1") for x in masks)
            words = await self.host.read_window("out_words", count, offset=r * self._n_span) \
                if count else []
            mems = await self.host.read_window("membrane", n_cols, offset=r * self._n_span)
            it = iter(words)
            for n in range(n_cols):
                if (masks[n // cfg.fiber] >> (n % cfg.fiber)) & 1:
                    word = next(it)
                    for t in range(T):
                        out[t, r, n] = (word >> t) & 1
            half = 1 << (cfg.mem_width - 1)
            membrane[r] = torch.tensor([((v + half) % (1 << cfg.mem_width)) - half for v in mems])
        return out, membrane

    async def _chain_spikes(self, rows, k_len, strong):
        """Every PE reloads its spike row (positions 0..k_len) from its own last outputs."""
        await self.host.write_many({"k_len": k_len, "flags": {"strong": int(strong)},
                                    "active": rows, "control": {"chain": 1}})
        await self._wait("loading")

    async def _set_lif(self, threshold, leak_amount, tmask):
        full = (1 << self.cfg.T) - 1
        await self.host.write_many({"threshold": threshold, "leak_amount": leak_amount,
                                    "tmask": full if tmask is None else int(tmask)})

    async def _run(self, image: _WeightBlock, rows, strong, block, final) -> int:
        """One run over the loaded buffers; returns its compute cycles (from the counter)."""
        before = await self.host.read("cycles")
        await self.host.write_many({
            "n_cols": image.n_cols, "n_tiles": image.n_tiles, "n_rows": len(image.rows),
            "active": rows,
            "flags": {"strong": int(strong), "use_psum": int(block > 0), "final": int(final)},
            "control": {"start": 1}})
        await self._wait("running")
        return await self.host.read("cycles") - before

    # -- the layer ---------------------------------------------------------------------------------
    async def run_layer(self, spikes, weights, *, threshold: int, leak_amount: int = 0,
                        tmask: int | None = None, strong: bool = False,
                        temporal_parallel: bool = True, sequential: bool | None = None
                        ) -> LayerResult:
        """Run ``O[t] = x[t] @ w`` + LIF over the whole layer; returns output spikes, membranes
        and the counters summed over all runs.

        ``temporal_parallel=False`` (or ``sequential=True``) processes the time steps one after
        another on the same hardware -- the SparTen-S-like baseline mode. ``strong`` is LoAS-FT.
        """
        if sequential is None:
            sequential = not temporal_parallel
        cfg = self.cfg
        x, w = validate_layer(spikes, weights, cfg.T)
        T, M, K = x.shape
        N = w.shape[1]
        if sequential:
            if strong:
                x = apply_strong(x)
            words, K_eff = self._sequential_words(x)
            strong_hw = False
        else:
            words, K_eff, strong_hw = spike_words(x), K, strong
        kb, k_blocks, col_blocks = self.plan(w, sequential)
        await self._set_lif(threshold, leak_amount, tmask)
        await self.host.write("control", clear=1)
        out = torch.zeros(T, M, N, dtype=torch.uint8)
        membrane = torch.zeros(M, N, dtype=torch.int64)
        runs = []
        loaded = None
        scale = T if sequential else 1
        for n_cols, images in col_blocks:
            n0 = images[0].n0
            for m0 in range(0, M, cfg.pes):
                rows = min(cfg.pes, M - m0)
                for b, ((k0, k_len), image) in enumerate(zip(k_blocks, images)):
                    if loaded != (n0, k0):
                        await self._load_weights(image)
                        loaded = (n0, k0)
                    await self._load_spikes(words, m0, rows, k0 * scale, k_len * scale
                                            if k0 + k_len < K else K_eff - k0 * scale, strong_hw)
                    final = b == len(k_blocks) - 1
                    cycles = await self._run(image, rows, strong_hw, b, final)
                    runs.append({"m0": m0, "n0": n0, "n_cols": n_cols, "k0": k0, "k_len": k_len,
                                 "cycles": cycles})
                    if final:
                        o, v = await self._read_outputs(rows, n_cols)
                        out[:, m0:m0 + rows, n0:n0 + n_cols] = o
                        membrane[m0:m0 + rows, n0:n0 + n_cols] = v
        counters = await self.host.read_many([name for name, _ in COUNTERS])
        return LayerResult(out, membrane, counters, runs, kb)

    # -- networks ----------------------------------------------------------------------------------
    async def run_layers(self, spikes, layers, *, strong: bool = False, chain: bool = True
                         ) -> NetworkResult:
        """Run a feed-forward network: ``layers`` (:class:`LayerSettings`) one after another, each
        layer's output spikes the next layer's input. Boundaries are chained on chip wherever
        they can be (``chain=False``: every boundary through the host). ``strong`` applies to
        every layer's input, as it does in :func:`golden.loas.layer`."""
        if not layers:
            raise SnnforgeError("a network needs at least one layer")
        x, _ = validate_layer(spikes, layers[0].weights, self.cfg.T)
        weights = [validate_weights(spec.weights) for spec in layers]
        for i in range(1, len(layers)):
            if weights[i].shape[0] != weights[i - 1].shape[1]:
                raise SnnforgeError(f"layer {i}: weights have {weights[i].shape[0]} rows but layer "
                                    f"{i - 1} has N={weights[i - 1].shape[1]} outputs: K must match")
        layers = [dataclasses.replace(spec, weights=w) for spec, w in zip(layers, weights)]
        plans = [self.plan(w, False) for w in weights]
        links = [chain and len(plans[i][2]) == 1 and len(plans[i + 1][1]) == 1
                 and weights[i].shape[1] <= self.cfg.n_max
                 for i in range(len(layers) - 1)]
        counters = {name: 0 for name, _ in COUNTERS}
        layer_cycles = []
        i = 0
        while i < len(layers):
            j = i
            while j < len(links) and links[j]:
                j += 1
            if j == i:
                spec = layers[i]
                result = await self.run_layer(x, spec.weights, threshold=spec.threshold,
                                              leak_amount=spec.leak_amount, tmask=spec.tmask,
                                              strong=strong)
                cycles = [result.cycles]
            else:
                result, cycles = await self._run_chain(x, layers[i:j + 1], plans[i:j + 1], strong)
            for name in counters:
                counters[name] += result.counters[name]
            layer_cycles += cycles
            x = result.spikes
            i = j + 1
        return NetworkResult(result.spikes, result.membrane, counters, layer_cycles, links,
                             [plan[0] for plan in plans])

    async def _run_chain(self, x, layers, plans, strong):
        """Layers whose boundaries stay on chip: per tile of rows, every layer in turn."""
        cfg = self.cfg
        x = x.to(torch.int64)
        T, M, _ = x.shape
        words = spike_words(x)
        N = layers[-1].weights.shape[1]
        out = torch.zeros(T, M, N, dtype=torch.uint8)
        membrane = torch.zeros(M, N, dtype=torch.int64)
        cycles = [0] * len(layers)
        await self.host.write("control", clear=1)
        for m0 in range(0, M, cfg.pes):
            rows = min(cfg.pes, M - m0)
            for j, (spec, (_, k_blocks, col_blocks)) in enumerate(zip(layers, plans)):
                await self._set_lif(spec.threshold, spec.leak_amount, spec.tmask)
                if j:
                    await self._chain_spikes(rows, spec.weights.shape[0], strong)
                for n_cols, images in col_blocks:
                    for b, ((k0, k_len), image) in enumerate(zip(k_blocks, images)):
                        await self._load_weights(image)
                        if not j:
                            await self._load_spikes(words, m0, rows, k0, k_len, strong)
                        final = b == len(k_blocks) - 1
                        cycles[j] += await self._run(image, rows, strong, b, final)
                        if final and j == len(layers) - 1:
                            n0 = image.n0
                            o, v = await self._read_outputs(rows, n_cols)
                            out[:, m0:m0 + rows, n0:n0 + n_cols] = o
                            membrane[m0:m0 + rows, n0:n0 + n_cols] = v
        counters = await self.host.read_many([name for name, _ in COUNTERS])
        return LayerResult(out, membrane, counters), cycles

    def _sequential_words(self, x):
        """Time-unrolled words: fiber c becomes fibers c*T + t holding x[t] as one-hot words."""
        cfg = self.cfg
        T, M, K = x.shape
        W = cfg.fiber
        chunks = -(-K // W)
        padded = torch.zeros(T, M, chunks * W, dtype=torch.int64)
        padded[:, :, :K] = x
        per_t = padded.view(T, M, chunks, W) << torch.arange(T).view(T, 1, 1, 1)
        unrolled = per_t.permute(1, 2, 0, 3).reshape(M, chunks * T * W)
        return unrolled, chunks * T * W
