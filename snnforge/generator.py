"""What a family declares for each of its generators (see :mod:`snnforge.registry`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from .params import Config, SnnforgeError

__all__ = ["Generator", "STREAM_OPTIONS"]

#: The bench options every stream regression takes (``snnforge sim NAME -O idle=...``).
STREAM_OPTIONS = {
    "idle": "idle pattern on the input streams: none, random:P (or just P), periodic:1110 "
            "(1 = offer), burst:N:P (N idle cycles at a time, starting with probability P); "
            "default: the bench's crossed set",
    "stall": "back-pressure pattern on the output streams, same forms (1 = ready)",
}


@dataclass(frozen=True)
class Generator:
    """A parameterised hardware block and everything the flows need to know about it.

    ``config`` is the block's :class:`~snnforge.params.Config` dataclass: the one place its
    parameters (default, range, meaning) are declared and validated. ``factory(cfg)`` builds the
    component; ``describe(component)`` gives the derived facts of the manifest (latency,
    throughput ...) from the component's own properties. ``bench`` names the cocotb module of its
    regression (``testcase``: its test, None for every test of the module) and ``sim_options``
    the options a user may give it (``snnforge sim -O name=value``). ``driver`` is the
    family's :class:`~snnforge.driver.Driver` if the block runs jobs (``snnforge run``).
    ``trainer`` names the module of the family's training flow (``snnforge train``): its
    ``TRAIN_PARAMS`` (a :class:`~snnforge.params.Config`) and ``run_training(console, params,
    on_rtl=, float_epochs=, outfile=)``. ``deployer`` names the module of the family's
    deployment flow (``snnforge deploy``): ``deploy_nir(console, model, *, data, labels, outdir,
    overrides, dt)`` for NIR graphs, optionally ``deploy_checkpoint(console, path, *, data,
    labels, outdir, overrides, compare_unmasked)`` for a ``.pt`` checkpoint, and ``demo(console)
    -> bool``, run at the end of ``make demo``. ``presets`` are named configurations, ``{name:
    (parameters, description)}``, chosen with the parameter ``preset=NAME`` (the other
    parameters given win over the preset's). ``demo_params`` is the configuration ``make demo``
    builds, regresses with ``demo_options`` and synthesizes for ``demo_targets`` (None: not in
    the demo). ``sweep_layers`` names the module of the family's workload layers for ``snnforge
    sweep --layers``: ``LAYERS`` (their names) and ``run_layer(design, layer) -> dict``
    (``cycles``: the layer's end-to-end cycles as the RTL counts them; optionally
    ``compute_cycles`` and further counts).
    """

    name: str
    summary: str
    config: type
    factory: Callable
    describe: Callable = lambda component: {}
    bench: str | None = None
    testcase: str | None = None
    sim_options: dict = field(default_factory=dict)
    driver: type | None = None
    trainer: str | None = None
    deployer: str | None = None
    sweep_layers: str | None = None
    presets: dict = field(default_factory=dict)
    demo_params: dict = field(default_factory=dict)
    demo_options: dict = field(default_factory=dict)
    demo_targets: tuple | None = ("ecp5-85k", "ice40-up5k")

    def __post_init__(self):
        if not (isinstance(self.config, type) and issubclass(self.config, Config)):
            raise TypeError(f"generator {self.name}: config must be a Config dataclass")

    @property
    def params(self):
        """The declared parameters (:class:`~snnforge.params.Param`), in order."""
        return self.config.params()

    def configure(self, overrides=None):
        """The configuration for ``overrides`` (text or values by name) on the defaults; every
        name, range and cross-parameter rule checked (:class:`SnnforgeError`)."""
        overrides = dict(overrides or {})
        preset = overrides.pop("preset", None)
        if preset is not None:
            if preset not in self.presets:
                raise SnnforgeError(f"{self.name}: unknown preset {preset!r}; presets: "
                                    f"{', '.join(self.presets) or 'none'}")
            overrides = {**self.presets[preset][0], **overrides}
        values = self.config.resolve(overrides, self.name)
        try:
            return self.config(**values)
        except ValueError as error:
            raise SnnforgeError(f"{self.name}: {error}") from None

    def build(self, cfg):
        """A fresh component of configuration ``cfg``."""
        try:
            return self.factory(cfg)
        except SnnforgeError:
            raise
        except ValueError as error:      # a rule of the component's own constructor
            raise SnnforgeError(f"{self.name}: {error}") from None
