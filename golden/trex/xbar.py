"""The crossbar tile's bit-exact digital twin (what :class:`snnforge.hw.trex.xbar.CrossbarTile`
computes), in integers with ``torch``.

One matrix-vector product ``y = x @ w`` of a tile (:class:`~.params.XbarParams`, whose docstring
states every format and rounding rule):

1. ``w [R, n]`` (``R <= rows``, ``n <= n_out``) is stored as cell levels
   (:func:`xbar_cells`): differential pairs of magnitudes, ``slices`` cells of ``cell_bits``
   each, rows beyond ``R`` and columns beyond ``n`` zero.
2. The input is applied plane by plane (:func:`input_planes`): the ``in_bits`` bit planes of
   ``x``, most significant (the sign, weight ``-2^(in_bits-1)``) first -- or, in spiking mode,
   one binary plane per time step.
3. Each plane gives every physical column the sum ``I`` of its cells on the rows whose input bit
   is set (:func:`column_sums`), which the shared ADC converts (:func:`adc`).
4. Shift-and-add: ``P = sum(plane weight * code)`` per physical column, then per logical column
   ``y = (sum_j 2^(cell_bits j) (P+_j - P-_j)) << shift`` (:func:`shift_add`).

:func:`xbar_mvm` runs it for a batch and counts the crossbar reads and ADC conversions the tile
performs; :func:`xbar_spiking` adds the shared integer LIF on the columns' per-step results.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..common.lif import LIFParams, lif_integer
from .params import XbarParams, adc_code_max, cell_levels

__all__ = ["xbar_cells", "input_planes", "column_sums", "adc", "shift_add", "xbar_mvm",
           "xbar_spiking", "XbarResult", "check_weights", "calibrate_shift", "NonIdeal",
           "analog_column_levels", "analog_adc", "column_ladder_currents"]


def check_weights(w, p: XbarParams) -> torch.Tensor:
    """``w`` as an int64 tensor ``[R, n]`` with ``R <= rows`` (any ``n``: a matrix wider than
    the tile's ``n_out`` logical columns takes several loads of the tile, one per block of
    columns) within ``+-w_max``; :class:`ValueError` otherwise."""
    w = torch.as_tensor(w, dtype=torch.int64)
    if w.dim() != 2:
        raise ValueError(f"w must have shape [R, n], not {list(w.shape)}")
    R, n = w.shape
    if not (1 <= R <= p.rows and n >= 1):
        raise ValueError(f"w of shape {[R, n]} does not fit a tile of {p.rows} rows")
    if w.numel() and int(w.abs().max()) > p.w_max:
        raise ValueError(f"weights must lie within -{p.w_max}..{p.w_max} (w_bits={p.w_bits})")
    return w


def xbar_cells(w, p: XbarParams) -> torch.Tensor:
    """Cell levels ``[rows, cols]`` of ``w [R, n]`` (``n <= n_out``): logical column ``n``,
    slice ``j``, polarity ``pol`` is physical column ``n * group + 2 j + pol``."""
    w = check_weights(w, p)
    if w.shape[1] > p.n_out:
        raise ValueError(f"w has {w.shape[1]} columns; a tile holds {p.n_out}")
    return torch.from_numpy(cell_levels(w.numpy(), p))


def input_planes(x, in_bits: int) -> tuple[torch.Tensor, list[int]]:
    """The bit planes ``[in_bits, ..., R]`` of signed ``in_bits``-bit inputs, most significant
    first, and each plane's weight (``-2^(in_bits-1)``, then ``2^(in_bits-2) .. 1``)."""
    x = torch.as_tensor(x, dtype=torch.int64)
    bits = [(x >> k) & 1 for k in range(in_bits - 1, -1, -1)]
    weights = [-(1 << (in_bits - 1))] + [1 << k for k in range(in_bits - 2, -1, -1)]
    return torch.stack(bits), weights


def column_sums(plane, cells: torch.Tensor) -> torch.Tensor:
    """``I [..., cols]``: per physical column, the sum of its cells on the rows whose input bit
    is set (``plane [..., R]``, ``R <= rows``)."""
    plane = torch.as_tensor(plane, dtype=torch.int64)
    return plane @ cells[:plane.shape[-1]]


