"""Layers and expected results for the LoAS core, shared by the cocotb regression
(``snnforge.sim.benches.loas``) and the Amaranth-simulator tests."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch

from ..golden.lif import lif_integer
from ..golden.loas import apply_strong, match_count, match_count_sequential, spmspm
from ..golden.lif import saturate as clamp
from ..hw.loas.config import LoASConfig

__all__ = ["LayerCase", "loas_cases", "expected_layer"]


@dataclass
class LayerCase:
    name: str
    spikes: torch.Tensor        # uint8 [T, M, K]
    weights: torch.Tensor       # int64 [K, N]
    threshold: int = 64
    leak_amount: int = 1
    tmask: int | None = None
    strong: bool = False
    sequential: bool = False

    def describe(self):
        T, M, K = self.spikes.shape
        return (f"{self.name}: T={T} M={M} K={K} N={self.weights.shape[1]} "
                f"spike density={float(self.spikes.float().mean()):.3f} "
                f"weight density={float((self.weights != 0).float().mean()):.4f} "
                f"strong={self.strong} sequential={self.sequential} tmask={self.tmask} "
                f"threshold={self.threshold}")


def expected_layer(cfg: LoASConfig, case: LayerCase, k_block: int | None = None) -> dict:
    """What the core must produce: output spikes, membranes, and the counter values that follow
    from the data (matches, saturations). ``k_block``: the positions per run the driver used
    (partial sums saturate at each block boundary); ``cfg.k_block`` by default."""
    x = case.spikes.to(torch.int64)
    w = case.weights.to(torch.int64)
    T, M, K = x.shape
    N = w.shape[1]
    if case.strong:
        x = apply_strong(x)
    kb = k_block or cfg.k_block(case.sequential)
    acc = torch.zeros(T, M, N, dtype=torch.int64)
    saturations = 0
    for k0 in range(0, K, kb):
        part = spmspm(x[:, :, k0:k0 + kb], w[k0:k0 + kb], fiber=cfg.fiber)
        total = acc + part
        acc = clamp(total, cfg.out_width)
        saturations += int((acc != total).any(0).sum())
    lif = cfg.lif.replace(threshold=case.threshold,
                          **({"leak_shift": case.leak_amount} if cfg.leak == "shift" else
                             {"leak_mul": case.leak_amount} if cfg.leak == "mul" else {}))
    s, V, _ = lif_integer(acc.permute(1, 2, 0).reshape(M * N, T), lif, case.tmask)
    matches = match_count_sequential(x, w) if case.sequential else match_count(x, w)
    return {"spikes": s.view(M, N, T).permute(2, 0, 1).contiguous(), "membrane": V.view(M, N),
            "matches": matches, "saturations": saturations}


def _layer(g, T, M, K, N, spike_density, weight_density, *, extreme=False):
    x = (torch.rand(T, M, K, generator=g) < spike_density).to(torch.uint8)
    if extreme:
        values = torch.tensor([-128, 127, -127, 1, -1])[torch.randint(0, 5, (K, N), generator=g)]
    else:
        values = torch.randint(-128, 128, (K, N), generator=g)
    w = values * (torch.rand(K, N, generator=g) < weight_density)
    return x, w.to(torch.int64)


def loas_cases(cfg: LoASConfig, suite: str = "regression", *, seed: int = 1) -> list[LayerCase]:
    """Named suites of layers sized from the configuration:

    * ``regression``: shapes that are not multiples of the tiles (M, N, K), K below one fiber,
      K over several fibers and over the buffer (K blocks), spike densities 0 %..100 %, weight
      densities 0.1 %..100 %, all-silent rows, all-zero weight columns, +-127/-128 weights,
      random masks and thresholds, FTP and sequential, strong on and off;
    * ``quick``: three of those, for smoke tests.
    """
    g = torch.Generator().manual_seed(seed)
    T, P, W = cfg.T, cfg.pes, cfg.fiber
    full = (1 << T) - 1
    kb = cfg.k_block(False)
    M1 = P + max(1, P // 2) + 1                 # more than one row tile, not a multiple
    N1 = cfg.tile_n + max(1, cfg.tile_n // 2) + 1
    K_small = max(1, W // 2 - 1)                # below one fiber
    K_multi = 2 * W + 3                         # several fibers, a partial last one
    K_split = min(kb + W // 2 + 1, 2 * kb)      # beyond the buffer: two K blocks
    rnd_mask = lambda: int(torch.randint(0, full + 1, (1,), generator=g))
    cases = []

    def add(name, x, w, **kw):
        cases.append(LayerCase(name, x, w, **kw))

    x, w = _layer(g, T, M1, K_multi, N1, 0.3, 0.2)
    add("random_multi_fiber", x, w, threshold=100)
    x, w = _layer(g, T, M1, K_small, N1, 0.5, 0.5)
    add("k_below_fiber", x, w, threshold=60, tmask=rnd_mask())
    x, w = _layer(g, T, P, K_split, N1, 0.25, 0.1)
    add("k_blocks", x, w, threshold=150)
    if suite == "quick":
        return cases
    x, w = _layer(g, T, M1, K_multi, N1, 0.0, 0.3)
    add("all_silent", x, w, threshold=1)
    x, w = _layer(g, T, P, K_multi, N1, 1.0, 1.0, extreme=True)
    add("dense_extremes", x, w, threshold=1000, tmask=full)
    x, w = _layer(g, T, M1, K_multi, N1, 0.6, 0.001)
    add("weights_0.1pct", x, w, threshold=10)
    x, w = _layer(g, T, M1, K_multi, N1, 0.05, 0.6)
    x[:, ::3, :] = 0                            # all-silent rows
    w[:, ::2] = 0                               # all-zero weight columns
    add("silent_rows_zero_columns", x, w, threshold=30, tmask=rnd_mask())
    x, w = _layer(g, T, M1, K_multi, N1, 0.4, 0.3)
    add("strong", x, w, threshold=80, strong=True)
    if cfg.k_max >= W * T:
        x, w = _layer(g, T, M1, K_multi, N1, 0.3, 0.25)
        add("sequential", x, w, threshold=90, sequential=True)
        x, w = _layer(g, T, P, K_multi, N1, 0.5, 0.2)
        add("sequential_strong", x, w, threshold=50, sequential=True, strong=True,
            tmask=rnd_mask())
    x, w = _layer(g, T, 2 * P + 1, K_multi, 3 * cfg.tile_n + 1, 0.2, 0.05)
    add("more_tiles", x, w, threshold=40, tmask=rnd_mask())
    return cases


def replace_case(case: LayerCase, **changes) -> LayerCase:
    return dataclasses.replace(case, **changes)
