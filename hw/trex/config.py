"""Parameters of the crossbar core: the tile's (``golden.trex.params.XbarParams``), the spiking
mode's LIF neuron and the host interface."""

from __future__ import annotations

from dataclasses import dataclass

import math

from ...golden.common.lif_params import LIFParams
from ...golden.trex.params import AttentionParams, XbarParams
from ...params import inherit, param
from ..common.host_interface import HostInterfaceParams
from ..common.memory import pow2

__all__ = ["XbarConfig", "XbarTileConfig", "TrexConfig", "slot_bits"]

#: The LIF neuron's fields a crossbar core declares (its input width is the tile's).
_LIF_FIELDS = ("T", "mem_width", "leak", "leak_shift", "leak_frac", "leak_mul", "threshold",
               "reset", "saturate", "masked")


def slot_bits(bits: int, dma_width: int) -> int:
    """Bits an item of ``bits`` takes in memory: a power of two up to a beat, whole beats above
    (so that items never straddle a beat unevenly)."""
    if bits <= dma_width:
        return 1 << max(0, (bits - 1).bit_length())
    return -(-bits // dma_width) * dma_width


@dataclass(frozen=True)
class XbarTileConfig(XbarParams):
    """The bare tile's generator parameters: the tile's and the width of a cell-memory
    write."""

    chunk_width: int = param(128, "bits of a cell-memory write (the bus width in a core)",
                             lo=8, hi=512)


@dataclass(frozen=True)
class XbarConfig(XbarParams):
    """Every parameter of a crossbar core: the tile (``rows .. adc_shift``), the LIF neuron of
    spiking mode (``T`` steps per neuron, its membrane and register reset values; its input
    width is the tile's spiking result width) and the AXI4 master."""

    T: int = inherit(LIFParams, "T", help="time steps of spiking mode (one crossbar read each)")
    mem_width: int = inherit(LIFParams, "mem_width")
    leak: str = inherit(LIFParams, "leak")
    leak_shift: int = inherit(LIFParams, "leak_shift")
    leak_frac: int = inherit(LIFParams, "leak_frac")
    leak_mul: int = inherit(LIFParams, "leak_mul")
    threshold: int = inherit(LIFParams, "threshold")
    reset: str = inherit(LIFParams, "reset")
    saturate: bool = inherit(LIFParams, "saturate")
    masked: str = inherit(LIFParams, "masked")
    code_input: bool = param(False, "a LOAD of outside ADC codes (an analog front end modelled "
                                    "elsewhere) the tile can take instead of its ADCs'")
    dma_width: int = inherit(HostInterfaceParams, "dma_width")
    max_burst: int = inherit(HostInterfaceParams, "max_burst")
    outstanding: int = inherit(HostInterfaceParams, "outstanding")

    def __post_init__(self):
        super().__post_init__()
        if self.y_bits(True) > 32:
            raise ValueError(f"rows={self.rows}, in_bits={self.in_bits}, adc_bits="
                             f"{self.adc_bits}: results of {self.y_bits(True)} bits do not fit "
                             "the 32-bit result words")

    #: The leak shift register's width, by the neuron's own rule (its checks read it).
    shift_bits = LIFParams.shift_bits

    @property
    def lif(self) -> LIFParams:
        """The spiking mode's neuron: its currents are the tile's spiking results."""
        return LIFParams(in_width=self.y_bits(False),
                         **{name: getattr(self, name) for name in _LIF_FIELDS})

    @property
    def input_bits(self) -> int:
        """Memory bits of one bit-serial input vector (``rows`` values of ``in_bits``)."""
        return slot_bits(self.rows * self.in_bits, self.dma_width)

    @property
    def code_slot_bits(self) -> int:
        """Memory bits of one round's outside codes (``n_adc`` of ``code_bits``)."""
        return slot_bits(self.n_adc * self.code_bits, self.dma_width)

    @property
    def spike_bits(self) -> int:
        """Memory bits of one spike vector (``rows`` bits)."""
        return slot_bits(self.rows, self.dma_width)

    @property
    def neuron_words(self) -> int:
        """32-bit result words per spiking neuron: its spike word, then its ``T`` currents."""
        return 1 + self.T

    @property
    def vector_beats(self) -> int:
        """Beats of one vector's result record (``n_out`` words)."""
        return -(-32 * self.n_out // self.dma_width)

    @property
    def neuron_beats(self) -> int:
        """Beats of one spiking neuron's result record."""
        return -(-32 * self.neuron_words // self.dma_width)


@dataclass(frozen=True)
class TrexConfig(XbarParams):
    """Every parameter of an encoder core: its crossbar tile (``rows .. adc_shift``), the model
    it runs (``tokens``, ``dim``, ``heads``, ``mlp``, ``depth`` encoders), the attention unit's
    softmax precisions and the AXI4 master."""

    # The digits ViT's tile: 64 rows hold an MLP's inputs, 2-bit cells give 16 outputs a load.
    rows: int = inherit(XbarParams, "rows", default=64)
    cell_bits: int = inherit(XbarParams, "cell_bits", default=2)
    tokens: int = param(16, "tokens per image", lo=1, hi=256)
    dim: int = param(32, "features per token (the residual stream's width)", lo=1, hi=1024)
    heads: int = param(4, "attention heads", lo=1, hi=64)
    mlp: int = param(64, "hidden features of an encoder's MLP", lo=1, hi=1024)
    depth: int = param(4, "encoders: parameter sets, reuse registers and attention-output "
                          "slots", lo=1, hi=8)
    frac_bits: int = inherit(AttentionParams, "frac_bits")
    lut_bits: int = inherit(AttentionParams, "lut_bits")
    prob_bits: int = inherit(AttentionParams, "prob_bits")
    dma_width: int = inherit(HostInterfaceParams, "dma_width")
    max_burst: int = inherit(HostInterfaceParams, "max_burst")
    outstanding: int = inherit(HostInterfaceParams, "outstanding")

    def __post_init__(self):
        super().__post_init__()
        if self.dim % self.heads:
            raise ValueError(f"heads={self.heads} must divide dim={self.dim}")
        if self.dim // self.heads > 64:
            raise ValueError(f"dim / heads = {self.dim // self.heads} dimensions per head; the "
                             "attention unit takes at most 64")
        if max(self.dim, self.mlp) > self.rows:
            raise ValueError(f"dim={self.dim} and mlp={self.mlp} must fit the tile's "
                             f"rows={self.rows} (a matmul's inputs sit on one tile)")
        if self.in_bits < 8:
            raise ValueError(f"in_bits={self.in_bits}: the encoder's activations are int8, "
                             "in_bits must be at least 8")
        if self.y_bits(True) > 32:
            raise ValueError(f"rows={self.rows}, adc_bits={self.adc_bits}: results of "
                             f"{self.y_bits(True)} bits exceed 32")

    @property
    def attention(self) -> AttentionParams:
        return AttentionParams(max_tokens=self.tokens, d_head=self.dim // self.heads,
                               frac_bits=self.frac_bits, lut_bits=self.lut_bits,
                               prob_bits=self.prob_bits)

    @property
    def width(self) -> int:
        """int8 elements of an activation buffer's row."""
        return max(self.dim, self.mlp)

    @property
    def source_bits(self) -> int:
        """Bits of one encoder's reuse source."""
        return max(1, (self.depth - 1).bit_length())

    @property
    def param_fields(self) -> dict[str, tuple[int, int]]:
        """An encoder's parameter words (32 bits), ``name -> (offset, words)``: a matmul's
        ``M | S << 16`` then its biases; a LayerNorm's ``g | b << 16`` per feature; ``score``:
        ``score_mult | score_shift << 16``; ``a_res``, ``mlp_res``: ``M | S << 16``."""
        d, h = self.dim, self.mlp
        sizes = {"ln1": d, "q": 1 + d, "k": 1 + d, "v": 1 + d, "proj": 1 + d, "score": 1,
                 "a_res": 1, "ln2": d, "fc1": 1 + h, "fc2": 1 + d, "mlp_res": 1, "tb_ln": d,
                 "tb": 1 + d}
        out, at = {}, 0
        for name, words in sizes.items():
            out[name] = (at, words)
            at += words
        return out

    @property
    def param_stride(self) -> int:
        """Words between two encoders' parameters (a power of two)."""
        return pow2(sum(w for _, w in self.param_fields.values()))

    @property
    def chunks(self) -> int:
        """Bus beats of one conversion round's cell word."""
        return -(-self.rows * self.n_adc * self.cell_bits // self.dma_width)

    @property
    def block_beats(self) -> int:
        """Bus beats of one block of ``n_out`` weight columns (the tile's cells)."""
        return self.cols_per_adc * self.chunks

    @property
    def x_row_bits(self) -> int:
        """Memory bits of a residual-stream row (``dim`` int16)."""
        return slot_bits(16 * self.dim, self.dma_width)

    @property
    def a_row_bits(self) -> int:
        """Memory bits of an attention-output row (``dim`` int8)."""
        return slot_bits(8 * self.dim, self.dma_width)

    @property
    def ln_n_bits(self) -> int:
        """Width of the LayerNorm's normalized value ``n`` (signed): ``|n| <= 2^13 sqrt(dim)
        + 1`` because ``|c| < 2 sqrt(dim) sigma`` and ``r <= 2^32 / sigma`` (a margin of 2x)."""
        return ((1 << 14) * (math.isqrt(self.dim) + 1) + 2).bit_length() + 1
