"""The registry of snnforge generators: names, parameters, how to build each, how to test it.

Every block that ``snnforge gen|sim|lint|synth`` and ``make demo`` know about is declared here.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Callable

from .params import Param, SnnforgeError, resolve_params

__all__ = ["Generator", "GENERATORS", "get_generator"]


@dataclass(frozen=True)
class Generator:
    """A parameterised hardware block.

    ``factory(params) -> wiring.Component`` builds it; ``describe(component) -> dict`` gives the
    derived facts for the manifest (latency, throughput, ...); ``bench`` names the cocotb test
    module of its regression; ``demo_params`` is the configuration ``make demo`` builds.
    """

    name: str
    summary: str
    params: tuple[Param, ...]
    factory: Callable
    describe: Callable = lambda component: {}
    bench: str | None = None
    demo_params: dict = field(default_factory=dict)
    demo_options: dict = field(default_factory=dict)
    demo_targets: tuple | None = ("ecp5-85k", "ice40-up5k")

    def resolve(self, overrides=None) -> dict:
        return resolve_params(self.name, self.params, overrides)

    def build(self, params: dict):
        try:
            return self.factory(params)
        except SnnforgeError:
            raise
        except ValueError as error:  # cross-parameter checks of the component constructors
            raise SnnforgeError(f"{self.name}: {error}") from None


# -- LIF ---------------------------------------------------------------------------------------

LIF_PARAMS = (
    Param("T", 4, "time steps per neuron (all evaluated in one pass)", 1, 32),
    Param("in_width", 16, "input current width (signed)", 2, 32),
    Param("mem_width", 16, "membrane width (signed)", 2, 32),
    Param("leak", "shift", "leak: none, shift (V - (V >> k)) or mul ((V * beta) >> leak_frac)",
          choices=("none", "shift", "mul")),
    Param("leak_shift", 2, "reset value of the leak shift register k (leak=shift)", 0, 31),
    Param("leak_frac", 8, "fraction bits of the leak factor beta (leak=mul)", 1, 16),
    Param("leak_mul", 192, "reset value of the leak factor register beta (leak=mul)", 0, 65535),
    Param("threshold", 64, "reset value of the threshold register", 0, 2**31 - 1),
    Param("reset", "hard", "reset after a spike: hard (to 0) or soft (subtract threshold)",
          choices=("hard", "soft")),
    Param("saturate", True, "saturating membrane arithmetic (else two's-complement wrap)"),
    Param("masked", "integrate", "masked time step: integrate (output gated only), gate_reset "
          "(no reset either) or leak_only (input ignored)",
          choices=("integrate", "gate_reset", "leak_only")),
    Param("ops_per_stage", 1, "LIF operations per pipeline stage (each step is a leak and an "
          "integrate-fire op; latency = ceil(2T / ops_per_stage))", 1, 64),
)


def lif_params_from(values: dict):
    from .golden.lif import LIFParams
    names = {f.name for f in dataclasses.fields(LIFParams)}
    return LIFParams(**{k: v for k, v in values.items() if k in names})


def _lif_array(values):
    from .hw.common.lif import LIFArray
    return LIFArray(lif_params_from(values), ops_per_stage=values["ops_per_stage"])


def _lif_core(values):
    from .hw.common.lif_core import LIFCore
    return LIFCore(lif_params_from(values), ops_per_stage=values["ops_per_stage"],
                   fifo_depth=values["fifo_depth"])


def _describe_lif(component):
    lif = getattr(component, "lif", component)
    return {"latency_cycles": lif.latency, "throughput_neurons_per_cycle": lif.throughput}


GENERATORS: dict[str, Generator] = {}


def register(generator: Generator):
    GENERATORS[generator.name] = generator
    return generator


register(Generator(
    name="lif_array",
    summary="LIF neurons, FTP style: one neuron (T currents) per beat in, T-bit spike word and "
            "membrane out, dynamic time-step mask",
    params=LIF_PARAMS,
    factory=_lif_array,
    describe=_describe_lif,
    bench="snnforge.sim.benches.lif_array",
    demo_options={"n_random": 2000},
))

register(Generator(
    name="lif_core",
    summary="LIF array behind the host port (stream windows, registers, performance counters)",
    params=LIF_PARAMS + (Param("fifo_depth", 16, "depth of the input and result FIFOs (words)",
                               2, 1024),),
    factory=_lif_core,
    describe=_describe_lif,
    bench="snnforge.sim.benches.lif_core",
    demo_options={"n_random": 300},
))


def get_generator(name: str) -> Generator:
    if name not in GENERATORS:
        raise SnnforgeError(f"unknown generator {name!r}; valid generators: {', '.join(GENERATORS)}")
    return GENERATORS[name]