def adc(I: torch.Tensor, adc_bits: int, shift: int) -> torch.Tensor:
    """The shared ADC: ``min((I + 2^(shift-1)) >> shift, 2^adc_bits - 1)`` (round half up; a sum
    above full scale clips; no offset for ``shift = 0``)."""
    half = (1 << shift) >> 1
    return ((I + half) >> shift).clamp(max=adc_code_max(adc_bits))


@dataclass(frozen=True)
class NonIdeal:
    """The float analog front end of the accuracy studies (off in bit-exact mode): it replaces
    the exact column sums by what the array's currents give, and the ADC codes that follow feed
    the same digital shift-and-add.

    * Cells: level ``l`` is the conductance ``G_off + l / cell_max * (G_on - G_off)`` with
      ``G_on = 1 / r_on`` and ``G_off = G_on / on_off`` (finite on/off ratio; ``on_off = inf``:
      an off cell conducts nothing); each cell's conductance varies by ``G * (1 + N(0,
      sigma))``, drawn once per weight load from ``seed`` (programming variation).
    * A set input bit drives its row at ``v_read``; an unset one at 0 V.
    * IR drop (``r_wire`` ohms per column segment between two rows, 0: none): each column is a
      resistor ladder into the sense amplifier at its bottom (virtual ground) -- the cell of row
      ``i`` feeds node ``i``, node ``i`` connects to node ``i + 1`` (the last to the amplifier)
      through ``r_wire``: a tridiagonal system solved per column and read (SpikeSim's column
      model; row wires ideal).
    * The sensed current in units of one level's ideal current ``v_read * (G_on - G_off) /
      cell_max`` is the column's level sum: ``adc`` rounds it half up after the shift and
      clips; the off-current offset is common to a differential pair and cancels in the
      digital subtraction up to rounding and clipping.

    Defaults: NeuroSim's R_on 6 kOhm, on/off 150, 0.5 V read (``../shared/papers/trex.md``).
    """

    sigma: float = 0.0
    on_off: float = 150.0
    r_wire: float = 0.0
    r_on: float = 6e3
    v_read: float = 0.5
    seed: int = 0

    def conductances(self, cells: torch.Tensor, cell_max: int) -> torch.Tensor:
        g_on = 1.0 / self.r_on
        g_off = g_on / self.on_off
        G = g_off + cells.double() / cell_max * (g_on - g_off)
        if self.sigma:
            noise = torch.randn(G.shape, generator=torch.Generator().manual_seed(self.seed),
                                dtype=torch.float64)
            G = G * (1 + self.sigma * noise)
        return G.clamp(min=0)

    def unit_current(self, cell_max: int) -> float:
        g_on = 1.0 / self.r_on
        return self.v_read * (g_on - g_on / self.on_off) / cell_max


def column_ladder_currents(V: torch.Tensor, G: torch.Tensor, r_wire: float) -> torch.Tensor:
    """Currents into the sense amplifiers: rows driven at ``V [..., rows]`` through ``G [rows,
    cols]`` onto column ladders of ``r_wire`` per segment -> ``[..., cols]`` (Thomas
    algorithm, vectorised over everything but the rows)."""
    gw = 1.0 / r_wire
    rows = G.shape[0]
    # KCL at node i: -gw v[i-1] + (G[i] + gw (1 + [i > 0])) v[i] - gw v[i+1] = G[i] V[i]
    rhs = V.unsqueeze(-1) * G                               # [..., rows, cols]
    diag = G + gw * torch.cat([torch.ones(1, dtype=G.dtype), 2 * torch.ones(rows - 1,
                                                                              dtype=G.dtype)]
                              ).unsqueeze(-1)
    c_prime = torch.zeros_like(G)
    d_prime = torch.zeros_like(rhs)
    c_prime[0] = -gw / diag[0]
    d_prime[..., 0, :] = rhs[..., 0, :] / diag[0]
    for i in range(1, rows):
        denom = diag[i] + gw * c_prime[i - 1]
        c_prime[i] = -gw / denom
        d_prime[..., i, :] = (rhs[..., i, :] + gw * d_prime[..., i - 1, :]) / denom
    v_last = d_prime[..., rows - 1, :]                      # back substitution's first value
    return gw * v_last


