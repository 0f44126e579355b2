"""The TT-SNN family's generator: a TT conv layer's forward pass behind the host port."""

from __future__ import annotations

from ...generator import STREAM_OPTIONS, Generator
from .config import TTSNNConfig
from .core import TTSNNCore
from .driver import TTSNNDriver

__all__ = ["GENERATORS"]


def _describe(core: TTSNNCore) -> dict:
    step = core.layer.step
    return {
        "cycles_per_position": {name: engine.cycles_per_position for name, engine in
                                (("g1", step.g1), ("g2", step.g2), ("g3", step.g3),
                                 ("g4", step.g4),
                                 *((("dense", step.dense),) if step.dense else ()))},
        "throughput": "one position per max(cycles_per_position) of the engines on the path, "
                      "per step; one neuron per cycle in the LIF pass",
        "lif_latency_cycles": core.layer.lif.latency,
        "memory_format": {"position_bits": core.cfg.position_bits,
                          "neuron_bits": core.cfg.neuron_bits},
    }


GENERATORS = (
    Generator(
        name="ttsnn",
        summary="TT-SNN conv layer, forward and BPTT: G1 (spike AND-accumulate), G2 3x1 / G3 1x3 "
                "(line buffers, STT/PTT/HTT as a register), G4, the shared LIF with its trace, "
                "the backward unit (surrogate, input and core gradients, SGD), DMA",
        config=TTSNNConfig,
        factory=TTSNNCore,
        describe=_describe,
        bench="snnforge.sim.ttsnn.bench",
        testcase="regression",
        sim_options={"cases": "random layers per pipeline (default 2)", **STREAM_OPTIONS},
        driver=TTSNNDriver,
        trainer="snnforge.sim.ttsnn.trainer",
        presets={"paper-s1": ({"c_in": 64, "rank": 24, "c_out": 64, "max_width": 32,
                               "max_height": 32, "T": 4, "lanes_g1": 8, "lanes_g2": 8,
                               "lanes_g3": 8, "lanes_g4": 8},
                              "stage 1 of the paper's CIFAR ResNet-19 (64 channels, r = 24, "
                              "32x32): an ASIC-scale reference, larger than the FPGAs")},
        # The tests' small layer: a demo that builds in seconds.
        demo_params={"c_in": 3, "rank": 2, "c_out": 3, "max_width": 5, "max_height": 4, "T": 3,
                     "lanes_g2": 1, "w_width": 6, "act_width": 12, "y_width": 12,
                     "mem_width": 12, "dma_width": 64},
        demo_options={"cases": 2},
        demo_targets=("ecp5-85k",),
    ),
)
