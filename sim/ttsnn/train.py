"""The digits network trained on the TT-SNN core's RTL (``snnforge train ttsnn --on-rtl``).

``train_on_rtl`` runs :func:`~snnforge.golden.ttsnn.train.train_fixed` -- the same loop the
fixed-point golden training runs -- with :class:`RTLTTLayer`: every training step's TT layer
forward pass, its BPTT (surrogate, input gradients, the four core gradients) and the SGD update
of the cores run on the core through :class:`~snnforge.hw.ttsnn.driver.TTSNNDriver`. The cores
are loaded once and then stay on chip, updated by the core itself.

Options: ``train`` (the :class:`~snnforge.golden.ttsnn.train.TTTrainParams` values),
``result_file`` (``.npz``: the trained weights, the losses, the summed counters) and
``progress_file`` (one line per finished step: ``step loss``).
"""

from __future__ import annotations

import time

import numpy as np
import torch

from ...golden.ttsnn.train import TTTrainParams, train_fixed
from ...host import HostDriver
from ..tb import bench_test

__all__ = ["RTLTTLayer", "train_on_rtl"]


class RTLTTLayer:
    """The TT layer of :func:`train_fixed` computed by the core: per step a forward job, then a
    forward + backward job with the SGD update on chip (the second forward re-runs the first on
    the same cores -- its spikes are checked equal -- because a backward pass starts from the
    traces a forward pass of the same command list left)."""

    def __init__(self, driver):
        self.driver = driver
        self.loaded = False
        self.counters: dict[str, int] = {}
        self.jobs = 0

    def _job(self, spikes, cores, p, grad=None, **extra):
        inputs = {"spikes": spikes.numpy().astype(np.uint8),
                  **{name: getattr(cores, name).numpy() for name in ("g1", "g2", "g3", "g4")}}
        if grad is not None:
            inputs["grad"] = grad.numpy()
        options = {"mode": p.mode, "htt_full": p.htt_full, "theta": p.theta, "beta": p.beta,
                   "surrogate": p.surrogate, "load_cores": int(not self.loaded),
                   **{f"shift_{n}": getattr(p, f"shift_{n}") for n in
                      ("o1", "z2", "z3", "y", "b4", "b3", "b2", "b1")}, **extra}
        return self.driver.validate(self.driver.cfg, inputs, options)

    async def _run(self, job):
        result = await self.driver.run(job)
        self.loaded = True
        self.jobs += 1
        for name, value in result.counters.items():
            self.counters[name] = self.counters.get(name, 0) + int(value)
        return result.outputs

    async def forward(self, spikes, cores, p):
        self._spikes = torch.from_numpy((await self._run(self._job(spikes, cores, p)))
                                        ["spikes"].astype(np.int64))
        return self._spikes

    async def backward(self, spikes, grad, cores, p, lr_shift):
        out = await self._run(self._job(spikes, cores, p, grad, sgd_shift=lr_shift))
        again = torch.from_numpy(out["spikes"].astype(np.int64))
        if not torch.equal(again, self._spikes):
            raise AssertionError(f"job {self.jobs}: the backward job's forward pass gave "
                                 f"{int((again != self._spikes).sum())} other spikes than the "
                                 "forward job's on the same cores")
        new = {k: torch.from_numpy(out[f"new_{k}"]) for k in ("g1", "g2", "g3", "g4")}
        return torch.from_numpy(out["grad_in"]), type(cores)(**new)


@bench_test
async def train_on_rtl(tb):
    p = TTTrainParams(**tb.option("train", {}))
    driver = tb.generator.driver(HostDriver(tb.component.regmap, tb.transport()), tb.cfg)
    layer = RTLTTLayer(driver)
    progress = open(tb.option("progress_file", "/dev/null"), "w", buffering=1)
    await tb.reset()
    start = time.monotonic()
    with progress:
        result = await train_fixed(layer, p,
                                   progress=lambda step, loss: progress.write(f"{step} {loss}\n"))
    wall = time.monotonic() - start
    weights = {k: v.numpy() for k, v in result.weights().items()}
    np.savez(tb.option("result_file", None), **weights, losses=np.array(result.losses),
             **{f"counter_{k}": np.int64(v) for k, v in layer.counters.items()})
    tb.record(jobs=layer.jobs, wall_seconds=wall, items=p.steps, unit="training steps",
              counters=layer.counters)