def analog_column_levels(plane, cells: torch.Tensor, p: XbarParams,
                         analog: NonIdeal) -> torch.Tensor:
    """The column sums as the array senses them (float, in level units): ``plane [..., R]``
    applied to the cells through ``analog``'s non-idealities."""
    plane = torch.as_tensor(plane, dtype=torch.float64)
    G = analog.conductances(cells, p.cell_max)
    V = torch.zeros(*plane.shape[:-1], p.rows, dtype=torch.float64)
    V[..., :plane.shape[-1]] = plane * analog.v_read
    if analog.r_wire:
        current = column_ladder_currents(V, G, analog.r_wire)
    else:
        current = V @ G
    return current / analog.unit_current(p.cell_max)


def analog_adc(levels: torch.Tensor, adc_bits: int, shift: int) -> torch.Tensor:
    """The ADC on a sensed (float) level sum: round half up after the shift, clip to the
    codes; equal to :func:`adc` on integer sums."""
    codes = torch.floor(levels / (1 << shift) + 0.5).clamp(0, adc_code_max(adc_bits))
    return codes.to(torch.int64)


def shift_add(P: torch.Tensor, p: XbarParams, n: int, shift: int) -> torch.Tensor:
    """Logical columns ``[..., n]`` from the physical columns' plane sums ``P [..., cols]``."""
    y = torch.zeros(*P.shape[:-1], n, dtype=torch.int64)
    base = torch.arange(n) * p.group
    for j in range(p.slices):
        y += (P[..., base + 2 * j] - P[..., base + 2 * j + 1]) << (p.cell_bits * j)
    return y << shift


@dataclass
class XbarResult:
    """Outputs of :func:`xbar_mvm` / :func:`xbar_spiking` and the tile's work."""
    y: torch.Tensor                 # [B, n] (spiking: [T, B, n])
    reads: int                      # crossbar reads: input planes applied to the array
    conversions: int                # ADC conversions (every physical column of every read)
    spikes: torch.Tensor | None = None      # spiking: [T, B, n]
    codes: list | None = None       # per column block, the ADC codes [planes, B, cols]


def _settings(p: XbarParams, in_bits, adc_bits, adc_shift):
    in_bits = p.in_bits if in_bits is None else in_bits
    adc_bits = p.adc_bits if adc_bits is None else adc_bits
    shift = p.shift if adc_shift is None else adc_shift
    for name, value, lo, hi in (("in_bits", in_bits, 2, p.in_bits),
                                ("adc_bits", adc_bits, 1, p.adc_bits),
                                ("adc_shift", shift, 0, p.max_shift)):
        if not lo <= value <= hi:
            raise ValueError(f"{name} must lie within {lo}..{hi}, not {value}")
    return in_bits, adc_bits, shift


