"""Parameters of the TT-SNN core: the layer's shape, the engines' lanes, the fixed-point widths
and the registers' reset values (from ``golden.ttsnn.params``), the host interface."""

from __future__ import annotations

from dataclasses import dataclass

from ...golden.ttsnn.params import TTFixedParams
from ...params import Config, inherit, param
from ..common.host_interface import HostInterfaceParams
from ..common.memory import pow2

__all__ = ["TTSNNConfig"]


@dataclass(frozen=True)
class TTSNNConfig(Config):
    """Every structural parameter of a TT-SNN core and the reset values of its registers.

    Shape: a TT conv layer of ``c_in`` -> ``c_out`` channels at TT rank ``rank`` on maps of up to
    ``max_height x max_width`` positions, ``T`` steps. Engines: ``lanes_g1 .. lanes_g4`` output
    channels by ``ways_g1 .. ways_g4`` input channels per cycle; ``dense_lanes`` > 0 adds the
    dense 3x3 engine of mode ``dense`` (``dense_ways`` inputs a lane), the baseline of TT's
    speedup; ``htt_pool``: HTT's late steps run on G2's and G3's multipliers too. Widths and
    register values as :class:`~snnforge.golden.ttsnn.params.TTFixedParams` (cores at most 8
    bits: they are loaded as int8).
    """

    c_in: int = param(8, "input channels (Cin)", lo=1, hi=256)
    rank: int = param(4, "TT rank r (G1's outputs, G2/G3's channels, G4's inputs)", lo=1, hi=64)
    c_out: int = param(8, "output channels (Cout)", lo=1, hi=256)
    max_width: int = param(8, "widest map (positions per row)", lo=1, hi=256)
    max_height: int = param(8, "tallest map (rows)", lo=1, hi=256)
    T: int = inherit(TTFixedParams, "T")
    lanes_g1: int = param(2, "G1 lanes: output channels per cycle (at most rank)", lo=1, hi=64,
                          check=lambda c, v: v <= c.rank, what=lambda c: f"1..{c.rank} (rank)")
    lanes_g2: int = param(2, "G2 lanes (at most rank)", lo=1, hi=64,
                          check=lambda c, v: v <= c.rank, what=lambda c: f"1..{c.rank} (rank)")
    lanes_g3: int = param(2, "G3 lanes (at most rank)", lo=1, hi=64,
                          check=lambda c, v: v <= c.rank, what=lambda c: f"1..{c.rank} (rank)")
    lanes_g4: int = param(2, "G4 lanes (at most c_out)", lo=1, hi=256,
                          check=lambda c, v: v <= c.c_out,
                          what=lambda c: f"1..{c.c_out} (c_out)")
    ways_g1: int = param(1, "G1 ways: input channels a lane adds per cycle (at most c_in)",
                         lo=1, hi=256, check=lambda c, v: v <= c.c_in,
                         what=lambda c: f"1..{c.c_in} (c_in)")
    ways_g2: int = param(1, "G2 ways (at most 3 rank: its inputs are the window's taps)", lo=1,
                         hi=192, check=lambda c, v: v <= 3 * c.rank,
                         what=lambda c: f"1..{3 * c.rank} (3 rank)")
    ways_g3: int = param(1, "G3 ways (at most 3 rank)", lo=1, hi=192,
                         check=lambda c, v: v <= 3 * c.rank,
                         what=lambda c: f"1..{3 * c.rank} (3 rank)")
    ways_g4: int = param(1, "G4 ways (at most rank)", lo=1, hi=64,
                         check=lambda c, v: v <= c.rank, what=lambda c: f"1..{c.rank} (rank)")
    dense_lanes: int = param(0, "lanes of a dense 3x3 engine beside the TT engines (0: none): "
                             "the baseline TT's speedup is measured against (mode dense)",
                             lo=0, hi=256, check=lambda c, v: v <= c.c_out,
                             what=lambda c: f"0..{c.c_out} (c_out)")
    dense_ways: int = param(1, "dense engine ways (at most 9 c_in)", lo=1, hi=2304,
                            check=lambda c, v: v <= 9 * c.c_in,
                            what=lambda c: f"1..{9 * c.c_in} (9 c_in)")
    htt_pool: bool = param(True, "HTT's late steps lend G2's and G3's multipliers to G4's and "
                           "G1's work (their engines also hold G4's and G1's weights)")
    w_width: int = inherit(TTFixedParams, "w_width", hi=8)
    act_width: int = inherit(TTFixedParams, "act_width")
    y_width: int = inherit(TTFixedParams, "y_width")
    mem_width: int = inherit(TTFixedParams, "mem_width")
    grad_width: int = inherit(TTFixedParams, "grad_width")
    wgrad_width: int = inherit(TTFixedParams, "wgrad_width", hi=32)
    mode: str = inherit(TTFixedParams, "mode", help="reset value of the mode register")
    htt_full: int = inherit(TTFixedParams, "htt_full",
                            help="reset value of htt_full (HTT: steps on the full PTT path)",
                            check=lambda c, v: v <= c.T, what=lambda c: f"an integer in 1..{c.T}")
    theta: int = inherit(TTFixedParams, "theta", help="reset value of the threshold theta")
    beta: int = inherit(TTFixedParams, "beta", help="reset value of the leak factor beta/256")
    surrogate: int = inherit(TTFixedParams, "surrogate",
                             help="reset value of the surrogate half-width a",
                             check=lambda c, v: v < 2 ** (c.mem_width + 1),
                             what=lambda c: f"an integer in 0..{2 ** (c.mem_width + 1) - 1}")
    dma_width: int = inherit(HostInterfaceParams, "dma_width")
    max_burst: int = inherit(HostInterfaceParams, "max_burst")
    outstanding: int = inherit(HostInterfaceParams, "outstanding")

    @property
    def fixed(self) -> TTFixedParams:
        """The golden model's parameters at the registers' reset values (shifts 0)."""
        return TTFixedParams(T=self.T, w_width=self.w_width, act_width=self.act_width,
                             y_width=self.y_width, mem_width=self.mem_width,
                             grad_width=self.grad_width, wgrad_width=self.wgrad_width,
                             mode=self.mode, htt_full=self.htt_full, theta=self.theta,
                             beta=self.beta, surrogate=self.surrogate)

    @property
    def lanes(self) -> tuple:
        return (self.lanes_g1, self.lanes_g2, self.lanes_g3, self.lanes_g4)

    @property
    def ways(self) -> tuple:
        return (self.ways_g1, self.ways_g2, self.ways_g3, self.ways_g4)

    @property
    def position_bits(self) -> int:
        """Bits of one position's spikes in memory: ``c_in`` padded to a power of two."""
        return pow2(self.c_in)

    @property
    def neuron_bits(self) -> int:
        """Bits of one neuron's result in memory (spikes, membrane, trace, currents), padded to a
        power of two."""
        return pow2(self.T + self.mem_width + self.T * (self.mem_width + self.y_width))

    @property
    def result_bits(self) -> int:
        """Bits of one backward result in memory (an input gradient or a core gradient)."""
        return max(8, pow2(max(self.grad_width, self.wgrad_width)))

    @property
    def grad_bits(self) -> int:
        """Bits of one output-spike gradient in memory (the ``grads`` LOAD)."""
        return max(8, pow2(self.grad_width))
