"""cocotb regression of the attention core: heads through its DMA, every output row against
``golden.trex.attention.attention_head``.

Each case is a batch of heads (q, k, v) and the score scale and output shift, run by
:class:`~snnforge.hw.trex.attn_driver.AttnDriver` as one command list; every output must equal
the golden model's, and the counters the work (rows, multiply-accumulates). Structured cases
(extreme rows, one token, a sharp softmax, a flat one, a narrow output shift) and ``cases``
random ones run under the crossed host-port patterns and the memory's settings. Option
``golden_out_shift`` gives the golden model another output shift (the self-test: it must fail).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

import numpy as np

from ...golden.trex.attention import attention_head
from ...golden.trex.params import score_scale
from ..tb import bench_test, check_outputs


@dataclass
class Case:
    name: str
    q: np.ndarray
    k: np.ndarray
    v: np.ndarray
    options: dict

    def describe(self) -> str:
        return f"{self.name}: q {list(self.q.shape)}, {self.options}"


def cases(cfg, seed: int, n_random: int) -> list[Case]:
    rng = random.Random(seed)
    N, d = cfg.max_tokens, cfg.d_head

    def rows(H, n, kind="random"):
        if kind in ("max", "min"):
            return np.full((H, n, d), 127 if kind == "max" else -128, dtype=np.int64)
        return np.array([rng.randint(-128, 127) for _ in range(H * n * d)],
                        dtype=np.int64).reshape(H, n, d)

    mult, shift = score_scale(cfg, 1 / (128 * math.sqrt(d)))
    opts = lambda m=mult, s=shift, o=cfg.prob_bits: {"score_mult": m, "score_shift": s,
                                                     "out_shift": o}
    out = [Case("extremes", rows(1, N, "max"), rows(1, N, "min"), rows(1, N, "max"), opts()),
           Case("one-token", rows(2, 1), rows(2, 1), rows(2, 1), opts()),
           Case("sharp", rows(2, N), rows(2, N), rows(2, N), opts(65535, 0)),
           Case("flat", rows(1, N), rows(1, N), rows(1, N), opts(0, 0)),
           Case("narrow-shift", rows(1, N), rows(1, N), rows(1, N), opts(o=2))]
    for k in range(n_random):
        H, n = rng.randint(1, 3), rng.randint(1, N)
        out.append(Case(f"random-{k}", rows(H, n), rows(H, n), rows(H, n),
                        opts(rng.randint(0, 4000), rng.randint(0, 16),
                             rng.randint(0, cfg.prob_bits + 2))))
    return out


@bench_test
async def regression(tb):
    driver, transport = tb.host_driver()
    await tb.reset()
    cfg = tb.cfg
    wrong_shift = tb.option("golden_out_shift", None)
    count = 0
    for case, setting in tb.scheduled_jobs(transport, cases(cfg, tb.seed,
                                                            tb.option("cases", 2))):
        got = await driver.run(driver.validate(cfg, {"q": case.q, "k": case.k, "v": case.v},
                                               case.options))
        where = f"{case.describe()} {setting}"
        o = dict(case.options)
        if wrong_shift is not None:
            o["out_shift"] = wrong_shift
        want = np.stack([attention_head(case.q[h], case.k[h], case.v[h], cfg, **o)[0].numpy()
                         for h in range(len(case.q))])
        check_outputs(where, got.outputs, {"out": want})
        H, N, d = case.q.shape
        c = got.counters
        counts = {"rows": H * N, "macs": H * N * N * 2 * d}
        assert {k: c[k] for k in counts} == counts, f"{where}: counters {c}, expected {counts}"
        count += H * N
    tb.record(items=count, unit="attention rows")
