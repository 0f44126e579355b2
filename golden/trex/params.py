"""Parameters of the crossbar tile (:class:`XbarParams`) and the integer facts derived from them;
the attention unit's (:class:`AttentionParams`, its exp2 table and score scale).

What the hardware and the golden model agree on, without torch:

* **Weights** are signed ``w_bits``-bit integers in the symmetric range ``-(2^(w_bits-1) - 1) ..
  2^(w_bits-1) - 1`` (the most negative code has no positive twin: it is rejected). Each is stored
  as a **differential pair** of magnitudes -- ``w+ = max(w, 0)`` and ``w- = max(-w, 0)`` -- each
  sliced into ``slices = ceil((w_bits - 1) / cell_bits)`` cells of ``cell_bits`` bits, lowest
  slice first. Logical output column ``n``, slice ``j``, polarity ``pol`` (0: w+, 1: w-) is
  physical column ``n * group + 2 j + pol`` with ``group = 2 * slices``; ``n_out = cols // group``
  logical columns fit a tile, the physical columns beyond ``n_out * group`` hold zeros.
* **ADCs**: ``n_adc = cols / cols_per_adc``; ADC ``a`` converts physical columns ``a, a + n_adc,
  a + 2 n_adc, ...`` -- in conversion round ``c`` the ``n_adc`` adjacent columns ``c * n_adc ..
  c * n_adc + n_adc - 1``. An ADC reads a column sum ``I`` (the sum over rows of input bit times
  cell value, ``0 .. rows * (2^cell_bits - 1)``) as ``code = min((I + 2^(s-1)) >> s, 2^adc_bits - 1)``
  (``2^(s-1)`` read as 0 for ``s = 0``): its LSB is ``2^s`` column units (``s = adc_shift``, the
  reference setting), its full scale ``(2^adc_bits - 1) * 2^s``, a larger sum clips.
* **Inputs**: ``in_bits``-bit two's complement, applied bit-serially MSB first (plane weight
  ``-2^(in_bits-1)`` for the sign bit, ``2^k`` for bit ``k``); in spiking mode one binary plane
  per time step (weight 1).
* **Shift-and-add**: per physical column ``P = sum over planes of weight * code`` (Horner, MSB
  first), per logical column ``y = (sum_j 2^(cell_bits j) (P+_j - P-_j)) << s``. With an ADC that
  never clips or rounds (``s = 0`` and ``2^adc_bits - 1 >= rows * (2^cell_bits - 1)``) ``y`` is the
  integer matmul exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ...params import Config, param

__all__ = ["XbarParams", "LN_K", "LN_F", "LN_G", "auto_shift", "adc_code_max", "column_sum_max",
           "cell_levels", "round_words", "AttentionParams", "exp2_lut", "score_scale"]


def column_sum_max(rows: int, cell_bits: int) -> int:
    """The largest column sum: every row's input bit set, every cell at its top level."""
    return rows * ((1 << cell_bits) - 1)


def adc_code_max(adc_bits: int) -> int:
    return (1 << adc_bits) - 1


def auto_shift(rows: int, cell_bits: int, adc_bits: int) -> int:
    """The smallest ADC shift whose full scale covers every column sum (no clipping)."""
    top, s = column_sum_max(rows, cell_bits), 0
    while adc_code_max(adc_bits) << s < top:
        s += 1
    return s


def _max_shift(c) -> int:
    return column_sum_max(c.rows, c.cell_bits).bit_length()


