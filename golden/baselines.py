"""Cycle and traffic models of LoAS and its SNN-adapted baselines (authors'-simulator level).

Every model counts **one cycle per effectual match** (a nonzero operand pair), takes the maximum over
the PEs of a tile (the PEs of a tile start together and the tile ends with its slowest PE), and sums
over tiles -- the accounting of ``src/snn-*-result.py@16eae04`` described in ``shared/papers/loas.md``
sections 4 and 10. Fiber/bitmask loads, prefix-sum stalls, FIFO back-pressure, LIF and DRAM latency
are not modelled. Edge tiles are clipped (idle PEs count 0).

All models take spikes ``[T, M, K]`` and weights ``[K, N]`` (validated as in
:mod:`snnforge.golden.loas`) and return a dict with at least ``cycles``, ``matches``, ``bound``
(``matches / pes``), ``utilization`` (``bound / cycles``) and ``traffic`` (``dram_bytes``,
``sram_bytes``).

The traffic models are ours: simple, compulsory-traffic estimates built from the bit costs of
loas.md section 2, not the authors' FIFO-cache simulation. Treat them as relative, approximate
numbers for comparing designs, not as reproductions of the paper's KB figures.
"""

from __future__ import annotations

import torch

from .energy import energy
from .loas import _check_fiber, _check_pair, _check_spikes, _check_strong, _check_weights, _pad_k
from .loas import apply_strong

__all__ = ["loas_cycles", "sparten_s_cycles", "gospa_s_cycles", "gamma_s_cycles", "baseline_table"]

WEIGHT_BITS = 8
CSR_COORD_BITS = 6
PSUM_BITS = 8


