"""Golden models of the LoAS dual-sparse SNN core (value level, no timing).

See ``shared/papers/loas.md``. The core computes ``O[t] = x[t] @ w`` for binary spikes
``x [T, M, K]`` and signed 8-bit weights ``w [K, N]`` with both operands compressed:

* **FTP packing** -- the T time steps of neuron ``(m, k)`` are one T-bit word
  ``word = sum_t x[t, m, k] << t`` (bit ``t`` is step ``t``). A neuron is *silent* iff its word is 0.
  A row of ``x`` is cut into fibers of ``fiber`` positions: a bitmask of non-silent positions plus
  the packed array of their words.
* **Weights** -- the same scheme per column of ``w``: a bitmask of nonzeros plus the packed values.
* **TPPE** -- per fiber pair, the matched positions (``bmA & bmB``) are visited in increasing order;
  each matched weight goes to one *pseudo* accumulator (as if the neuron fired at every step) and,
  for each step where the neuron did *not* fire, to correction accumulator ``t``;
  ``O[t] = pseudo - corr[t]``.
* **Strong mode (LoAS-FT)** -- neurons that fire exactly once in T are made silent. This changes
  the model; every reference here compares against the masked spikes.

Conventions: spikes are ``[T, M, K]`` with values in {0, 1} (any int, bool or float dtype); weights
are ``[K, N]`` integers in -128..127 (any int dtype); results are int64.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..common.lif import LIFParams, lif_integer

__all__ = [
    "MAX_T", "check_spikes", "check_weights", "check_fiber", "check_pair", "check_strong",
    "pad_k", "spike_words", "strong_mask", "apply_strong",
    "PackedSpikes", "pack_spikes", "CompressedWeights", "compress_weights",
    "prefix_popcount", "tppe_pair", "spmspm", "spmspm_reference", "spmspm_tppe",
    "match_count", "match_count_sequential", "partial_sums", "neurons", "layer", "im2col",
    "conv_weight_matrix",
]

#: Largest T whose FTP word fits a non-negative int64.
MAX_T = 63

_INT_DTYPES = (torch.int8, torch.int16, torch.int32, torch.int64, torch.uint8)


# --------------------------------------------------------------------------------------------
# validation (shared by the traffic models and workloads of golden.loas)


def check_spikes(spikes, name: str = "spikes", dims: int = 3) -> torch.Tensor:
    """Validate a binary spike tensor with ``dims`` dimensions; return it as int64."""
    x = torch.as_tensor(spikes)
    if x.dim() != dims:
        shape = "[T, M, K]" if dims == 3 else "[T, C, H, W]"
        raise ValueError(f"{name} must have shape {shape}, not {list(x.shape)}")
    if x.is_complex():
        raise ValueError(f"{name} must be binary (0/1), not complex")
    if x.dtype != torch.bool and x.numel() and not bool(((x == 0) | (x == 1)).all()):
        bad = x[(x != 0) & (x != 1)].flatten()[0].item()
        raise ValueError(f"{name} must be binary (values 0/1), found {bad!r}")
    if x.shape[0] > MAX_T:
        raise ValueError(f"{name} must have at most {MAX_T} time steps (T), not {x.shape[0]}")
    return x.to(torch.int64)


def check_weights(w, name: str = "weights") -> torch.Tensor:
    """Validate a ``[K, N]`` integer weight matrix in the signed 8-bit range; return int64."""
    w = torch.as_tensor(w)
    if w.dim() != 2:
        raise ValueError(f"{name} must have shape [K, N], not {list(w.shape)}")
    if w.dtype not in _INT_DTYPES:
        raise ValueError(f"{name} must be an integer tensor, not {w.dtype}")
    w = w.to(torch.int64)
    if w.numel() and (w.min() < -128 or w.max() > 127):
        raise ValueError(f"{name} must lie in the signed 8-bit range -128..127, "
                         f"found {w.min().item()}..{w.max().item()}")
    return w


def check_fiber(fiber) -> int:
    if isinstance(fiber, bool) or not isinstance(fiber, int) or fiber <= 0 or fiber % 8:
        raise ValueError(f"fiber must be a positive multiple of 8, not {fiber!r}")
    return fiber


def check_pair(x: torch.Tensor, w: torch.Tensor) -> None:
    if w.shape[0] != x.shape[2]:
        raise ValueError(f"weights must have K={x.shape[2]} rows to match the spikes, "
                         f"not {w.shape[0]}")


def check_strong(strong) -> bool:
    if not isinstance(strong, bool):
        raise ValueError(f"strong must be a bool, not {strong!r}")
    return strong


# --------------------------------------------------------------------------------------------
# FTP words and strong mode


def spike_words(spikes) -> torch.Tensor:
    """FTP word of every neuron: ``word[m, k] = sum_t x[t, m, k] << t`` (int64 ``[M, K]``)."""
    x = check_spikes(spikes)
    T = x.shape[0]
    shifts = torch.arange(T, dtype=torch.int64).view(T, 1, 1)
    return (x << shifts).sum(0)


def strong_mask(words) -> torch.Tensor:
    """Bool ``[M, K]``: True where ``popcount(word) == 1`` (silenced by LoAS-FT strong mode)."""
    wd = torch.as_tensor(words)
    if wd.dtype not in _INT_DTYPES:
        raise ValueError(f"words must be an integer tensor, not {wd.dtype}")
    wd = wd.to(torch.int64)
    if wd.numel() and wd.min() < 0:
        raise ValueError("words must be non-negative FTP words")
    # A power of two has exactly one set bit: w != 0 and w & (w - 1) == 0.
    return (wd != 0) & ((wd & (wd - 1)) == 0)


def apply_strong(spikes) -> torch.Tensor:
    """The spikes with every neuron that fires exactly once in T zeroed at all steps.

    Returns a tensor of the input's dtype (int64 for lists).
    """
    orig = torch.as_tensor(spikes)
    x = check_spikes(orig)
    single = x.sum(0) == 1
    return torch.where(single.unsqueeze(0), torch.zeros((), dtype=orig.dtype), orig)


# --------------------------------------------------------------------------------------------
# bitmask helpers


def _pack_bits(bits: torch.Tensor) -> list:
    """``bits [..., W]`` bool (W a multiple of 8) -> nested lists of Python ints, bit j = bits[..., j]."""
    lead = bits.shape[:-1]
    raw = np.packbits(bits.numpy().astype(np.uint8), axis=-1, bitorder="little")
    flat = raw.reshape(-1, raw.shape[-1])
    ints = [int.from_bytes(row.tobytes(), "little") for row in flat]
    if len(lead) == 0:
        return ints[0]
    out = ints
    for size in reversed(lead[1:]):
        out = [out[i:i + size] for i in range(0, len(out), size)]
    return out


def _unpack_bits(masks, width: int) -> torch.Tensor:
    """Inverse of :func:`_pack_bits` for a 2-D nested list: -> bool ``[A, B, width]``."""
    A = len(masks)
    B = len(masks[0]) if A else 0
    buf = b"".join(int(v).to_bytes(width // 8, "little") for row in masks for v in row)
    arr = np.unpackbits(np.frombuffer(buf, dtype=np.uint8), bitorder="little")
    return torch.from_numpy(arr.astype(bool)).view(A, B, width)


def pad_k(t: torch.Tensor, dim: int, fiber: int) -> torch.Tensor:
    """Zero-pad dimension ``dim`` up to a multiple of ``fiber`` (the last fiber's unused lanes)."""
    K = t.shape[dim]
    pad = -K % fiber
    if pad == 0:
        return t
    shape = list(t.shape)
    shape[dim] = pad
    return torch.cat([t, torch.zeros(shape, dtype=t.dtype)], dim=dim)


def prefix_popcount(mask: int, pos: int) -> int:
    """Number of set bits of ``mask`` strictly below bit ``pos`` (a prefix-sum unit's offset)."""
    if isinstance(mask, bool) or not isinstance(mask, int) or mask < 0:
        raise ValueError(f"mask must be a non-negative int, not {mask!r}")
    if isinstance(pos, bool) or not isinstance(pos, int) or pos < 0:
        raise ValueError(f"pos must be a non-negative int, not {pos!r}")
    return (mask & ((1 << pos) - 1)).bit_count()


# --------------------------------------------------------------------------------------------
# compressed operands


@dataclass
class PackedSpikes:
    """FTP-packed spike operand (fiber A of every TPPE).

    Attributes
    ----------
    T, M, K, fiber : int
    words : int64 ``[M, K]``
        Dense FTP words (after strong masking when requested).
    chunk_masks : list[list[int]]
        ``chunk_masks[m][c]`` bit ``j`` set iff neuron ``k = c * fiber + j`` of row ``m`` is
        non-silent; the last chunk's lanes beyond K are 0.
    packed : list[Tensor]
        Per row, the non-silent words in increasing ``k`` (int64).
    chunk_base : list[list[int]]
        ``chunk_base[m][c]`` index into ``packed[m]`` of chunk ``c``'s first word.
    """

    T: int
    M: int
    K: int
    fiber: int
    words: torch.Tensor
    chunk_masks: list
    packed: list
    chunk_base: list

    @property
    def n_chunks(self) -> int:
        """Number of fibers per row, ``ceil(K / fiber)``."""
        return -(-self.K // self.fiber)

    @property
    def nnz(self) -> int:
        """Total number of non-silent neurons."""
        return sum(len(p) for p in self.packed)

    @property
    def silent_fraction(self) -> float:
        """Fraction of the ``M * K`` neurons that are silent (0.0 for an empty operand)."""
        total = self.M * self.K
        return 1.0 - self.nnz / total if total else 0.0

    def fiber_of(self, m: int, c: int) -> tuple[int, torch.Tensor]:
        """``(bitmask, packed words)`` of fiber ``c`` of row ``m``."""
        mask = self.chunk_masks[m][c]
        base = self.chunk_base[m][c]
        return mask, self.packed[m][base:base + mask.bit_count()]

    def unpack(self) -> torch.Tensor:
        """Spikes ``[T, M, K]`` (uint8) rebuilt from the masks and packed words only."""
        C = self.n_chunks
        words = torch.zeros(self.M, C * self.fiber, dtype=torch.int64)
        if self.M and C:
            nz = _unpack_bits(self.chunk_masks, self.fiber).view(self.M, C * self.fiber)
            for m in range(self.M):
                words[m, nz[m]] = self.packed[m]
        words = words[:, :self.K]
        shifts = torch.arange(self.T, dtype=torch.int64).view(self.T, 1, 1)
        return ((words.unsqueeze(0) >> shifts) & 1).to(torch.uint8)


def pack_spikes(spikes, strong: bool = False, fiber: int = 128) -> PackedSpikes:
    """FTP-pack ``spikes [T, M, K]`` into fibers of ``fiber`` positions (strong mode optional)."""
    x = check_spikes(spikes)
    check_strong(strong)
    check_fiber(fiber)
    T, M, K = x.shape
    words = spike_words(x)
    if strong:
        words = torch.where(strong_mask(words), torch.zeros((), dtype=torch.int64), words)
    nz = words != 0
    C = -(-K // fiber)
    nz_c = pad_k(nz, 1, fiber).view(M, C, fiber)
    masks = _pack_bits(nz_c) if M and C else [[] for _ in range(M)]
    counts = nz_c.sum(-1)
    base = (counts.cumsum(1) - counts).tolist() if C else [[] for _ in range(M)]
    packed = [words[m][nz[m]] for m in range(M)]
    return PackedSpikes(T, M, K, fiber, words, masks, packed, base)


@dataclass
class CompressedWeights:
    """Bitmask-compressed weight operand (the B fibers, one per column and K chunk).

    Attributes
    ----------
    K, N, fiber : int
    chunk_masks : list[list[int]]
        ``chunk_masks[c][n]`` bit ``j`` set iff ``w[c * fiber + j, n] != 0``.
    values : list[Tensor]
        Per column ``n``, its nonzero weights in increasing ``k`` (int64).
    chunk_base : list[list[int]]
        ``chunk_base[c][n]`` index into ``values[n]`` of chunk ``c``'s first value.
    """

    K: int
    N: int
    fiber: int
    chunk_masks: list
    values: list
    chunk_base: list

    @property
    def n_chunks(self) -> int:
        return -(-self.K // self.fiber)

    @property
    def nnz(self) -> int:
        """Number of nonzero weights."""
        return sum(len(v) for v in self.values)

    @property
    def density(self) -> float:
        """Fraction of nonzero weights (0.0 for an empty matrix)."""
        total = self.K * self.N
        return self.nnz / total if total else 0.0

    def fiber_of(self, c: int, n: int) -> tuple[int, torch.Tensor]:
        """``(bitmask, packed values)`` of fiber ``c`` of column ``n``."""
        mask = self.chunk_masks[c][n]
        base = self.chunk_base[c][n]
        return mask, self.values[n][base:base + mask.bit_count()]

    def to_dense(self) -> torch.Tensor:
        """Weights ``[K, N]`` (int64) rebuilt from the masks and values only."""
        C = self.n_chunks
        w = torch.zeros(C * self.fiber, self.N, dtype=torch.int64)
        if self.N and C:
            nz = _unpack_bits(self.chunk_masks, self.fiber)          # [C, N, fiber]
            nz = nz.permute(0, 2, 1).reshape(C * self.fiber, self.N)
            for n in range(self.N):
                w[nz[:, n], n] = self.values[n]
        return w[:self.K]


def compress_weights(w, fiber: int = 128) -> CompressedWeights:
    """Bitmask-compress ``w [K, N]`` column by column in fibers of ``fiber`` positions."""
    w = check_weights(w)
    check_fiber(fiber)
    K, N = w.shape
    nz = w != 0
    C = -(-K // fiber)
    nz_c = pad_k(nz, 0, fiber).view(C, fiber, N).permute(0, 2, 1)   # [C, N, fiber]
    masks = _pack_bits(nz_c.contiguous()) if N and C else [[] for _ in range(C)]
    counts = nz_c.sum(-1)                                              # [C, N]
    base = (counts.cumsum(0) - counts).tolist() if N else [[] for _ in range(C)]
    values = [w[:, n][nz[:, n]] for n in range(N)]
    return CompressedWeights(K, N, fiber, masks, values, base)


# --------------------------------------------------------------------------------------------
# TPPE and the layer-level SpMSpM


def tppe_pair(a_mask: int, a_words_chunk, b_mask: int, b_values_chunk, T: int):
    """One TPPE fiber pair, exactly as the hardware walks it.

    For each set bit ``p`` of ``a_mask & b_mask`` in increasing order, the weight
    ``b_values_chunk[prefix_popcount(b_mask, p)]`` (fast prefix) is added to ``pseudo``, and for each
    ``t`` where bit ``t`` of the word ``a_words_chunk[prefix_popcount(a_mask, p)]`` (laggy prefix)
    is 0, to ``corr[t]``. ``O[t] = pseudo - corr[t]``.

    Returns
    -------
    pseudo : int
    corr : list[int] of length T
    matches : int, the number of matched positions (= cycles in the authors' model)
    """
    if isinstance(T, bool) or not isinstance(T, int) or not 1 <= T <= MAX_T:
        raise ValueError(f"T must be an integer in 1..{MAX_T}, not {T!r}")
    for name, mask in (("a_mask", a_mask), ("b_mask", b_mask)):
        if isinstance(mask, bool) or not isinstance(mask, int) or mask < 0:
            raise ValueError(f"{name} must be a non-negative int, not {mask!r}")
    a_words = [int(v) for v in torch.as_tensor(a_words_chunk, dtype=torch.int64).flatten()]
    b_vals = [int(v) for v in torch.as_tensor(b_values_chunk, dtype=torch.int64).flatten()]
    if len(a_words) != a_mask.bit_count():
        raise ValueError(f"a_words_chunk must hold popcount(a_mask)={a_mask.bit_count()} words, "
                         f"not {len(a_words)}")
    if len(b_vals) != b_mask.bit_count():
        raise ValueError(f"b_values_chunk must hold popcount(b_mask)={b_mask.bit_count()} values, "
                         f"not {len(b_vals)}")
    pseudo = 0
    corr = [0] * T
    matches = 0
    both = a_mask & b_mask
    while both:
        low = both & -both
        p = low.bit_length() - 1
        both ^= low
        weight = b_vals[prefix_popcount(b_mask, p)]
        s = a_words[prefix_popcount(a_mask, p)]
        pseudo += weight
        for t in range(T):
            if not (s >> t) & 1:
                corr[t] += weight
        matches += 1
    return pseudo, corr, matches


def _exact_matmul(a: torch.Tensor, b: torch.Tensor, bound: int) -> torch.Tensor:
    """Integer ``a @ b`` (int64) through a BLAS float matmul, exact because every partial sum is
    an integer of magnitude <= ``bound``: float32 represents them all when ``bound <= 2**24``."""
    dt = torch.float32 if bound <= (1 << 24) else torch.float64
    return (a.to(dt) @ b.to(dt)).round().to(torch.int64)


def spmspm_reference(spikes, w, strong: bool = False) -> torch.Tensor:
    """Dense ``O[t] = x[t] @ w`` (int64 ``[T, M, N]``), of the strong-masked spikes when ``strong``."""
    x = check_spikes(spikes)
    w = check_weights(w)
    check_pair(x, w)
    if check_strong(strong):
        x = apply_strong(x)
    T, M, K = x.shape
    return _exact_matmul(x.reshape(T * M, K), w, 128 * K).view(T, M, w.shape[1])


def spmspm(spikes, w, strong: bool = False, fiber: int = 128) -> torch.Tensor:
    """``O [T, M, N]`` (int64) computed the TPPE way, checked against the dense matmul.

    Per output ``(m, n)`` and fiber ``c``: ``pseudo += sum_{k in J} w[k, n]`` and
    ``corr[t] += sum_{k in J} w[k, n] * (1 - x[t, m, k])`` over the matched positions ``J``
    (non-silent neuron and nonzero weight), accumulated over the K fibers; ``O[t] = pseudo - corr[t]``.
    Raises ``AssertionError`` if that differs from ``x[t] @ w`` (strong-masked when ``strong``).
    """
    x = check_spikes(spikes)
    w = check_weights(w)
    check_pair(x, w)
    check_strong(strong)
    check_fiber(fiber)
    T, M, K = x.shape
    N = w.shape[1]
    words = spike_words(x)
    if strong:
        words = torch.where(strong_mask(words), torch.zeros((), dtype=torch.int64), words)
    nonsilent = (words != 0).to(torch.int64)                                  # [M, K]
    fired = (words.unsqueeze(0) >> torch.arange(T).view(T, 1, 1)) & 1         # [T, M, K]
    # Row 0 feeds the pseudo accumulator, rows 1..T the correction accumulators. The weight is a
    # factor of both, so a zero weight never contributes: only matched positions J count.
    lhs = torch.cat([nonsilent.unsqueeze(0), nonsilent.unsqueeze(0) * (1 - fired)])  # [T+1, M, K]
    C = -(-K // fiber)
    lhs = pad_k(lhs.view((T + 1) * M, K), 1, fiber).view((T + 1) * M, C, fiber).transpose(0, 1)
    rhs = pad_k(w, 0, fiber).view(C, fiber, N)
    per_chunk = _exact_matmul(lhs, rhs, 128 * fiber)                          # [C, (T+1)M, N]
    acc = per_chunk.sum(0).view(T + 1, M, N)
    out = acc[0].unsqueeze(0) - acc[1:]
    ref = spmspm_reference(x, w, strong=strong)
    if not torch.equal(out, ref):
        bad = (out != ref).nonzero()[0].tolist()
        raise AssertionError(f"pseudo - correction differs from x[t] @ w at [t, m, n] = {bad}")
    return out


def spmspm_tppe(spikes, w, strong: bool = False, fiber: int = 128) -> torch.Tensor:
    """``O [T, M, N]`` by running :func:`tppe_pair` over every (row, column, fiber): slow, literal
    (a scoreboard for small RTL tests). Equals :func:`spmspm`."""
    x = check_spikes(spikes)
    w = check_weights(w)
    check_pair(x, w)
    T, M, _ = x.shape
    N = w.shape[1]
    a = pack_spikes(x, strong=strong, fiber=fiber)
    b = compress_weights(w, fiber=fiber)
    out = torch.zeros(T, M, N, dtype=torch.int64)
    for m in range(M):
        for n in range(N):
            pseudo, corr = 0, [0] * T
            for c in range(a.n_chunks):
                am, aw = a.fiber_of(m, c)
                bm, bv = b.fiber_of(c, n)
                p, cr, _ = tppe_pair(am, aw, bm, bv, T)
                pseudo += p
                corr = [u + v for u, v in zip(corr, cr)]
            out[:, m, n] = torch.tensor([pseudo - c_t for c_t in corr])
    return out


# --------------------------------------------------------------------------------------------
# work counts


def match_count(spikes, w, strong: bool = False) -> int:
    """Number of ``(m, k, n)`` with a non-silent neuron (after strong masking) and ``w[k, n] != 0``
    -- the effectual work of LoAS, ``sum_m sum_n |J|``."""
    x = check_spikes(spikes)
    w = check_weights(w)
    check_pair(x, w)
    if check_strong(strong):
        x = apply_strong(x)
    nonsilent_per_k = (x.sum(0) != 0).sum(0)                 # [K]
    nnz_per_k = (w != 0).sum(1)                              # [K]
    return int((nonsilent_per_k * nnz_per_k).sum())


def match_count_sequential(spikes, w) -> int:
    """``sum_t sum_m sum_n #{k : x[t, m, k] = 1 and w[k, n] != 0}`` -- the effectual work of a
    design that processes the time steps one after another (SparTen-S and friends)."""
    x = check_spikes(spikes)
    w = check_weights(w)
    check_pair(x, w)
    return int((x.sum((0, 1)) * (w != 0).sum(1)).sum())


# --------------------------------------------------------------------------------------------
# a whole layer


def partial_sums(spikes, w, *, strong: bool = False, fiber: int = 128,
                 acc_width: int | None = None, k_block: int | None = None):
    """The currents ``O [T, M, N]`` the core hands to the LIF, with its partial-sum saturation.

    A layer whose K exceeds the core's buffers runs in blocks of ``k_block`` positions; after each
    block the running sum ``acc + spmspm(block)`` is saturated to the signed ``acc_width`` bits the
    core carries between blocks (and hands to the LIF). ``acc_width=None``: exact, no saturation.

    Returns ``(O, saturations)``: the currents and the number of ``(block, m, n)`` at which some
    step was clamped -- what the core's ``saturations`` counter counts.
    """
    x = check_spikes(spikes)
    w = check_weights(w)
    check_pair(x, w)
    if check_strong(strong):
        x = apply_strong(x)
    T, M, K = x.shape
    if acc_width is None:
        return spmspm(x, w, fiber=fiber), 0
    if isinstance(acc_width, bool) or not isinstance(acc_width, int) or acc_width < 2:
        raise ValueError(f"acc_width must be an integer >= 2 or None, not {acc_width!r}")
    kb = K if k_block is None else k_block
    if isinstance(kb, bool) or not isinstance(kb, int) or kb < 1:
        raise ValueError(f"k_block must be a positive integer or None, not {k_block!r}")
    lo, hi = -(1 << (acc_width - 1)), (1 << (acc_width - 1)) - 1
    acc = torch.zeros(T, M, w.shape[1], dtype=torch.int64)
    saturations = 0
    for k0 in range(0, K, kb):
        total = acc + spmspm(x[:, :, k0:k0 + kb], w[k0:k0 + kb], fiber=fiber)
        acc = total.clamp(lo, hi)
        saturations += int((acc != total).any(0).sum())
    return acc, saturations


def neurons(currents, lif: LIFParams, tmask: int | None = None):
    """The integer LIF of every output neuron ``(m, n)`` over its currents ``currents[:, m, n]``.

    Returns ``(out_spikes uint8 [T, M, N], membrane int64 [M, N])``.
    """
    if not isinstance(lif, LIFParams):
        raise ValueError(f"lif must be a LIFParams, not {type(lif).__name__}")
    O = torch.as_tensor(currents)
    if O.dim() != 3 or O.shape[0] != lif.T:
        raise ValueError(f"currents must have shape [T={lif.T}, M, N], not {list(O.shape)}")
    T, M, N = O.shape
    s, V, _ = lif_integer(O.permute(1, 2, 0).reshape(M * N, T), lif, tmask)
    return s.view(M, N, T).permute(2, 0, 1).contiguous(), V.view(M, N)


def layer(spikes, w, lif: LIFParams, tmask: int | None = None, strong: bool = False, *,
          acc_width: int | None = None, k_block: int | None = None, fiber: int = 128):
    """SpMSpM followed by the integer LIF of :mod:`snnforge.golden.common.lif`.

    Each output neuron ``(m, n)`` receives the currents ``O[:, m, n]`` of :func:`partial_sums`
    (exact unless ``acc_width`` is given; the core's ``out_width`` and K block reproduce its
    saturation). ``lif.in_width`` must hold them (``lif_integer`` raises otherwise).

    Returns
    -------
    out_spikes : uint8 ``[T, M, N]``
    membrane : int64 ``[M, N]``, after the last step
    """
    if not isinstance(lif, LIFParams):
        raise ValueError(f"lif must be a LIFParams, not {type(lif).__name__}")
    x = check_spikes(spikes)
    if lif.T != x.shape[0]:
        raise ValueError(f"lif.T must equal the spikes' T={x.shape[0]}, not {lif.T}")
    O, _ = partial_sums(x, w, strong=strong, fiber=fiber, acc_width=acc_width, k_block=k_block)
    return neurons(O, lif, tmask)


# --------------------------------------------------------------------------------------------
# convolution lowering


def _pair(value, name: str, minimum: int) -> tuple[int, int]:
    v = (value, value) if isinstance(value, int) and not isinstance(value, bool) else tuple(value) \
        if isinstance(value, (tuple, list)) else None
    if v is None or len(v) != 2 or any(isinstance(e, bool) or not isinstance(e, int) or e < minimum
                                       for e in v):
        raise ValueError(f"{name} must be an int >= {minimum} or a pair of them, not {value!r}")
    return v


def im2col(x, kernel_size, stride=1, padding=0) -> torch.Tensor:
    """Lower spikes ``x [T, C, H, W]`` to the matmul operand ``[T, M, K]``.

    ``M = H_out * W_out`` (row-major output pixels), ``K = C * kh * kw`` ordered channel, then kernel
    row, then kernel column -- the order of :func:`conv_weight_matrix`. The result has ``x``'s dtype.
    """
    orig = torch.as_tensor(x)
    xs = check_spikes(orig, name="x", dims=4)
    kh, kw = _pair(kernel_size, "kernel_size", 1)
    sh, sw = _pair(stride, "stride", 1)
    ph, pw = _pair(padding, "padding", 0)
    T, C, H, W = xs.shape
    if H + 2 * ph < kh or W + 2 * pw < kw:
        raise ValueError(f"kernel_size {(kh, kw)} exceeds the padded input {(H + 2 * ph, W + 2 * pw)}")
    cols = F.unfold(xs.to(torch.float32), (kh, kw), stride=(sh, sw), padding=(ph, pw))  # [T, K, M]
    return cols.transpose(1, 2).round().to(orig.dtype).contiguous()


def conv_weight_matrix(weight) -> torch.Tensor:
    """Conv weights ``[C_out, C_in, kh, kw]`` as the matmul operand ``[K = C_in*kh*kw, N = C_out]``."""
    wt = torch.as_tensor(weight)
    if wt.dim() != 4:
        raise ValueError(f"weight must have shape [C_out, C_in, kh, kw], not {list(wt.shape)}")
    return wt.reshape(wt.shape[0], -1).t().contiguous()
