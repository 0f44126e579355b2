"""cocotb regression of the TT-SNN core: layers through its DMA, every output against the
fixed-point golden model.

Each case is a layer (spike maps, the four cores, the output spikes' gradients, the pipeline,
shifts, threshold, leak, surrogate) run by :class:`~snnforge.hw.ttsnn.driver.TTSNNDriver` as one
command list, forward then backward; its currents ``y``, spikes and membranes must equal
``golden.ttsnn.fixed_forward``'s and its input and core gradients ``fixed_backward``'s, element
for element, and the counters the layer's sizes. Structured cases (all-zero and all-one spikes,
extreme weights and gradients, zero gradients, a one-position map, saturating shifts) and
``cases`` random ones per pipeline run under the crossed host-port patterns and the memory's
back-pressure and latency settings. A core with a dense engine (``dense_lanes`` > 0) also runs
mode ``dense`` cases (structured and random dense 3x3 weights and gradients, forward and
backward) against ``golden.ttsnn.fixed_dense_forward`` and ``fixed_dense_backward``. Option
``golden_mode`` gives the golden model another pipeline, ``golden_shift_b1`` another
input-gradient shift, ``golden_dense_transposed`` the dense kernel with ``kh`` and ``kw``
swapped (the bench's self-tests, forward, backward and dense: they must fail).
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass

import numpy as np
import torch

from ...golden.common.lif import signed_range
from ...golden.ttsnn.fixed import (fixed_backward, fixed_dense_backward, fixed_dense_forward,
                                   fixed_forward)
from ...golden.ttsnn.params import MODES
from ...golden.ttsnn.tt import TTCores
from ..tb import bench_test, check_outputs


@dataclass
class Case:
    name: str
    spikes: np.ndarray
    cores: dict
    grad: np.ndarray
    options: dict

    def describe(self) -> str:
        T, c_in, H, W = self.spikes.shape
        return f"{self.name}: T={T} Cin={c_in} {H}x{W}, {self.options}"


def cases(cfg, seed: int, n_random: int) -> list[Case]:
    rng = random.Random(seed)
    lo, hi = signed_range(cfg.w_width)
    r, c_in, c_out = cfg.rank, cfg.c_in, cfg.c_out
    shapes = {"g1": (r, c_in), "g2": (r, r, 3), "g3": (r, r, 3), "g4": (c_out, r)}

    def cores(kind, shapes=shapes):
        draw = {"max": lambda s: np.full(s, hi), "min": lambda s: np.full(s, lo),
                "random": lambda s: np.array([rng.randint(lo, hi) for _ in range(int(np.prod(s)))])
                .reshape(s)}[kind]
        return {name: draw(shape).astype(np.int64) for name, shape in shapes.items()}

    def spikes(kind, H, W, p=0.5):
        shape = (cfg.T, c_in, H, W)
        if kind in ("zeros", "ones"):
            return np.full(shape, int(kind == "ones"), dtype=np.int64)
        return np.array([rng.random() < p for _ in range(int(np.prod(shape)))],
                        dtype=np.int64).reshape(shape)

    glo, ghi = signed_range(cfg.grad_width)

    def grad(kind, H, W, limit=300):
        shape = (cfg.T, c_out, H, W)
        if kind in ("zeros", "max", "min"):
            return np.full(shape, {"zeros": 0, "max": ghi, "min": glo}[kind], dtype=np.int64)
        return np.array([rng.randint(-limit, limit) for _ in range(int(np.prod(shape)))],
                        dtype=np.int64).reshape(shape)

    def options(mode, **extra):
        return {"mode": mode, "htt_full": rng.randint(1, cfg.T), "shift_o1": 0, "shift_z2": 1,
                "shift_z3": 2, "shift_y": 3, "theta": rng.randint(0, 60),
                "beta": rng.choice([0, 64, 200, 255]), "shift_b4": rng.randint(0, 3),
                "shift_b3": rng.randint(0, 4), "shift_b2": rng.randint(0, 4),
                "shift_b1": rng.randint(0, 3),
                "surrogate": rng.choice([0, 40, 2 ** cfg.mem_width]), **extra}

    H, W = cfg.max_height, cfg.max_width
    out = [Case("zeros", spikes("zeros", H, W), cores("random"), grad("zeros", H, W),
                options("ptt")),
           Case("ones-max", spikes("ones", H, W), cores("max"), grad("max", H, W),
                options("stt", shift_y=0, surrogate=2 ** cfg.mem_width)),
           Case("ones-min", spikes("ones", H, W), cores("min"), grad("min", H, W),
                options("htt", surrogate=2 ** cfg.mem_width)),
           Case("one-position", spikes("random", 1, 1), cores("random"), grad("random", 1, 1),
                options("ptt")),
           Case("no-shifts", spikes("random", H, W), cores("random"), grad("random", H, W),
                options("stt", shift_z2=0, shift_z3=0, shift_y=0, shift_b4=0, shift_b3=0,
                        shift_b2=0, shift_b1=0))]
    for mode in MODES:
        for k in range(n_random):
            h, w = rng.randint(1, H), rng.randint(1, W)
            out.append(Case(f"{mode}-{k}", spikes("random", h, w, rng.random()),
                            cores("random"), grad("random", h, w), options(mode)))
    if cfg.dense_lanes:
        dense = {"w": (c_out, c_in, 3, 3)}
        out += [Case("dense-ones-max", spikes("ones", H, W), cores("max", dense),
                     grad("max", H, W), options("dense", shift_y=0,
                                                surrogate=2 ** cfg.mem_width)),
                Case("dense-ones-min", spikes("ones", H, W), cores("min", dense),
                     grad("min", H, W), options("dense", shift_y=0)),
                Case("dense-zeros", spikes("zeros", H, W), cores("random", dense),
                     grad("random", H, W), options("dense"))]
        for k in range(n_random):
            h, w = rng.randint(1, H), rng.randint(1, W)
            out.append(Case(f"dense-{k}", spikes("random", h, w, rng.random()),
                            cores("random", dense), grad("random", h, w), options("dense")))
    return out


def expected(cfg, case: Case, mode=None, shift_b1=None, dense_transposed=False):
    o = dict(case.options)
    if shift_b1 is not None:
        o["shift_b1"] = shift_b1
    dense = o["mode"] == "dense"
    p = cfg.fixed.replace(mode=cfg.mode if dense else mode or o["mode"], htt_full=o["htt_full"],
                          theta=o["theta"], beta=o["beta"], surrogate=o["surrogate"],
                          **{k: o[k] for k in o if k.startswith("shift_")})
    c = {k: torch.from_numpy(v) for k, v in case.cores.items()}
    if dense:
        w = c["w"].transpose(2, 3) if dense_transposed else c["w"]
        fwd = fixed_dense_forward(torch.from_numpy(case.spikes), w, p)
        grad_in, dw, _ = fixed_dense_backward(torch.from_numpy(case.grad), fwd, w, p)
        grads = {"grad_w": dw.numpy()}
    else:
        cores = TTCores(c["g1"], c["g2"], c["g3"], c["g4"])
        fwd = fixed_forward(torch.from_numpy(case.spikes), cores, p)
        grad_in, tt, _ = fixed_backward(torch.from_numpy(case.grad), fwd, cores, p)
        grads = {f"grad_g{k}": getattr(tt, f"g{k}").numpy() for k in (1, 2, 3, 4)}
    return {"y": fwd.y.numpy(), "spikes": fwd.spikes.numpy(), "membrane": fwd.membrane.numpy(),
            "grad_in": grad_in.numpy(), **grads}


@bench_test
async def regression(tb):
    driver, transport = tb.host_driver()
    await tb.reset()
    cfg = tb.cfg
    golden_mode = tb.option("golden_mode", None)
    golden_shift_b1 = tb.option("golden_shift_b1", None)
    golden_dense_transposed = bool(tb.option("golden_dense_transposed", 0))
    count = 0
    for case, setting in tb.scheduled_jobs(transport, cases(cfg, tb.seed,
                                                            tb.option("cases", 2))):
        start = time.monotonic()
        job = driver.validate(cfg, {"spikes": case.spikes, "grad": case.grad, **case.cores},
                              case.options)
        got = await driver.run(job)
        where = f"{case.describe()} {setting}"
        check_outputs(where, got.outputs, expected(cfg, case, golden_mode, golden_shift_b1,
                                                   golden_dense_transposed))
        T, _, H, W = case.spikes.shape
        c = got.counters
        counts = {"positions": T * H * W, "neurons": H * W * cfg.c_out,
                  "weights": sum(v.size for v in case.cores.values())}
        if case.options["mode"] == "dense":
            rows = T * H * W * -(-cfg.c_out // cfg.dense_lanes) * -(-9 * cfg.c_in
                                                                   // cfg.dense_ways)
            counts.update(dense_rows=rows, g1_rows=0, g2_rows=0, g3_rows=0, g4_rows=0)
        assert {k: c[k] for k in counts} == counts, f"{where}: counters {c}, expected {counts}"
        tb.dut._log.info("%s: %d cycles end to end; %.1f s", case.name, c["total_cycles"],
                         time.monotonic() - start)
        count += counts["neurons"]
    tb.record(items=count, unit="output neurons")
