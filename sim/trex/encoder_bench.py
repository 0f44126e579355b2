"""cocotb regression of the encoder core: residual streams through encoders with and without
attention reuse, every output against ``golden.trex.vit_int.run_encoders``.

Each case is a batch of images' residual streams, the encoders' integer parameters and the
reuse setting, run by :class:`~snnforge.hw.trex.encoder_driver.TrexDriver` as one command list;
the residual stream and every encoder's attention output must equal the golden model's (the
tile's digital twin and the integer attention as its backend), and the counters the work
(matrix-vector products, weight blocks, attention rows and MACs, computed and reused encoders).
Structured cases (zero and extreme streams -- a LayerNorm of a constant row --, saturating
requantizations, largest weights and biases, reuse chains) and ``cases`` random ones run under
the crossed host-port patterns and the memory's settings. Option ``golden_adc_bits`` gives the
golden model another ADC resolution (the self-test: it must fail).
"""

from __future__ import annotations

import math
import random

import numpy as np
import torch

from ...golden.trex.vit_int import GoldenOps, from_archive, run_encoders
from ..tb import bench_test, check_outputs

__all__ = ["random_params", "golden", "expected_counts", "regression"]


def random_params(cfg, rng: random.Random, encoders: int, *, kind: str = "random") -> dict:
    """An archive of integer parameters for ``encoders`` encoders (every layer, so any reuse
    setting runs), scaled so that activations span int8: ``kind`` ``"random"``, ``"max"``
    (largest weights, biases and gains) or ``"saturate"`` (requantizations that clip)."""
    d, h, w_max = cfg.dim, cfg.mlp, cfg.w_max
    out = {}

    def ints(shape, lo, hi):
        n = int(np.prod(shape))
        return np.array([rng.randint(lo, hi) for _ in range(n)], dtype=np.int64).reshape(shape)

    def requant(K):
        if kind == "saturate":
            return np.array([65535, rng.randint(0, 4)])
        # acc ~ sqrt(K) * 40 * w_max / 2: aim at about 40 out
        ratio = 40 / (math.sqrt(K) * 40 * max(1, w_max) / 2)
        S = 16 + max(0, math.ceil(-math.log2(ratio)))
        return np.array([min(65535, round(ratio * (1 << S))), S])

    for j in range(encoders):
        for name in ("ln1", "ln2", "tb_ln"):
            out[f"{j}.{name}.g"] = (np.full(d, 32767) if kind == "max"
                                    else ints((d,), -12000, 12000))
            out[f"{j}.{name}.b"] = np.full(d, -32768) if kind == "max" else ints((d,), -20, 20)
        for name, K, n in (("q", d, d), ("k", d, d), ("v", d, d), ("proj", d, d), ("tb", d, d),
                           ("fc1", d, h), ("fc2", h, d)):
            out[f"{j}.{name}.w"] = (np.full((K, n), w_max) * np.array([1, -1])[np.arange(n) % 2]
                                    if kind == "max" else ints((K, n), -w_max, w_max))
            lim = (1 << 31) - 1 if kind == "max" else 3000
            out[f"{j}.{name}.b"] = ints((n,), -lim, lim)
            out[f"{j}.{name}.requant"] = requant(K)
        out[f"{j}.score"] = np.array([rng.randint(20, 3000), rng.randint(14, 20)])
        for name in ("a_res", "mlp_res"):
            out[f"{j}.{name}"] = (np.array([65535, 0]) if kind == "saturate"
                                  else np.array([rng.randint(1000, 60000), rng.randint(8, 11)]))
    return out


def golden(cfg, job, *, adc_bits=None) -> dict:
    """The outputs ``TrexDriver`` must return for ``job``."""
    from ...hw.trex.encoder_driver import parse_reuse
    o = job.options
    E = o["encoders"]
    ops = GoldenOps(cfg.tile, cfg.attention, adc_bits=adc_bits or o["adc_bits"],
                    adc_shift=o["adc_shift"])
    x = torch.as_tensor(job.inputs["tokens"], dtype=torch.int64)
    y, outs = run_encoders(x, from_archive(job.inputs["params"]),
                           parse_reuse(o["reuse"], E), ops, heads=cfg.heads, count=E)
    return {"tokens": y.numpy(), "outputs": torch.stack([outs[j] for j in range(E)],
                                                         dim=1).numpy()}


