"""Parameters of the crossbar core: the tile's (``golden.trex.params.XbarParams``), the spiking
mode's LIF neuron and the host interface."""

from __future__ import annotations

from dataclasses import dataclass

from ...golden.common.lif_params import LIFParams
from ...golden.trex.params import XbarParams
from ...params import inherit, param
from ..common.host_interface import HostInterfaceParams

__all__ = ["XbarConfig", "XbarTileConfig", "slot_bits"]

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