@dataclass(frozen=True)
class XbarParams(Config):
    """One crossbar tile: array, cells, weight and input precision, ADCs (module docstring)."""

    rows: int = param(128, "crossbar rows (inputs of one matrix-vector product)", lo=1, hi=1024)
    cols: int = param(128, "physical crossbar columns", lo=2, hi=1024)
    cell_bits: int = param(1, "bits stored per cell", lo=1, hi=4)
    w_bits: int = param(8, "signed weight width (differential pairs: +-(2^(w_bits-1) - 1))",
                        lo=2, hi=16,
                        check=lambda c, v: 2 * -(-(v - 1) // c.cell_bits) <= c.cols,
                        what=lambda c: "a width whose differential slices fit the columns "
                                       f"(2 * ceil((w_bits - 1) / {c.cell_bits}) <= {c.cols})")
    in_bits: int = param(8, "signed input width, applied bit-serially", lo=2, hi=16)
    cols_per_adc: int = param(8, "columns sharing one ADC (conversion rounds per input bit)",
                              lo=1, hi=1024, check=lambda c, v: c.cols % v == 0,
                              what=lambda c: f"a divisor of cols={c.cols}")
    adc_bits: int = param(6, "ADC resolution (bits)", lo=1, hi=16)
    adc_shift: int = param(-1, "reset value of the ADC's LSB as a shift s (LSB 2^s column "
                           "units); -1: the smallest s whose full scale covers every column sum",
                           lo=-1, hi=12, check=lambda c, v: v <= _max_shift(c),
                           what=lambda c: f"an integer in -1..{_max_shift(c)}")

    @property
    def tile(self) -> "XbarParams":
        """The tile's parameters alone (of a configuration that adds others)."""
        return XbarParams(**{p.name: getattr(self, p.name) for p in XbarParams.params()})

    # -- the array ------------------------------------------------------------------------------
    @property
    def slices(self) -> int:
        """Cells per weight magnitude."""
        return -(-(self.w_bits - 1) // self.cell_bits)

    @property
    def group(self) -> int:
        """Physical columns per logical column (the differential pairs of every slice)."""
        return 2 * self.slices

    @property
    def n_out(self) -> int:
        """Logical output columns of one tile."""
        return self.cols // self.group

    @property
    def n_adc(self) -> int:
        return self.cols // self.cols_per_adc

    @property
    def w_max(self) -> int:
        return (1 << (self.w_bits - 1)) - 1

    @property
    def cell_max(self) -> int:
        return (1 << self.cell_bits) - 1

    # -- the ADC -------------------------------------------------------------------------------
    @property
    def shift(self) -> int:
        """The ADC shift at reset (``adc_shift``, or the covering one for -1)."""
        return auto_shift(self.rows, self.cell_bits, self.adc_bits) if self.adc_shift < 0 \
            else self.adc_shift

    @property
    def max_shift(self) -> int:
        return _max_shift(self)

    @property
    def sum_bits(self) -> int:
        """Width of a column sum."""
        return column_sum_max(self.rows, self.cell_bits).bit_length()

    @property
    def code_bits(self) -> int:
        """Width of an ADC code (the ADC's bits, or fewer if no column sum needs them)."""
        return min(self.adc_bits, self.sum_bits)

    def code_max(self, shift: int) -> int:
        """The largest code at ADC shift ``shift``."""
        top = column_sum_max(self.rows, self.cell_bits)
        half = (1 << shift) >> 1
        return min(adc_code_max(self.adc_bits), (top + half) >> shift)

    # -- shift-and-add widths --------------------------------------------------------------------
    def column_bits(self, planes_signed: bool) -> int:
        """Width of a physical column's shift-and-add value ``P`` (signed): bit-serial inputs
        reach ``-2^(in_bits-1) .. (2^(in_bits-1) - 1)`` times the largest code, spikes ``0 ..``
        the largest code."""
        top = max(self.code_max(s) for s in range(self.max_shift + 1))
        bound = (1 << (self.in_bits - 1)) * top if planes_signed else top
        return bound.bit_length() + 1

    def y_bits(self, planes_signed: bool) -> int:
        """Width of a logical column's result (signed), at any ADC shift."""
        bound = 0
        for s in range(self.max_shift + 1):
            # P+ - P- of one slice: the difference of two columns' values
            per_column = ((1 << self.in_bits) if planes_signed else 1) * self.code_max(s)
            slices = sum(1 << (self.cell_bits * j) for j in range(self.slices))
            bound = max(bound, (per_column * slices) << s)
        return bound.bit_length() + 1

    @property
    def planes(self) -> int:
        """Input bit planes of one bit-serial matrix-vector product."""
        return self.in_bits

    def rounds(self, spiking: bool) -> int:
        """Conversion rounds of one matrix-vector product (one spike step): the analytic bound
        ``planes * cols_per_adc``."""
        return (1 if spiking else self.in_bits) * self.cols_per_adc


def cell_levels(w, p: XbarParams) -> np.ndarray:
    """Cell levels ``[rows, cols]`` of the weights ``w [R, n]`` (``R <= rows``, ``n <= n_out``,
    within ``+-w_max``; the caller checks): logical column ``n``, slice ``j``, polarity ``pol``
    is physical column ``n * group + 2 j + pol``; rows and columns beyond ``w`` hold 0."""
    w = np.asarray(w, dtype=np.int64)
    R, n = w.shape
    cells = np.zeros((p.rows, p.cols), dtype=np.int64)
    for pol, mag in enumerate((np.maximum(w, 0), np.maximum(-w, 0))):
        for j in range(p.slices):
            cells[:R, np.arange(n) * p.group + 2 * j + pol] = (mag >> (p.cell_bits * j)) \
                & p.cell_max
    return cells


def round_words(cells: np.ndarray, p: XbarParams) -> list[int]:
    """The tile's memory words, one per conversion round ``c``: ADC ``a``'s column ``c * n_adc
    + a``, row ``r``, at bits ``(a * rows + r) * cell_bits``."""
    words = []
    for c in range(p.cols_per_adc):
        block = cells[:, c * p.n_adc:(c + 1) * p.n_adc].T.reshape(-1)     # [a][r]
        bits = ((block[:, None] >> np.arange(p.cell_bits)) & 1).astype(np.uint8).reshape(-1)
        words.append(int.from_bytes(np.packbits(bits, bitorder="little").tobytes(), "little"))
    return words


# -- the integer LayerNorm (golden.trex.vit_int states it; torch-free for the hardware) ----------

#: Fraction bits of its reciprocal ``2^K // sigma``, normalized value and gain.
LN_K, LN_F, LN_G = 32, 12, 8


# -- the attention unit (golden.trex.attention states its integer semantics) --------------

@dataclass(frozen=True)
class AttentionParams(Config):
    """One head's integer attention: sizes, the softmax's precisions and the registers'
    reset values."""

    max_tokens: int = param(16, "tokens per head, at most", lo=1, hi=256)
    d_head: int = param(8, "dimensions per head", lo=1, hi=64)
    frac_bits: int = param(4, "fraction bits F of the base-2 exponent", lo=0, hi=8)
    lut_bits: int = param(8, "bits P of the exp2 table's entries (2^P = 1)", lo=2, hi=14)
    prob_bits: int = param(8, "bits A of a probability (2^A = 1)", lo=2, hi=12)
    score_mult: int = param(1, "reset value of score_mult (u = s * score_mult >> score_shift)",
                            lo=0, hi=65535)
    score_shift: int = param(0, "reset value of score_shift", lo=0, hi=31)
    out_shift: int = param(-1, "reset value of out_shift (-1: prob_bits)", lo=-1, hi=31)

    @property
    def token_bits(self) -> int:
        """``L``: bits of the largest token count."""
        return max(1, self.max_tokens.bit_length())

    @property
    def recip_bits(self) -> int:
        """``R = P + A + L``."""
        return self.lut_bits + self.prob_bits + self.token_bits

    @property
    def shift_out(self) -> int:
        return self.prob_bits if self.out_shift < 0 else self.out_shift

    @property
    def score_bits(self) -> int:
        """Width of a score ``s`` (signed)."""
        return (self.d_head * 128 * 128).bit_length() + 1

    @property
    def sum_bits(self) -> int:
        """Width of a row's ``sum_j e``."""
        return (self.max_tokens << self.lut_bits).bit_length()


def score_scale(p: AttentionParams, scale: float, *, shift: int = 16) -> tuple[int, int]:
    """``(score_mult, score_shift)`` for a float score scale (``softmax(s * scale)``): the
    base-2 domain's ``scale * log2(e) * 2^F`` as a 16-bit fraction."""
    factor = scale * math.log2(math.e) * (1 << p.frac_bits)
    while shift > 0 and round(factor * (1 << shift)) > 65535:
        shift -= 1
    return round(factor * (1 << shift)), shift


def exp2_lut(p: AttentionParams) -> list[int]:
    """``LUT[f] = round(2^P * 2^(-f / 2^F))``, ``f = 0 .. 2^F - 1``."""
    return [int(math.floor((1 << p.lut_bits) * 2.0 ** (-f / (1 << p.frac_bits)) + 0.5))
            for f in range(1 << p.frac_bits)]
