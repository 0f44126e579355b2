"""Cycle and traffic models of LoAS and its SNN-adapted baselines (authors'-simulator level).

Every model counts **one cycle per effectual match** (a nonzero operand pair), takes the maximum over
the PEs of a tile (the PEs of a tile start together and the tile ends with its slowest PE), and sums
over tiles -- the accounting of ``src/snn-*-result.py@16eae04`` described in ``shared/papers/loas.md``
sections 4 and 10. Fiber/bitmask loads, prefix-sum stalls, FIFO back-pressure, LIF and DRAM latency
are not modelled. Edge tiles are clipped (idle PEs count 0).

All models take spikes ``[T, M, K]`` and weights ``[K, N]`` (validated as in
:mod:`snnforge.golden.loas`) and return a dict with at least ``cycles``, ``matches``, ``bound``
(``matches / pes``), ``utilization`` (``bound / cycles``), ``traffic`` (``dram_bytes``,
``sram_bytes``) and ``cache``.

**Traffic: access-count model** (the authors' simulator, loas.md sections 4 and 10). On-chip SRAM is
two FIFO-evicted caches sized in elements (:class:`FifoCache`), one for weight blocks and one
for spike blocks, with the capacities of loas.md (:data:`CACHE_ELEMENTS`; every model takes
``weight_cache`` and ``spike_cache`` to override them). The model walks the tiles of a design in its
loop order (the dataflow string, outermost first); every tile accesses its spike block
and its weight block through the two caches:

* an operand **block** is the part of the operand one tile reads: ``x[m-block, K chunk]`` (LoAS,
  packed) or ``x[t, m-block, K chunk]`` (sequential designs), and ``w[K chunk, n-block]``;
* its **size in elements** (capacity accounting) is its number of positions -- rows x columns of the
  clipped block, zeros included, one time step for the sequential designs -- since the authors'
  caches are sized in operand elements, not in compressed bits;
* its **size in bits** is its compressed size in the design's format (loas.md section 2): LoAS and
  SparTen-S weights 8 per nonzero + 1 per position (bitmask); LoAS spikes ``T`` per non-silent
  neuron + 1 per position; SparTen-S spikes 1 per position (one bitmask per time step); GoSPA-S and
  Gamma-S spikes 6 (CSR coordinate) per spike; Gamma-S weights 6 + 8 per nonzero; GoSPA-S weights as
  LoAS;
* a **miss** fetches the block from DRAM (DRAM traffic += its bits); **every** access, hit or miss,
  reads the block from SRAM (SRAM traffic += its bits).

Outputs (``T`` bits per output neuron) are written once to DRAM and once to SRAM. Design-specific
partial-sum terms are added on top (GoSPA-S: ``2*M*N*T*8`` bits to DRAM and SRAM; Gamma-S: DRAM x
``1 + (T-3)/T``). ``cache`` reports, per cache (``"spikes"``, ``"weights"``), ``hits``, ``misses``,
``elements`` (elements moved in on misses) and the operand's share of the traffic (``dram_bytes``,
``sram_bytes``). When both operands fit their caches, DRAM traffic is the compulsory traffic (every
block fetched once); SRAM traffic does not depend on the caches.

This reproduces the structure of the authors' memory model, not their exact KB figures (their block
keys, edge handling and eviction corner cases are not public in detail); use it to compare designs.
"""

from __future__ import annotations

import torch

from .core import (apply_strong, check_fiber, check_pair, check_spikes, check_strong,
                   check_weights, pad_k)
from .energy import energy

__all__ = ["FifoCache", "CACHE_ELEMENTS", "loas_cycles", "sparten_s_cycles", "gospa_s_cycles",
           "gamma_s_cycles", "baseline_table"]

WEIGHT_BITS = 8
CSR_COORD_BITS = 6
PSUM_BITS = 8

