"""cocotb regression of the crossbar core: batches through its DMA, every result against the
golden digital twin.

Each case is a weight matrix, a batch of inputs and the ADC/input settings, run by
:class:`~snnforge.hw.trex.driver.XbarDriver` as one command list; its results ``y`` (and in
spiking mode its spikes) must equal ``golden.trex.xbar.xbar_mvm``'s (``xbar_spiking``'s),
element for element, and the counters the tile's work (vectors, crossbar reads, ADC
conversions, neurons). Structured cases (all-zero and all-one inputs, extreme inputs and weights,
an exact ADC, a clipping ADC, the narrowest settings, a one-row one-column matrix, a matrix of
two tile loads, spiking with a mask; on a core built with ``code_input``, the non-ideal front
end's codes -- variation, IR drop -- taken instead of the tile's ADCs) and ``cases`` random ones
per mode run under the crossed host-port patterns and the memory's back-pressure and latency
settings. Option ``golden_shift`` gives the golden model
another ADC shift (the bench's self-test: it must fail).
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass

import numpy as np

from ...golden.trex.xbar import NonIdeal, xbar_mvm, xbar_spiking
from ..tb import bench_test, check_outputs


@dataclass
class Case:
    name: str
    x: np.ndarray
    w: np.ndarray
    options: dict
    analog: NonIdeal | None = None      # its codes go to the core (code_input)

    def describe(self) -> str:
        return f"{self.name}: x {list(self.x.shape)}, w {list(self.w.shape)}, {self.options}"


def cases(cfg, seed: int, n_random: int) -> list[Case]:
    rng = random.Random(seed)
    rows, n_out, wmax = cfg.rows, cfg.n_out, cfg.w_max

    def weights(kind, R=rows, n=n_out):
        value = {"max": wmax, "min": -wmax, "zero": 0}.get(kind)
        if value is not None:
            return np.full((R, n), value, dtype=np.int64)
        return np.array([[rng.randint(-wmax, wmax) for _ in range(n)] for _ in range(R)],
                        dtype=np.int64)

    def inputs(kind, B, R=rows, in_bits=cfg.in_bits, spiking=False):
        shape = (cfg.T, B, R) if spiking else (B, R)
        lo, hi = (0, 1) if spiking else (-(1 << (in_bits - 1)), (1 << (in_bits - 1)) - 1)
        value = {"zeros": 0, "ones": 1, "min": lo, "max": hi}.get(kind)
        if value is not None:
            return np.full(shape, value, dtype=np.int64)
        p = rng.random()
        if spiking:
            return (np.array([rng.random() for _ in range(int(np.prod(shape)))]) < p) \
                .astype(np.int64).reshape(shape)
        return np.array([rng.randint(lo, hi) for _ in range(int(np.prod(shape)))],
                        dtype=np.int64).reshape(shape)

    def settings(**extra):
        return {"in_bits": cfg.in_bits, "adc_bits": cfg.adc_bits, "adc_shift": cfg.shift,
                **extra}

    out = [Case("zeros", inputs("zeros", 3), weights("random"), settings()),
           Case("min-x-max-w", inputs("min", 3), weights("max"), settings(adc_shift=0)),
           Case("max-x-min-w", inputs("max", 2), weights("min"), settings()),
           Case("exact-adc", inputs("random", 4), weights("random"), settings(adc_shift=0)),
           Case("narrowest", inputs("random", 3, in_bits=2), weights("random"),
                settings(in_bits=2, adc_bits=1, adc_shift=cfg.max_shift)),
           Case("one-by-one", inputs("random", 2, R=1), weights("random", 1, 1), settings()),
           Case("zero-weights", inputs("random", 2), weights("zero"), settings()),
           Case("two-loads", inputs("random", 3), weights("random", n=n_out + 1), settings()),
           Case("spikes-ones", inputs("ones", 2, spiking=True), weights("max"),
                settings(spiking=True, adc_shift=0, threshold=rng.randint(0, 200))),
           Case("spikes-masked", inputs("random", 3, spiking=True), weights("random"),
                settings(spiking=True, tmask=rng.randrange(1 << cfg.T),
                         threshold=rng.randint(0, 40)))]
    if cfg.code_input:
        out += [Case("non-ideal-variation", inputs("random", 3), weights("random"), settings(),
                     NonIdeal(sigma=0.2, seed=rng.randrange(1000))),
                Case("non-ideal-ir-drop", inputs("max", 2), weights("random", n=n_out + 1),
                     settings(adc_shift=0), NonIdeal(r_wire=5.0, on_off=20.0))]
    for k in range(n_random):
        R, n = rng.randint(1, rows), rng.randint(1, 2 * n_out + 1)     # up to three loads
        in_bits = rng.randint(2, cfg.in_bits)
        out.append(Case(f"serial-{k}", inputs("random", rng.randint(1, 6), R, in_bits),
                        weights("random", R, n),
                        settings(in_bits=in_bits, adc_bits=rng.randint(1, cfg.adc_bits),
                                 adc_shift=rng.randint(0, cfg.max_shift))))
        out.append(Case(f"spiking-{k}", inputs("random", rng.randint(1, 4), R, spiking=True),
                        weights("random", R, n),
                        settings(spiking=True, adc_bits=rng.randint(1, cfg.adc_bits),
                                 adc_shift=rng.randint(0, cfg.max_shift),
                                 threshold=rng.randint(0, 60))))
    return out


def analog_codes(cfg, case: Case) -> list:
    """The ADC codes the case's non-ideal front end gives (one tensor per column block)."""
    o = case.options
    return xbar_mvm(case.x, case.w, cfg.tile, in_bits=o["in_bits"], adc_bits=o["adc_bits"],
                    adc_shift=o["adc_shift"], analog=case.analog).codes