def expected_counts(cfg, job) -> dict:
    """The counters the work fixes: matrix-vector products, weight blocks, attention rows and
    multiply-accumulates, computed and reused encoders."""
    from ...hw.trex.encoder_driver import parse_reuse
    B = job.inputs["tokens"].shape[0]
    E = job.options["encoders"]
    reused = len(parse_reuse(job.options["reuse"], E))
    computed = E - reused
    d, h, N = cfg.dim, cfg.mlp, cfg.tokens
    per_d, per_h = -(-d // cfg.n_out), -(-h // cfg.n_out)        # blocks of a matmul
    blocks = computed * 4 * per_d + reused * per_d + E * (per_h + per_d)
    dh = d // cfg.heads
    return {"vectors": B * N * blocks, "weight_blocks": B * blocks,
            "attention_rows": B * computed * cfg.heads * N,
            "attention_macs": B * computed * cfg.heads * N * N * 2 * dh,
            "computed": B * computed, "reused": B * reused}


def cases(cfg, seed: int, n_random: int) -> list[tuple[str, dict, dict]]:
    rng = random.Random(seed)
    N, d, E = cfg.tokens, cfg.dim, cfg.depth

    def stream(B, kind="random"):
        if kind == "zero":
            return np.zeros((B, N, d), dtype=np.int64)
        if kind == "extreme":
            x = np.full((B, N, d), 32767, dtype=np.int64)
            x[:, ::2] = -32768
            return x
        return np.array([rng.randint(-3000, 3000) for _ in range(B * N * d)],
                        dtype=np.int64).reshape(B, N, d)

    chain = ",".join(f"{j}:{j - 1}" for j in range(1, E))    # each reuses the one before
    out = [("zero-stream", {"tokens": stream(1, "zero"), "params": random_params(cfg, rng, E)},
            {"encoders": E}),
           ("extreme-stream", {"tokens": stream(1, "extreme"),
                               "params": random_params(cfg, rng, E)}, {"encoders": 1}),
           ("largest-params", {"tokens": stream(1), "params": random_params(cfg, rng, E,
                                                                            kind="max")},
            {"encoders": min(E, 2), "reuse": "1:0" if E > 1 else ""}),
           ("saturating", {"tokens": stream(1), "params": random_params(cfg, rng, E,
                                                                         kind="saturate")},
            {"encoders": E}),
           ("reuse-chain", {"tokens": stream(2), "params": random_params(cfg, rng, E)},
            {"encoders": E, "reuse": chain})]
    for k in range(n_random):
        count = rng.randint(1, E)
        reuse = ",".join(f"{j}:{rng.randrange(j)}" for j in range(2, count)
                         if rng.random() < 0.5)
        out.append((f"random-{k}", {"tokens": stream(rng.randint(1, 2)),
                                    "params": random_params(cfg, rng, E)},
                    {"encoders": count, "reuse": reuse,
                     "adc_bits": rng.randint(max(1, cfg.adc_bits - 2), cfg.adc_bits)}))
    return out


@bench_test
async def regression(tb):
    driver, transport = tb.host_driver()
    await tb.reset()
    cfg = tb.cfg
    wrong_adc = tb.option("golden_adc_bits", None)
    count = 0
    for (name, inputs, options), setting in tb.scheduled_jobs(
            transport, cases(cfg, tb.seed, tb.option("cases", 1))):
        job = driver.validate(cfg, inputs, options)
        got = await driver.run(job)
        where = f"{name} (encoders {job.options['encoders']}, reuse " \
                f"{job.options['reuse'] or 'none'}) {setting}"
        check_outputs(where, got.outputs, golden(cfg, job, adc_bits=wrong_adc))
        want = expected_counts(cfg, job)
        c = {k: got.counters[k] for k in want}
        assert c == want, f"{where}: counters {c}, expected {want}"
        count += job.inputs["tokens"].shape[0]
    tb.record(items=count, unit="images")