#: design -> (weight cache, spike cache) capacities in elements (loas.md sections 4 and 10).
CACHE_ELEMENTS = {
    "loas": (128 * 32, 128 * 1024),
    "sparten_s": (128 * 1024, 128 * 32 * 4),
    "gospa_s": (256 * 4 * 16, 2720 * 64),
    "gamma_s": (256 * 512, 32 * 256),
}


def _check_tile(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{name} must be a positive int, not {value!r}")
    return value


def _operands(spikes, w):
    x = check_spikes(spikes)
    w = check_weights(w)
    check_pair(x, w)
    return x, w


def _blocks(n: int, size: int) -> int:
    return -(-n // size)


def _block_sum(t: torch.Tensor, dim: int, size: int) -> torch.Tensor:
    """Sum ``t`` over consecutive blocks of ``size`` along ``dim`` (last block zero-padded)."""
    t = pad_k(t.movedim(dim, 0), 0, size)
    t = t.reshape(t.shape[0] // size, size, *t.shape[1:]).sum(1)
    return t.movedim(0, dim)


def _block_max(t: torch.Tensor, dim: int, size: int) -> torch.Tensor:
    """Max of ``t`` (non-negative) over consecutive blocks of ``size`` along ``dim``."""
    t = pad_k(t.movedim(dim, 0), 0, size)
    t = t.reshape(t.shape[0] // size, size, *t.shape[1:]).amax(1)
    return t.movedim(0, dim)


def _chunk_matmul(a: torch.Tensor, b: torch.Tensor, chunk: int) -> torch.Tensor:
    """``out[..., c, j] = sum_{k in chunk c} a[..., k] * b[k, j]`` for non-negative integer counts.

    Computed in float64: every partial sum is an integer far below 2**53, so the result is exact.
    """
    lead, K = a.shape[:-1], a.shape[-1]
    C = _blocks(K, chunk)
    a = pad_k(a.reshape(-1, K), 1, chunk).reshape(-1, C, chunk).transpose(0, 1)   # [C, R, chunk]
    b = pad_k(b, 0, chunk).reshape(C, chunk, b.shape[1])                          # [C, chunk, J]
    out = (a.to(torch.float64) @ b.to(torch.float64)).round().to(torch.int64)     # [C, R, J]
    return out.transpose(0, 1).reshape(*lead, C, b.shape[2])


class FifoCache:
    """A FIFO-evicted cache of whole blocks, sized in elements (the authors' SRAM model).

    ``access(key, size)`` returns ``True`` on a hit (``key`` resident; FIFO order is not refreshed).
    On a miss the oldest blocks are evicted, whole, until the new block fits, and the new block is
    inserted last. A block larger than ``capacity`` is streamed through: it is a miss every time, is
    not kept and evicts nothing.

    Counters: ``hits``, ``misses`` and ``elements`` (elements moved in from DRAM, i.e. the summed
    size of the missed blocks, oversize ones included). ``used`` is the resident size, ``blocks``
    the resident keys, oldest first.
    """

    __slots__ = ("capacity", "used", "hits", "misses", "elements", "_blocks")

    def __init__(self, capacity: int):
        self.capacity = _check_tile(capacity, "capacity")
        self.used = self.hits = self.misses = self.elements = 0
        self._blocks: dict = {}                      # key -> size, in insertion (FIFO) order

    def access(self, key, size: int) -> bool:
        """Access block ``key`` of ``size`` elements; ``True`` on a hit."""
        blocks = self._blocks
        if key in blocks:
            self.hits += 1
            return True
        if size < 0:
            raise ValueError(f"size must be non-negative, not {size!r}")
        self.misses += 1
        self.elements += size
        if size > self.capacity:
            return False
        while self.used + size > self.capacity:
            self.used -= blocks.pop(next(iter(blocks)))
        blocks[key] = size
        self.used += size
        return False

    def __contains__(self, key) -> bool:
        return key in self._blocks

    @property
    def blocks(self) -> tuple:
        return tuple(self._blocks)

    def stats(self) -> dict:
        return {"hits": self.hits, "misses": self.misses, "elements": self.elements}


def _lengths(n: int, size: int) -> torch.Tensor:
    """Clipped lengths of the consecutive blocks of ``size`` covering ``range(n)``."""
    return (n - torch.arange(0, n, size)).clamp(max=size)


def _walk(order: str, x_dims: str, x_bits, x_elems, w_dims: str, w_bits, w_elems,
          caps: tuple[int, int]) -> tuple[int, int, dict]:
    """Walk the tiles in loop ``order`` through the weight and spike caches.

    ``order`` names the loops, outermost first, with letters among ``t m k n`` (block indices).
    ``x_bits``/``x_elems`` are int64 tensors indexed by the letters ``x_dims`` (bits and elements
    of each spike block), ``w_bits``/``w_elems`` likewise for ``w_dims``; every letter of
    ``x_dims``/``w_dims`` appears in ``order`` and its loop count is the tensor's size there.
    ``caps`` = (weight cache, spike cache) in elements.
    Returns ``(dram_bits, sram_bits, cache)`` of the two operands.
    """
    counts = dict(zip(x_dims, x_bits.shape)) | dict(zip(w_dims, w_bits.shape))
    n_tiles = 1
    for d in order:
        n_tiles *= counts.get(d, 1)
    tile = torch.arange(n_tiles)
    idx, stride = {}, n_tiles
    for d in order if n_tiles else ():               # loop indices of every tile, last loop fastest
        c = counts.get(d, 1)
        stride //= c
        idx[d] = tile // stride % c

    def keys(dims, shape):                           # flat block index of every tile
        flat = torch.zeros(n_tiles, dtype=torch.int64)
        for d, size in zip(dims, shape):
            flat = flat * size + idx[d] if n_tiles else flat
        return flat.tolist()

    xk, wk = keys(x_dims, x_bits.shape), keys(w_dims, w_bits.shape)
    xb, xe = x_bits.reshape(-1).tolist(), x_elems.reshape(-1).tolist()
    wb, we = w_bits.reshape(-1).tolist(), w_elems.reshape(-1).tolist()
    wc, xc = FifoCache(caps[0]), FifoCache(caps[1])
    x_access, w_access = xc.access, wc.access
    x_dram = w_dram = x_sram = w_sram = 0
    for i, j in zip(xk, wk):
        b = xb[i]
        x_sram += b
        if not x_access(i, xe[i]):
            x_dram += b
        b = wb[j]
        w_sram += b
        if not w_access(j, we[j]):
            w_dram += b
    cache = {"spikes": {**xc.stats(), "dram_bytes": x_dram / 8, "sram_bytes": x_sram / 8},
             "weights": {**wc.stats(), "dram_bytes": w_dram / 8, "sram_bytes": w_sram / 8}}
    return x_dram + w_dram, x_sram + w_sram, cache


def _check_caches(weight_cache, spike_cache) -> tuple[int, int]:
    return _check_tile(weight_cache, "weight_cache"), _check_tile(spike_cache, "spike_cache")


def _grid(t: torch.Tensor, dims_sizes) -> torch.Tensor:
    """Block sums of ``t`` over the blocks ``(dim, size), ...``."""
    for dim, size in dims_sizes:
        t = _block_sum(t, dim, size)
    return t


def _weight_blocks(w, tile_k: int, tile_n: int, nz_bits: int, position_bits: int):
    """(bits, elements) of the weight blocks ``w[K chunk, n-block]``, int64 ``[C, NB]``."""
    K, N = w.shape
    elems = torch.outer(_lengths(K, tile_k), _lengths(N, tile_n))
    nnz = _grid((w != 0).to(torch.int64), ((0, tile_k), (1, tile_n)))
    return nz_bits * nnz + position_bits * elems, elems


def _seq_spike_elems(T: int, M: int, K: int, tile_m: int, tile_k: int) -> torch.Tensor:
    """Elements of the per-time-step spike blocks ``x[t, m-block, K chunk]``, ``[T, MB, C]``."""
    return torch.outer(_lengths(M, tile_m), _lengths(K, tile_k)).expand(T, -1, -1)


def _csr_spike_bits(x, tile_m: int, tile_k: int) -> torch.Tensor:
    """CSR bits of the spike blocks ``x[t, m-block, K chunk]``: 6 per spike, ``[T, MB, C]``."""
    return CSR_COORD_BITS * _grid(x.to(torch.int64), ((1, tile_m), (2, tile_k)))


def _result(cycles, matches, pes, dram_bits, sram_bits, **extra) -> dict:
    cycles = int(cycles)
    matches = int(matches)
    bound = matches / pes
    return {
        "cycles": cycles,
        "matches": matches,
        "bound": bound,
        "utilization": bound / cycles if cycles else 0.0,
        "traffic": {"dram_bytes": dram_bits / 8, "sram_bytes": sram_bits / 8},
        **extra,
    }


# --------------------------------------------------------------------------------------------
# LoAS


def loas_cycles(spikes, w, *, pes: int = 16, fiber: int = 128, tile_n: int = 32,
                strong: bool = False, lockstep: bool = True,
                weight_cache: int = CACHE_ELEMENTS["loas"][0],
                spike_cache: int = CACHE_ELEMENTS["loas"][1]) -> dict:
    """LoAS cycles, ``mntk`` dataflow, one cycle per (non-silent neuron, nonzero weight) match.

    Tiles are m-blocks of ``pes`` rows (PE ``i`` owns row ``m0 + i``), n-blocks of ``tile_n`` columns
    (the broadcast weight tile) and K chunks of ``fiber``. PE cost of a tile:
    ``sum_{n in tile} sum_{k in chunk} [word[m, k] != 0] [w[k, n] != 0]``.

    ``lockstep=True`` (the authors' model): tile cost = max over PEs, layer = sum over tiles.
    ``lockstep=False`` (PEs run ahead on their own rows, what our RTL aims for): per m-block the cost
    is the max over PEs of the PE's total over all its tiles; layer = sum over m-blocks.

    Traffic (cache model of the module docstring): tiles walked in ``mntk`` order (m-block, n-block,
    K chunk); each reads the packed spike block ``x[m-block, chunk]`` (``pes*fiber`` elements; ``T``
    bits per non-silent neuron + 1 per position) through the spike cache (``spike_cache`` elements,
    128*1024) and the weight block ``w[chunk, n-block]`` (``fiber*tile_n`` elements; 8 bits per
    nonzero + 1 per position) through the weight cache (``weight_cache``, 128*32 = one block).
    Misses go to DRAM, every access to SRAM; outputs ``T`` bits per output neuron, once to each.
    With the default caches the weights are fetched once per m-block unless the layer has a single
    weight block; the spikes of an m-block stay resident while its ``K/fiber`` chunks fit the spike
    cache (64 blocks of 16*128). SRAM traffic = spikes x n-blocks + weights x m-blocks + outputs.

    Extra keys: ``per_tile`` (int64 ``[m-blocks, pes, chunks, n-blocks]`` PE costs), ``cache``.
    """
    x, w = _operands(spikes, w)
    _check_tile(pes, "pes")
    check_fiber(fiber)
    _check_tile(tile_n, "tile_n")
    if check_strong(strong):
        x = apply_strong(x)
    if not isinstance(lockstep, bool):
        raise ValueError(f"lockstep must be a bool, not {lockstep!r}")
    caps = _check_caches(weight_cache, spike_cache)
    T, M, K = x.shape
    N = w.shape[1]
    nonsilent = (x.sum(0) != 0).to(torch.int64)                               # [M, K]
    wcount = _block_sum((w != 0).to(torch.int64), 1, tile_n)                  # [K, NB]
    per_pe = _chunk_matmul(nonsilent, wcount, fiber)                          # [M, C, NB]
    per_pe = pad_k(per_pe, 0, pes)
    per_tile = per_pe.reshape(-1, pes, *per_pe.shape[1:])                     # [MB, pes, C, NB]
    matches = int(per_tile.sum())
    if lockstep:
        cycles = per_tile.amax(1).sum() if per_tile.numel() else 0
    else:
        cycles = per_tile.sum((2, 3)).amax(1).sum() if per_tile.numel() else 0
    x_elems = torch.outer(_lengths(M, pes), _lengths(K, fiber))               # [MB, C]
    x_bits = T * _grid(nonsilent, ((0, pes), (1, fiber))) + x_elems
    w_bits, w_elems = _weight_blocks(w, fiber, tile_n, WEIGHT_BITS, 1)         # [C, NB]
    dram, sram, cache = _walk("mnk", "mk", x_bits, x_elems, "kn", w_bits, w_elems, caps)
    o_bits = T * M * N
    return _result(cycles, matches, pes, dram + o_bits, sram + o_bits, per_tile=per_tile,
                   cache=cache)


# --------------------------------------------------------------------------------------------
# SparTen-S and GoSPA-S: one weight column per PE, time steps sequential


def _column_per_pe(x, w, pes, tile_m, tile_k):
    """Per-PE costs when PE ``j`` owns column ``n0 + j`` of an ``(tile_k, pes)`` weight tile and the
    x tile is ``(1, tile_m, tile_k)``: ``sum_{m in block} sum_{k in chunk} x[t, m, k] [w[k, n] != 0]``.
    Returns int64 ``[T, MB, C, NB, pes]``."""
    xcount = _block_sum(x, 1, tile_m)                                        # [T, MB, K]
    per_col = _chunk_matmul(xcount, (w != 0).to(torch.int64), tile_k)        # [T, MB, C, N]
    per_col = pad_k(per_col.movedim(-1, 0), 0, pes).movedim(0, -1)
    return per_col.reshape(*per_col.shape[:-1], -1, pes)


def sparten_s_cycles(spikes, w, *, pes: int = 16, tile_m: int = 32, tile_k: int = 128,
                     weight_cache: int = CACHE_ELEMENTS["sparten_s"][0],
                     spike_cache: int = CACHE_ELEMENTS["sparten_s"][1]) -> dict:
    """SparTen-S cycles: ``nmtk`` inner product, T sequential, spikes unpacked.

    Tile = (t, m-block of ``tile_m`` rows, n-block of ``pes`` columns, K chunk of ``tile_k``); PE ``j``
    owns column ``n0 + j`` and spends ``sum_{m in block} sum_{k in chunk} x[t,m,k] [w[k,n] != 0]``
    cycles; tile cost = max over PEs; layer = sum over tiles. ``matches`` = sequential match count.

    Traffic (cache model of the module docstring): tiles walked in ``nmtk`` order (n-block of
    ``pes`` columns, m-block, t, K chunk); each reads the spike block ``x[t, m-block, chunk]``
    (``tile_m*tile_k`` elements, 1 bit per position: one bitmask per time step) through the spike
    cache (128*32*4) and the weight block ``w[chunk, n-block]`` (``tile_k*pes`` elements; 8 bits
    per nonzero + 1 per position) through the weight cache (128*1024). Misses go to DRAM, every
    access to SRAM; outputs ``T*M*N`` bits once to each. SRAM = spikes x n-blocks + weights x
    m-blocks x T + outputs. With the defaults a spike block is evicted before it is reused (the
    cache holds 4 blocks, ``T * K/tile_k`` are read per (n-block, m-block)), so the spikes are
    fetched from DRAM once per n-block unless ``T * M * K`` fits the spike cache.

    Extra key: ``cache``.
    """
    x, w = _operands(spikes, w)
    for name, v in (("pes", pes), ("tile_m", tile_m), ("tile_k", tile_k)):
        _check_tile(v, name)
    caps = _check_caches(weight_cache, spike_cache)
    T, M, K = x.shape
    N = w.shape[1]
    per = _column_per_pe(x, w, pes, tile_m, tile_k)
    cycles = per.amax(-1).sum() if per.numel() else 0
    x_elems = _seq_spike_elems(T, M, K, tile_m, tile_k)                       # [T, MB, C]
    w_bits, w_elems = _weight_blocks(w, tile_k, pes, WEIGHT_BITS, 1)          # [C, NB]
    dram, sram, cache = _walk("nmtk", "tmk", x_elems, x_elems, "kn", w_bits, w_elems, caps)
    o_bits = T * M * N
    return _result(cycles, per.sum(), pes, dram + o_bits, sram + o_bits, cache=cache)


def gospa_s_cycles(spikes, w, *, pes: int = 16, tile_m: int = 64, tile_k: int = 256,
                   weight_cache: int = CACHE_ELEMENTS["gospa_s"][0],
                   spike_cache: int = CACHE_ELEMENTS["gospa_s"][1]) -> dict:
    """GoSPA-S cycles: ``kntm``, x tile ``(1, tile_m, tile_k)``, w tile ``(tile_k, pes)``, T sequential.

    The notes do not give GoSPA-S's split over PEs; our reconstruction gives PE ``j`` column
    ``n0 + j`` of the w tile: tile = (t, K chunk, n-block, m-block), PE cost = matches of its column
    over the ``tile_m`` rows, tile cost = max over PEs, layer = sum over tiles.

    Traffic (cache model of the module docstring): tiles walked in ``kntm`` order (K chunk, n-block
    of ``pes`` columns, t, m-block); each reads the spike block ``x[t, m-block, chunk]``
    (``tile_m*tile_k`` elements; CSR, 6 bits per spike) through the spike cache (2720*64) and the
    weight block ``w[chunk, n-block]`` (``tile_k*pes`` elements; 8 bits per nonzero + 1 per
    position) through the weight cache (256*4*16). Misses go to DRAM, every access to SRAM. On top:
    partial sums spilled to DRAM and read back (``2 * M*N*T * 8`` bits, to DRAM and to SRAM) and
    outputs ``T*M*N`` bits once to each.

    Extra key: ``cache``.
    """
    x, w = _operands(spikes, w)
    for name, v in (("pes", pes), ("tile_m", tile_m), ("tile_k", tile_k)):
        _check_tile(v, name)
    caps = _check_caches(weight_cache, spike_cache)
    T, M, K = x.shape
    N = w.shape[1]
    per = _column_per_pe(x, w, pes, tile_m, tile_k)
    cycles = per.amax(-1).sum() if per.numel() else 0
    x_elems = _seq_spike_elems(T, M, K, tile_m, tile_k)                       # [T, MB, C]
    x_bits = _csr_spike_bits(x, tile_m, tile_k)
    w_bits, w_elems = _weight_blocks(w, tile_k, pes, WEIGHT_BITS, 1)          # [C, NB]
    dram, sram, cache = _walk("kntm", "tmk", x_bits, x_elems, "kn", w_bits, w_elems, caps)
    p_bits = 2 * M * N * T * PSUM_BITS
    o_bits = T * M * N
    return _result(cycles, per.sum(), pes, dram + p_bits + o_bits, sram + p_bits + o_bits,
                   cache=cache)


def gamma_s_cycles(spikes, w, *, pes: int = 16, tile_k: int = 64, tile_n: int = 64,
                   weight_cache: int = CACHE_ELEMENTS["gamma_s"][0],
                   spike_cache: int = CACHE_ELEMENTS["gamma_s"][1]) -> dict:
    """Gamma-S cycles: ``mktn`` row-wise (Gustavson), x tile ``(1, pes, tile_k)``, w tile
    ``(tile_k, tile_n)``, one A row per PE, T sequential.

    Tile = (t, m-block of ``pes`` rows, K chunk, n-block); PE ``i`` (row ``m0 + i``) spends
    ``sum_{k in chunk} x[t, m, k] * nnz(w[k, n-block])`` cycles; max over PEs; sum over tiles.

    Traffic (cache model of the module docstring): tiles walked in ``mktn`` order (m-block of
    ``pes`` rows, K chunk, t, n-block); each reads the spike block ``x[t, m-block, chunk]``
    (``pes*tile_k`` elements; CSR, 6 bits per spike) through the spike cache (32*256) and the weight
    block ``w[chunk, n-block]`` (``tile_k*tile_n`` elements; CSR, 6 + 8 bits per nonzero) through
    the weight cache (256*512). Misses go to DRAM, every access to SRAM; outputs ``T*M*N`` bits once
    to each. On top, the DRAM total (operands + outputs) is scaled by ``1 + (T-3)/T`` for the
    partial-sum rows that spill (no spill for T <= 3).

    Extra key: ``cache``.
    """
    x, w = _operands(spikes, w)
    for name, v in (("pes", pes), ("tile_k", tile_k), ("tile_n", tile_n)):
        _check_tile(v, name)
    caps = _check_caches(weight_cache, spike_cache)
    T, M, K = x.shape
    N = w.shape[1]
    wcount = _block_sum((w != 0).to(torch.int64), 1, tile_n)                 # [K, NB]
    per_row = _chunk_matmul(x, wcount, tile_k)                               # [T, M, C, NB]
    cycles = _block_max(per_row, 1, pes).sum() if per_row.numel() else 0
    x_elems = _seq_spike_elems(T, M, K, pes, tile_k)                          # [T, MB, C]
    x_bits = _csr_spike_bits(x, pes, tile_k)
    w_bits, w_elems = _weight_blocks(w, tile_k, tile_n, CSR_COORD_BITS + WEIGHT_BITS, 0)
    dram, sram, cache = _walk("mktn", "tmk", x_bits, x_elems, "kn", w_bits, w_elems, caps)
    o_bits = T * M * N
    spill = 1 + max(T - 3, 0) / T
    return _result(cycles, per_row.sum(), pes, (dram + o_bits) * spill, sram + o_bits,
                   cache=cache)


# --------------------------------------------------------------------------------------------
# comparison table


def baseline_table(spikes, w, strong: bool = False) -> list[dict]:
    """One row per design with the default (paper) configurations, normalised to SparTen-S.

    Rows: SparTen-S, GoSPA-S, Gamma-S, LoAS, LoAS (no lock-step) and, when ``strong``, LoAS-FT.
    Keys: ``design``, ``cycles``, ``matches``, ``speedup`` (SparTen-S cycles / cycles), ``energy``
    (:func:`snnforge.golden.loas.energy.energy` with ``ops = matches``), ``efficiency`` (SparTen-S energy /
    energy), ``dram_bytes``, ``sram_bytes`` (the cache model of the module docstring, default
    capacities), ``utilization``.
    """
    check_strong(strong)
    runs = [
        ("SparTen-S", "sparten_s", sparten_s_cycles(spikes, w)),
        ("GoSPA-S", "gospa_s", gospa_s_cycles(spikes, w)),
        ("Gamma-S", "gamma_s", gamma_s_cycles(spikes, w)),
        ("LoAS", "loas", loas_cycles(spikes, w)),
        ("LoAS (no lock-step)", "loas", loas_cycles(spikes, w, lockstep=False)),
    ]
    if strong:
        runs.append(("LoAS-FT", "loas", loas_cycles(spikes, w, strong=True)))
    rows = []
    for name, key, r in runs:
        tr = r["traffic"]
        e = energy(key, r["cycles"], tr["dram_bytes"], tr["sram_bytes"], r["matches"])
        rows.append({"design": name, "cycles": r["cycles"], "matches": r["matches"], "energy": e,
                     "dram_bytes": tr["dram_bytes"], "sram_bytes": tr["sram_bytes"],
                     "utilization": r["utilization"]})
    ref_c, ref_e = rows[0]["cycles"], rows[0]["energy"]
    for row in rows:
        row["speedup"] = ref_c / row["cycles"] if row["cycles"] else float("inf")
        row["efficiency"] = ref_e / row["energy"] if row["energy"] else float("inf")
    return rows
