"""Layers and expected results for the LoAS core, shared by the cocotb regression
(``snnforge.sim.loas.bench``) and the Amaranth-simulator tests."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ...golden.common.lif import LIFParams
from ...golden.loas import apply_strong, match_count, match_count_sequential, neurons, partial_sums
from ...hw.loas.config import LoASConfig
from ...hw.loas.driver import LayerSettings

__all__ = ["LayerCase", "NetworkCase", "loas_cases", "network_cases", "expected_layer",
           "expected_network", "lif_of"]


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


def lif_of(cfg: LoASConfig, threshold: int, leak_amount: int) -> LIFParams:
    """The core's neuron with its register values."""
    return cfg.lif.replace(threshold=threshold).with_leak_amount(leak_amount)


def expected_layer(cfg: LoASConfig, case: LayerCase, k_block: int | None = None) -> dict:
    """What the core must produce: output spikes, membranes, and the counter values that follow
    from the data (matches, saturations). ``k_block``: the positions per run the driver used
    (partial sums saturate at each block boundary); ``cfg.k_block`` by default."""
    x = case.spikes.to(torch.int64)
    w = case.weights.to(torch.int64)
    if case.strong:
        x = apply_strong(x)
    O, saturations = partial_sums(x, w, fiber=cfg.fiber, acc_width=cfg.out_width,
                                  k_block=k_block or cfg.k_block(case.sequential))
    spikes, membrane = neurons(O, lif_of(cfg, case.threshold, case.leak_amount), case.tmask)
    matches = match_count_sequential(x, w) if case.sequential else match_count(x, w)
    return {"spikes": spikes, "membrane": membrane, "matches": matches,
            "saturations": saturations}


def _spikes(g, T, M, K, density):
    return (torch.rand(T, M, K, generator=g) < density).to(torch.uint8)


def _weights(g, K, N, density, *, extreme=False):
    if extreme:
        values = torch.tensor([-128, 127, -127, 1, -1])[torch.randint(0, 5, (K, N), generator=g)]
    else:
        values = torch.randint(-128, 128, (K, N), generator=g)
    return (values * (torch.rand(K, N, generator=g) < density)).to(torch.int64)


def _layer(g, T, M, K, N, spike_density, weight_density, *, extreme=False):
    x = _spikes(g, T, M, K, spike_density)
    return x, _weights(g, K, N, weight_density, extreme=extreme)


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
    # Accumulator extremes: columns of all +127 / all -128 (and mixes) against rows that fire at
    # every step (|O| = 128 K, pseudo accumulator at its limit) or only at step 0 (the correction
    # accumulators at theirs), over two K blocks (carried partial sums at their limit too).
    x = torch.zeros(T, P, K_split, dtype=torch.uint8)
    x[:, 0::2] = 1
    x[0, 1::2] = 1
    column = [torch.full((K_split,), 127), torch.full((K_split,), -128),
              torch.tensor([127, -128]).repeat(K_split)[:K_split], torch.full((K_split,), -127)]
    w = torch.stack([column[n % 4] for n in range(N1)], 1).to(torch.int64)
    w[K_split // 2, 3::4] = 127
    add("accumulator_extremes", x, w, threshold=(1 << (cfg.mem_width - 1)) - 1)
    # 0.1 % weight density over a full buffer of positions (at least two nonzeros).
    K_sparse = max(kb, W)
    w = torch.zeros(K_sparse * N1, dtype=torch.int64)
    picks = torch.randperm(K_sparse * N1, generator=g)[:max(2, round(0.001 * K_sparse * N1))]
    w[picks] = torch.randint(-128, 128, (len(picks),), generator=g)
    add("weights_0.1pct", _spikes(g, T, M1, K_sparse, 0.6), w.view(K_sparse, N1), threshold=10)
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


@dataclass
class NetworkCase:
    """Layers run one after another (``LoASDriver.run_layers``): ``layers`` holds
    ``(weights, threshold)`` per layer; ``chained`` the boundaries expected to stay on chip."""
    name: str
    spikes: torch.Tensor
    layers: list
    chained: list
    strong: bool = False
    leak_amount: int = 1

    def settings(self):
        return [LayerSettings(w, threshold, self.leak_amount) for w, threshold in self.layers]

    def describe(self):
        T, M, K = self.spikes.shape
        sizes = " -> ".join([str(K)] + [str(w.shape[1]) for w, _ in self.layers])
        return f"{self.name}: T={T} M={M} layers {sizes} strong={self.strong}"


def expected_network(cfg: LoASConfig, case: NetworkCase, k_blocks=None) -> dict:
    """Golden model of a network: each layer's :func:`expected_layer` on the previous layer's
    expected spikes; the last layer's outputs, counters summed over the layers."""
    x = case.spikes
    matches = saturations = 0
    for i, (w, threshold) in enumerate(case.layers):
        want = expected_layer(cfg, LayerCase(f"{case.name}[{i}]", x, w, threshold=threshold,
                                             leak_amount=case.leak_amount, strong=case.strong),
                              k_blocks[i] if k_blocks else None)
        matches += want["matches"]
        saturations += want["saturations"]
        x = want["spikes"]
    return {**want, "matches": matches, "saturations": saturations}


def network_cases(cfg: LoASConfig, *, seed: int = 1) -> list[NetworkCase]:
    """Networks sized from the configuration: three chained layers over two tiles of rows, a
    strong-mode chain, and a layer too wide to chain (its outputs go through the host)."""
    g = torch.Generator().manual_seed(seed + 100)
    T, P, W, tn = cfg.T, cfg.pes, cfg.fiber, cfg.tile_n
    M = P + max(1, P // 2) + 1

    def network(name, K, widths, spike_density, weight_density, chained, strong=False):
        x = _spikes(g, T, M, K, spike_density)
        layers, inp = [], x
        for N in widths:
            w = _weights(g, inp.shape[2], N, weight_density)
            # A threshold at the median positive current keeps about half the neurons firing,
            # so every layer hands the next one real work.
            lif = lif_of(cfg, 1, 1)
            O, _ = partial_sums(apply_strong(inp) if strong else inp, w, fiber=W,
                                acc_width=cfg.out_width)
            positive = O[O > 0]
            threshold = int(positive.float().median()) if positive.numel() else 1
            threshold = max(1, min(threshold, (1 << (cfg.mem_width - 1)) - 1))
            layers.append((w, threshold))
            inp = neurons(O, lif.replace(threshold=threshold))[0]
        return NetworkCase(name, x, layers, chained, strong=strong)

    n_wide = min(cfg.n_max + 3, cfg.k_block(False))     # more columns than one run holds
    fits = lambda n: min(n, cfg.n_max)                  # a whole row of outputs per run: chained
    cases = [
        network("chain_3_layers", 2 * W + 3, [fits(2 * tn + 1), fits(3 * tn + 2), tn + 3], 0.4,
                0.3, [True, True]),
        network("chain_strong", W + 5, [fits(tn + 5), 2 * tn + 1], 0.5, 0.4, [True],
                strong=True),
    ]
    if n_wide > cfg.n_max:
        cases.append(network("host_boundary", W, [n_wide, tn + 1], 0.5, 0.05, [False]))
    return cases