def expected(cfg, case: Case, shift=None):
    """The golden outputs and work of ``case`` (``shift``: another ADC shift, the self-test)."""
    o = case.options
    kw = dict(adc_bits=o["adc_bits"], adc_shift=o["adc_shift"] if shift is None else shift)
    if o.get("spiking"):
        lif = cfg.lif.replace(threshold=o.get("threshold", cfg.threshold))
        out = xbar_spiking(case.x, case.w, cfg.tile, lif, tmask=o.get("tmask"), **kw)
        return {"y": out.y.numpy(), "spikes": out.spikes.numpy()}, out
    # With a front end, the core's back end on its codes.
    codes = None if case.analog is None else analog_codes(cfg, case)
    out = xbar_mvm(case.x, case.w, cfg.tile, in_bits=o["in_bits"], codes=codes, **kw)
    return {"y": out.y.numpy()}, out


@bench_test
async def regression(tb):
    driver, transport = tb.host_driver()
    await tb.reset()
    cfg = tb.cfg
    golden_shift = tb.option("golden_shift", None)
    count = 0
    for case, setting in tb.scheduled_jobs(transport, cases(cfg, tb.seed,
                                                            tb.option("cases", 2))):
        start = time.monotonic()
        inputs = {"x": case.x, "w": case.w}
        if case.analog is not None:
            inputs["codes"] = np.stack([c.numpy() for c in analog_codes(cfg, case)])
        got = await driver.run(driver.validate(cfg, inputs, case.options))
        where = f"{case.describe()} {setting}"
        want, work = expected(cfg, case, golden_shift)
        check_outputs(where, got.outputs, want)
        c = got.counters
        vectors = int(np.prod(case.x.shape[:-1]))
        loads = -(-case.w.shape[1] // cfg.n_out)
        counts = {"vectors": vectors * loads, "reads": work.reads,
                  "conversions": work.conversions,
                  "neurons": (case.x.shape[1] * cfg.n_out * loads if case.options.get("spiking")
                              else 0)}
        assert {k: c[k] for k in counts} == counts, f"{where}: counters {c}, expected {counts}"
        tb.dut._log.info("%s: %d cycles end to end; %.1f s", case.name, c["total_cycles"],
                         time.monotonic() - start)
        count += vectors
    tb.record(items=count, unit="matrix-vector products")
