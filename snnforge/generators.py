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
    module of its regression and ``sim_options`` the options a user may give it
    (``snnforge sim -O name=value``); ``demo_params`` is the configuration ``make demo`` builds.
    """

    name: str
    summary: str
    params: tuple[Param, ...]
    factory: Callable
    describe: Callable = lambda component: {}
    bench: str | None = None
    testcase: str | None = None      # the regression's cocotb test (None: every test of the module)
    sim_options: dict = field(default_factory=dict)     # option name -> meaning
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
    Param("membrane", True, "emit each neuron's final membrane beside its spike word"),
)


def lif_params_from(values: dict):
    from .golden.lif import LIFParams
    names = {f.name for f in dataclasses.fields(LIFParams)}
    return LIFParams(**{k: v for k, v in values.items() if k in names})


def _lif_array(values):
    from .hw.common.lif import LIFArray
    return LIFArray(lif_params_from(values), ops_per_stage=values["ops_per_stage"],
                    membrane=values["membrane"])


def _lif_core(values):
    from .hw.common.lif_core import LIFCore
    return LIFCore(lif_params_from(values), ops_per_stage=values["ops_per_stage"],
                   fifo_depth=values["fifo_depth"], membrane=values["membrane"])


STREAM_OPTIONS = {
    "idle": "probability of an idle cycle on each input stream (default 0.3)",
    "stall": "probability of back-pressure on each output stream (default 0.3)",
}
LIF_OPTIONS = {"n_random": "random neurons besides the structured ones", **STREAM_OPTIONS}


def _describe_lif(component):
    return {"latency_cycles": component.latency,
            "throughput_neurons_per_cycle": component.throughput}


def _describe_lif_core(core):
    return {"lif_latency_cycles": core.lif.latency, "host_words_per_neuron": core.words_per_neuron,
            "host_words_per_result": core.words_per_result,
            "throughput_neurons_per_cycle": round(core.throughput, 4)}


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
    sim_options=LIF_OPTIONS,
    demo_options={"n_random": 2000},
))

register(Generator(
    name="lif_core",
    summary="LIF array behind the host port (stream windows, registers, performance counters)",
    params=LIF_PARAMS + (Param("fifo_depth", 16, "depth of the input and result FIFOs (words)",
                               2, 1024),),
    factory=_lif_core,
    describe=_describe_lif_core,
    bench="snnforge.sim.benches.lif_core",
    sim_options=LIF_OPTIONS,
    demo_options={"n_random": 300},
))


def get_generator(name: str) -> Generator:
    if name not in GENERATORS:
        raise SnnforgeError(f"unknown generator {name!r}; valid generators: {', '.join(GENERATORS)}")
    return GENERATORS[name]


# -- LoAS --------------------------------------------------------------------------------------

LOAS_PARAMS = (
    Param("pes", 16, "TPPEs (spike rows processed in parallel)", 1, 64),
    Param("fiber", 128, "fiber width W (positions per bitmask)", 8, 512),
    Param("T", 4, "time steps packed per neuron word", 1, 16),
    Param("tile_n", 32, "output columns stationary per PE (accumulators per TPPE)", 1, 256),
    Param("group", 4, "weight fibers broadcast per cycle", 1, 16),
    Param("k_max", 4608, "spike positions buffered per row (larger K: split into blocks)", 1,
          1 << 20),
    Param("n_max", 256, "output columns per run", 1, 1 << 16),
    Param("v_max", 8192, "nonzero weights buffered (multiple of 4)", 4, 1 << 20),
    Param("f_max", 4096, "weight fibers buffered", 1, 1 << 20),
    Param("segment", 8, "laggy prefix-sum segment width", 1, 512),
    Param("adders", 4, "laggy prefix-sum adders", 1, 512),
    Param("group_fifo", 16, "rows queued per PE (run-ahead depth)", 2, 1024),
    Param("match_fifo", 8, "FIFO-mp/FIFO-B depth per PE", 2, 1024),
    Param("prefix_stages", 2, "pipeline stages of the fast prefix-sum", 1, 2),
    Param("acc_width", 0, "partial-sum width handed to the LIF and carried across K blocks "
          "(0: derived, exact within one run of k_max positions; beyond it sums saturate, "
          "counted)", 0, 48),
    Param("mem_width", 16, "LIF membrane width", 2, 32),
    Param("leak", "shift", "LIF leak", choices=("none", "shift", "mul")),
    Param("leak_frac", 8, "fraction bits of the multiplicative leak", 1, 16),
    Param("reset", "hard", "LIF reset", choices=("hard", "soft")),
    Param("saturate", True, "saturating LIF membrane"),
    Param("masked", "integrate", "LIF policy for masked time steps",
          choices=("integrate", "gate_reset", "leak_only")),
    Param("lif_ops_per_stage", 1, "LIF operations per pipeline stage", 1, 64),
)


def loas_config_from(values: dict):
    from .hw.loas.config import LoASConfig
    names = set(LoASConfig.names())
    return LoASConfig(**{k: v for k, v in values.items() if k in names})


def _loas(values):
    from .hw.loas.core import LoASCore
    return LoASCore(loas_config_from(values))


def _describe_loas(core):
    cfg = core.cfg
    return {
        "tppe_width": cfg.tppe_width, "out_width": cfg.out_width,
        "inner_join_latency_cycles": 2 + cfg.prefix_stages,
        "throughput": "one match per PE per cycle; one broadcast row (up to group weight "
                      "fibers) per cycle; one LIF neuron per PE per cycle",
        "laggy_prefix_latency_cycles": -(-cfg.fiber // cfg.segment // cfg.adders),
        "chunks_max": cfg.chunks_max, "rows_max": cfg.rows_max,
    }


register(Generator(
    name="loas",
    summary="LoAS dual-sparse SNN core: FTP-packed spikes x bitmask weights, inner join with fast "
            "and laggy prefix-sums, TPPE array, LIF, output compression, host port",
    params=LOAS_PARAMS,
    factory=_loas,
    describe=_describe_loas,
    bench="snnforge.sim.benches.loas",
    testcase="regression",
    sim_options={"suite": "layer set: regression (default; with networks) or quick",
                 "cases": "comma-separated names of the layers/networks to run (default all)",
                 "idle": "probability of an idle cycle on the host command stream (default 0.2)",
                 "stall": "probability of back-pressure on the host response stream "
                          "(default 0.2)"},
    # The demo builds a 4-PE core (a minute to build under Verilator; the test suite shares the
    # build); bench/loas_bench.py measures the default 16-PE, W=128 configuration.
    demo_params={"pes": 4, "fiber": 32, "tile_n": 8, "k_max": 512, "n_max": 256, "v_max": 2048,
                 "f_max": 1024, "adders": 2},
    demo_options={"suite": "regression"},
    demo_targets=("ecp5-85k",),
))
