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
spike row from its own outputs (``control`` bit 3) and the next layer's weights are loaded. Tiles
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

import torch

from .golden.loas import apply_strong, compress_weights, spike_words
from .hw.loas.config import LoASConfig
from .hw.loas.core import COUNTERS
from .params import SnnforgeError

__all__ = ["LoASDriver", "LayerResult", "LayerSettings", "NetworkResult", "validate_layer",
           "validate_weights"]


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


class LoASDriver:
    """Runs whole layers on a :class:`~snnforge.hw.loas.core.LoASCore` through its host port."""

    def __init__(self, host, cfg: LoASConfig, *, poll_every: int = 0):
        self.host = host
        self.cfg = cfg
        regmap = host.regmap
        self._entry_stride = 1 << max(0, (cfg.group - 1).bit_length())
        self._n_span = 1 << max(0, (cfg.n_max - 1).bit_length())
        self._c_span = 1 << max(0, (-(-cfg.n_max // cfg.fiber) - 1).bit_length())
        assert regmap["entries"].depth == cfg.rows_max * self._entry_stride

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
    async def _wait(self, bit):
        await self.host.wait_until("status", lambda v: not (v >> bit) & 1)

    async def _load_spikes(self, words, m0, rows, k0, k_len, strong):
        """Stream each row's dense words for positions k0..k0+k_len into its PE, PEs interleaved
        so that their compressors work in parallel."""
        cfg = self.cfg
        per = cfg.words_per_host_word
        await self.host.write_many({"k_len": k_len, "flags": int(strong), "active": rows})
        await self.host.write("control", 2)
        spikes = self.host.regmap["spikes"]
        n_host = -(-k_len // per)
        packed = []
        for r in range(rows):
            row = words[m0 + r, k0:k0 + k_len].tolist()
            row += [0] * (n_host * per - len(row))
            packed.append([sum(v << (cfg.T * i) for i, v in enumerate(row[h * per:(h + 1) * per]))
                           for h in range(n_host)])
        cmds = [(True, spikes.address + r, packed[r][h]) for h in range(n_host) for r in range(rows)]
        await self.host.transport.transact(cmds)
        await self._wait(1)

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
        await self.host.write_many({"k_len": k_len, "flags": int(strong), "active": rows})
        await self.host.write("control", 8)
        await self._wait(1)

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
            "flags": int(strong) | (int(block > 0) << 1) | (int(final) << 2)})
        await self.host.write("control", 1)
        await self._wait(0)
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
        await self.host.write("control", 4)
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
        await self.host.write("control", 4)
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