def _check_tile(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{name} must be a positive int, not {value!r}")
    return value


def _operands(spikes, w):
    x = _check_spikes(spikes)
    w = _check_weights(w)
    _check_pair(x, w)
    return x, w


def _blocks(n: int, size: int) -> int:
    return -(-n // size)


def _block_sum(t: torch.Tensor, dim: int, size: int) -> torch.Tensor:
    """Sum ``t`` over consecutive blocks of ``size`` along ``dim`` (last block zero-padded)."""
    t = _pad_k(t.movedim(dim, 0), 0, size)
    t = t.reshape(t.shape[0] // size, size, *t.shape[1:]).sum(1)
    return t.movedim(0, dim)


def _block_max(t: torch.Tensor, dim: int, size: int) -> torch.Tensor:
    """Max of ``t`` (non-negative) over consecutive blocks of ``size`` along ``dim``."""
    t = _pad_k(t.movedim(dim, 0), 0, size)
    t = t.reshape(t.shape[0] // size, size, *t.shape[1:]).amax(1)
    return t.movedim(0, dim)


def _chunk_matmul(a: torch.Tensor, b: torch.Tensor, chunk: int) -> torch.Tensor:
    """``out[..., c, j] = sum_{k in chunk c} a[..., k] * b[k, j]`` for non-negative integer counts.

    Computed in float64: every partial sum is an integer far below 2**53, so the result is exact.
    """
    lead, K = a.shape[:-1], a.shape[-1]
    C = _blocks(K, chunk)
    a = _pad_k(a.reshape(-1, K), 1, chunk).reshape(-1, C, chunk).transpose(0, 1)   # [C, R, chunk]
    b = _pad_k(b, 0, chunk).reshape(C, chunk, b.shape[1])                          # [C, chunk, J]
    out = (a.to(torch.float64) @ b.to(torch.float64)).round().to(torch.int64)     # [C, R, J]
    return out.transpose(0, 1).reshape(*lead, C, b.shape[2])


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
                strong: bool = False, lockstep: bool = True) -> dict:
    """LoAS cycles, ``mntk`` dataflow, one cycle per (non-silent neuron, nonzero weight) match.

    Tiles are m-blocks of ``pes`` rows (PE ``i`` owns row ``m0 + i``), n-blocks of ``tile_n`` columns
    (the broadcast weight tile) and K chunks of ``fiber``. PE cost of a tile:
    ``sum_{n in tile} sum_{k in chunk} [word[m, k] != 0] [w[k, n] != 0]``.

    ``lockstep=True`` (the authors' model): tile cost = max over PEs, layer = sum over tiles.
    ``lockstep=False`` (PEs run ahead on their own rows, what our RTL aims for): per m-block the cost
    is the max over PEs of the PE's total over all its tiles; layer = sum over m-blocks.

    Traffic (bits): spikes ``T`` per non-silent neuron + 1 per bitmask position (``M*K``); weights
    8 per nonzero + 1 per position (``K*N``); outputs ``T`` per output neuron. DRAM reads each operand
    once and writes the outputs; SRAM re-reads the spike operand once per n-block and the weight
    operand once per m-block, and takes the outputs once.

    Extra keys: ``per_tile`` (int64 ``[m-blocks, pes, chunks, n-blocks]`` PE costs).
    """
    x, w = _operands(spikes, w)
    _check_tile(pes, "pes")
    _check_fiber(fiber)
    _check_tile(tile_n, "tile_n")
    if _check_strong(strong):
        x = apply_strong(x)
    if not isinstance(lockstep, bool):
        raise ValueError(f"lockstep must be a bool, not {lockstep!r}")
    T, M, K = x.shape
    N = w.shape[1]
    nonsilent = (x.sum(0) != 0).to(torch.int64)                               # [M, K]
    wcount = _block_sum((w != 0).to(torch.int64), 1, tile_n)                  # [K, NB]
    per_pe = _chunk_matmul(nonsilent, wcount, fiber)                          # [M, C, NB]
    per_pe = _pad_k(per_pe, 0, pes)
    per_tile = per_pe.reshape(-1, pes, *per_pe.shape[1:])                     # [MB, pes, C, NB]
    matches = int(per_tile.sum())
    if lockstep:
        cycles = per_tile.amax(1).sum() if per_tile.numel() else 0
    else:
        cycles = per_tile.sum((2, 3)).amax(1).sum() if per_tile.numel() else 0
    MB, NB = _blocks(M, pes), _blocks(N, tile_n)
    x_bits = T * int(nonsilent.sum()) + M * K
    w_bits = WEIGHT_BITS * int((w != 0).sum()) + K * N
    o_bits = T * M * N
    return _result(cycles, matches, pes, x_bits + w_bits + o_bits,
                   x_bits * NB + w_bits * MB + o_bits, per_tile=per_tile)


# --------------------------------------------------------------------------------------------
# SparTen-S and GoSPA-S: one weight column per PE, time steps sequential


def _column_per_pe(x, w, pes, tile_m, tile_k):
    """Per-PE costs when PE ``j`` owns column ``n0 + j`` of an ``(tile_k, pes)`` weight tile and the
    x tile is ``(1, tile_m, tile_k)``: ``sum_{m in block} sum_{k in chunk} x[t, m, k] [w[k, n] != 0]``.
    Returns int64 ``[T, MB, C, NB, pes]``."""
    xcount = _block_sum(x, 1, tile_m)                                        # [T, MB, K]
    per_col = _chunk_matmul(xcount, (w != 0).to(torch.int64), tile_k)        # [T, MB, C, N]
    per_col = _pad_k(per_col.movedim(-1, 0), 0, pes).movedim(0, -1)
    return per_col.reshape(*per_col.shape[:-1], -1, pes)


def _seq_weight_bits(w) -> int:
    K, N = w.shape
    return WEIGHT_BITS * int((w != 0).sum()) + K * N


def sparten_s_cycles(spikes, w, *, pes: int = 16, tile_m: int = 32, tile_k: int = 128) -> dict:
    """SparTen-S cycles: ``nmtk`` inner product, T sequential, spikes unpacked.

    Tile = (t, m-block of ``tile_m`` rows, n-block of ``pes`` columns, K chunk of ``tile_k``); PE ``j``
    owns column ``n0 + j`` and spends ``sum_{m in block} sum_{k in chunk} x[t,m,k] [w[k,n] != 0]``
    cycles; tile cost = max over PEs; layer = sum over tiles. ``matches`` = sequential match count.

    Traffic (bits): spikes as T separate bitmasks (``T*M*K``, no words); weights as LoAS (8 per
    nonzero + 1 per position); outputs ``T*M*N``. DRAM: each once. SRAM: spikes re-read per n-block,
    weights re-read per (m-block, t), outputs once.
    """
    x, w = _operands(spikes, w)
    for name, v in (("pes", pes), ("tile_m", tile_m), ("tile_k", tile_k)):
        _check_tile(v, name)
    T, M, K = x.shape
    N = w.shape[1]
    per = _column_per_pe(x, w, pes, tile_m, tile_k)
    cycles = per.amax(-1).sum() if per.numel() else 0
    MB, NB = _blocks(M, tile_m), _blocks(N, pes)
    x_bits = T * M * K
    w_bits = _seq_weight_bits(w)
    o_bits = T * M * N
    return _result(cycles, per.sum(), pes, x_bits + w_bits + o_bits,
                   x_bits * NB + w_bits * MB * T + o_bits)


def gospa_s_cycles(spikes, w, *, pes: int = 16, tile_m: int = 64, tile_k: int = 256) -> dict:
    """GoSPA-S cycles: ``kntm``, x tile ``(1, tile_m, tile_k)``, w tile ``(tile_k, pes)``, T sequential.

    The notes do not give GoSPA-S's split over PEs; our reconstruction gives PE ``j`` column
    ``n0 + j`` of the w tile: tile = (t, K chunk, n-block, m-block), PE cost = matches of its column
    over the ``tile_m`` rows, tile cost = max over PEs, layer = sum over tiles.

    Traffic (bits): spikes as CSR coordinates, 6 per spike per time step; weights as LoAS; partial
    sums spilled to DRAM and read back (``2 * M*N*T * 8``); outputs ``T*M*N``. SRAM: spikes re-read
    per n-block, weights per (m-block, t), plus the partial sums and outputs once.
    """
    x, w = _operands(spikes, w)
    for name, v in (("pes", pes), ("tile_m", tile_m), ("tile_k", tile_k)):
        _check_tile(v, name)
    T, M, K = x.shape
    N = w.shape[1]
    per = _column_per_pe(x, w, pes, tile_m, tile_k)
    cycles = per.amax(-1).sum() if per.numel() else 0
    MB, NB = _blocks(M, tile_m), _blocks(N, pes)
    x_bits = CSR_COORD_BITS * int(x.sum())
    w_bits = _seq_weight_bits(w)
    p_bits = 2 * M * N * T * PSUM_BITS
    o_bits = T * M * N
    return _result(cycles, per.sum(), pes, x_bits + w_bits + p_bits + o_bits,
                   x_bits * NB + w_bits * MB * T + p_bits + o_bits)


def gamma_s_cycles(spikes, w, *, pes: int = 16, tile_k: int = 64, tile_n: int = 64) -> dict:
    """Gamma-S cycles: ``mktn`` row-wise (Gustavson), x tile ``(1, pes, tile_k)``, w tile
    ``(tile_k, tile_n)``, one A row per PE, T sequential.

    Tile = (t, m-block of ``pes`` rows, K chunk, n-block); PE ``i`` (row ``m0 + i``) spends
    ``sum_{k in chunk} x[t, m, k] * nnz(w[k, n-block])`` cycles; max over PEs; sum over tiles.

    Traffic (bits): CSR with 6-bit coordinates -- spikes 6 per spike per time step, weights
    6 + 8 per nonzero; outputs ``T*M*N``. DRAM: each once, then scaled by ``1 + (T-3)/T`` for the
    partial-sum rows that spill (no spill for T <= 3). SRAM: spikes re-read per n-block, weights per
    (m-block, t), outputs once.
    """
    x, w = _operands(spikes, w)
    for name, v in (("pes", pes), ("tile_k", tile_k), ("tile_n", tile_n)):
        _check_tile(v, name)
    T, M, K = x.shape
    N = w.shape[1]
    wcount = _block_sum((w != 0).to(torch.int64), 1, tile_n)                 # [K, NB]
    per_row = _chunk_matmul(x, wcount, tile_k)                               # [T, M, C, NB]
    cycles = _block_max(per_row, 1, pes).sum() if per_row.numel() else 0
    MB, NB = _blocks(M, pes), _blocks(N, tile_n)
    x_bits = CSR_COORD_BITS * int(x.sum())
    w_bits = (CSR_COORD_BITS + WEIGHT_BITS) * int((w != 0).sum())
    o_bits = T * M * N
    spill = 1 + max(T - 3, 0) / T
    return _result(cycles, per_row.sum(), pes, (x_bits + w_bits + o_bits) * spill,
                   x_bits * NB + w_bits * MB * T + o_bits)


# --------------------------------------------------------------------------------------------
# comparison table


def baseline_table(spikes, w, strong: bool = False) -> list[dict]:
    """One row per design with the default (paper) configurations, normalised to SparTen-S.

    Rows: SparTen-S, GoSPA-S, Gamma-S, LoAS, LoAS (no lock-step) and, when ``strong``, LoAS-FT.
    Keys: ``design``, ``cycles``, ``matches``, ``speedup`` (SparTen-S cycles / cycles), ``energy``
    (:func:`snnforge.golden.energy.energy` with ``ops = matches``), ``efficiency`` (SparTen-S energy /
    energy), ``dram_bytes``, ``sram_bytes``, ``utilization``.
    """
    _check_strong(strong)
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