def xbar_mvm(x, w, p: XbarParams, *, in_bits: int | None = None, adc_bits: int | None = None,
             adc_shift: int | None = None, spiking: bool = False,
             analog: NonIdeal | None = None, codes: list | None = None) -> XbarResult:
    """``y = x @ w`` as the tile computes it.

    ``w [R, n]``: ``R <= rows``; ``n`` beyond the tile's ``n_out`` columns takes one load of
    the tile per block of ``n_out`` columns (each block read by every vector). ``x [B, R]``:
    signed ``in_bits``-bit integers applied bit-serially, or with ``spiking``
    binary spikes ``[T, B, R]``, one read per step. ``in_bits``, ``adc_bits`` (the resolution
    used, at most the tile's) and ``adc_shift`` default to the tile's; ``y`` is ``[B, n]``
    (``[T, B, n]``). With ``adc_shift = 0`` and an ADC whose codes cover ``rows * cell_max``,
    ``y == x @ w`` exactly. ``analog``: the float non-ideal front end (:class:`NonIdeal`) makes
    the ADC codes instead of the exact column sums (accuracy studies); ``codes`` (one
    ``[planes, B, cols]`` tensor per column block, :attr:`XbarResult.codes` of another call)
    replaces the ADCs' codes -- what the RTL's code input takes.
    """
    in_bits, adc_bits, shift = _settings(p, in_bits, adc_bits, adc_shift)
    w = check_weights(w, p)
    x = torch.as_tensor(x, dtype=torch.int64)
    if x.dim() != (3 if spiking else 2) or x.shape[-1] != w.shape[0]:
        raise ValueError(f"x must have shape [{'T, ' if spiking else ''}B, {w.shape[0]}], not "
                         f"{list(x.shape)}")
    if spiking:
        if x.numel() and not bool(((x == 0) | (x == 1)).all()):
            raise ValueError("spiking inputs must be binary")
        planes, weights = x.unsqueeze(0), [1]
    else:
        lo, hi = -(1 << (in_bits - 1)), (1 << (in_bits - 1)) - 1
        if x.numel() and (int(x.min()) < lo or int(x.max()) > hi):
            raise ValueError(f"x must lie within {lo}..{hi} (in_bits={in_bits})")
        planes, weights = input_planes(x, in_bits)
    vectors = planes[0].numel() // max(1, planes.shape[-1])
    ys, all_codes = [], []
    for b, k in enumerate(range(0, w.shape[1], p.n_out)):   # a load of the tile per block
        block = w[:, k:k + p.n_out]
        cells = xbar_cells(block, p)
        if codes is not None:
            block_codes = torch.as_tensor(codes[b], dtype=torch.int64)
        elif analog is None:
            block_codes = adc(column_sums(planes, cells), adc_bits, shift)
        else:       # every block is another weight load: its own draw of the variation
            load = NonIdeal(**{**analog.__dict__, "seed": analog.seed + k})
            block_codes = analog_adc(analog_column_levels(planes, cells, p, load), adc_bits,
                                     shift)
        all_codes.append(block_codes)
        P = sum(weight * code for weight, code in zip(weights, block_codes))
        ys.append(shift_add(P, p, block.shape[1], shift))
    reads = vectors * len(weights) * len(ys)
    return XbarResult(torch.cat(ys, -1), reads, reads * p.cols, codes=all_codes)


def calibrate_shift(x, w, p: XbarParams, adc_bits: int, *, in_bits: int | None = None,
                    spiking: bool = False) -> int:
    """The ADC calibration a user makes on sample inputs: the smallest shift whose full scale
    ``(2^adc_bits - 1) << shift`` covers the largest column sum that ``x`` (``[B, R]``, or
    spikes ``[T, B, R]``) gives on ``w``'s cells."""
    w = check_weights(w, p)
    x = torch.as_tensor(x, dtype=torch.int64)
    planes = x.unsqueeze(0) if spiking else input_planes(x, in_bits or p.in_bits)[0]
    top = max(int(column_sums(planes, xbar_cells(w[:, k:k + p.n_out], p)).max())
              for k in range(0, w.shape[1], p.n_out))
    shift = 0
    while adc_code_max(adc_bits) << shift < top and shift < p.max_shift:
        shift += 1
    return shift


def xbar_spiking(x, w, p: XbarParams, lif: LIFParams, *, tmask: int | None = None,
                 adc_bits: int | None = None, adc_shift: int | None = None) -> XbarResult:
    """Spiking mode: each step's column results (``xbar_mvm(..., spiking=True)``) are the
    currents of the shared integer LIF (``lif_integer``, ``lif.T`` steps, one neuron per batch
    row and logical column); ``spikes [T, B, n]``."""
    out = xbar_mvm(x, w, p, adc_bits=adc_bits, adc_shift=adc_shift, spiking=True)
    T, B, n = out.y.shape
    if T != lif.T:
        raise ValueError(f"x has {T} time steps; the LIF takes T={lif.T}")
    spikes, _, _ = lif_integer(out.y.permute(1, 2, 0).reshape(B * n, T), lif, tmask)
    out.spikes = spikes.reshape(B, n, T).permute(2, 0, 1).contiguous()
    return out
