"""Synthetic layers with the sparsities of the LoAS paper's Table II (``shared/papers/loas.md`` s. 11).

The authors' real spike/weight matrices are large files outside this repository; these generators
draw iid matrices with the same statistics so that the cycle models can be exercised at scale.

**Shapes are ours** (the paper gives only sparsities), as ``(M, K, N)``:

* ``R-L19`` = (16, 4608, 256), as given by our issue;
* ``V-L8`` = (16, 2304, 512): VGG16-CIFAR conv8, 256 -> 512 channels, 3x3, 4x4 output map;
* ``A-L4`` = (64, 3456, 256): AlexNet conv4, 384 -> 256 channels, 3x3, 8x8 map -- chosen so that the
  paper's match count (repo ``Layer_3``, 212,801) is reproduced within about 10 %;
* ``AlexNet``, ``VGG16``, ``ResNet19`` (whole-network statistics) reuse the shape of their
  representative layer (A-L4, V-L8, R-L19).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .core import MAX_T, check_spikes, check_weights, spike_words, strong_mask

__all__ = ["WorkloadStats", "TABLE_II", "popcount_distribution", "synthetic_layer", "layer_stats"]


@dataclass(frozen=True)
class WorkloadStats:
    """Target statistics of a workload (fractions in 0..1) and an ``(M, K, N)`` shape.

    ``spike_sparsity``: zeros of ``x [T, M, K]``; ``silent_normal`` / ``silent_strong``: silent
    neurons after packing, normal / strong mode; ``weight_sparsity``: zeros of ``w``.
    """

    spike_sparsity: float
    silent_normal: float
    silent_strong: float
    weight_sparsity: float
    shape: tuple | None = None

    def __post_init__(self):
        for name in ("spike_sparsity", "silent_normal", "silent_strong", "weight_sparsity"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v <= 1:
                raise ValueError(f"{name} must be a fraction in 0..1, not {v!r}")
        if self.silent_strong < self.silent_normal:
            raise ValueError(f"silent_strong must be >= silent_normal={self.silent_normal}, "
                             f"not {self.silent_strong}")
        if self.shape is not None:
            _check_shape(self.shape)


def _check_shape(shape) -> tuple[int, int, int]:
    if (not isinstance(shape, (tuple, list)) or len(shape) != 3
            or any(isinstance(v, bool) or not isinstance(v, int) or v <= 0 for v in shape)):
        raise ValueError(f"shape must be three positive ints (M, K, N), not {shape!r}")
    return tuple(shape)


#: Paper Table II (CIFAR-10, T = 4) with our shapes (see the module docstring).
TABLE_II = {
    "AlexNet": WorkloadStats(0.812, 0.713, 0.767, 0.983, (64, 3456, 256)),
    "VGG16": WorkloadStats(0.823, 0.741, 0.796, 0.982, (16, 2304, 512)),
    "ResNet19": WorkloadStats(0.687, 0.596, 0.661, 0.969, (16, 4608, 256)),
    "A-L4": WorkloadStats(0.758, 0.632, 0.697, 0.989, (64, 3456, 256)),
    "V-L8": WorkloadStats(0.881, 0.765, 0.868, 0.968, (16, 2304, 512)),
    "R-L19": WorkloadStats(0.579, 0.514, 0.556, 0.997, (16, 4608, 256)),
}


def _stats(name_or_stats) -> WorkloadStats:
    if isinstance(name_or_stats, WorkloadStats):
        return name_or_stats
    if isinstance(name_or_stats, str):
        if name_or_stats not in TABLE_II:
            raise ValueError(f"name_or_stats must be one of {', '.join(TABLE_II)} or a "
                             f"WorkloadStats, not {name_or_stats!r}")
        return TABLE_II[name_or_stats]
    if isinstance(name_or_stats, dict):
        return WorkloadStats(**name_or_stats)
    raise ValueError(f"name_or_stats must be a Table II name, a WorkloadStats or a dict, "
                     f"not {type(name_or_stats).__name__}")


def popcount_distribution(name_or_stats, T: int = 4) -> list[float]:
    """``P[j]``, ``j = 0..T``: probability that a neuron fires in exactly ``j`` of the T steps.

    ``P[0]`` = normal silent fraction ``s``; ``P[1]`` = ``silent_strong - s`` (the neurons strong
    mode silences); the remaining mass ``r = 1 - P[0] - P[1]`` is spread as ``j = 2 + Binomial(T-2, p)``
    with ``p`` chosen so that the mean popcount is ``T * (1 - spike_sparsity)``, i.e. the ``j >= 2``
    neurons have mean ``mu = (T*(1 - spike_sparsity) - P[1]) / r``.

    Fallback (only for T other than the table's 4): when ``mu`` falls outside ``[2, T]`` it is
    clamped, so the silent and single-spike fractions stay exact and the spike density misses its
    target. For ``T == 1`` every non-silent neuron fires once (``P = [s, 1 - s]``).
    """
    st = _stats(name_or_stats)
    if isinstance(T, bool) or not isinstance(T, int) or not 1 <= T <= MAX_T:
        raise ValueError(f"T must be an integer in 1..{MAX_T}, not {T!r}")
    s = st.silent_normal
    if T == 1:
        return [s, 1.0 - s]
    q1 = min(st.silent_strong - s, 1.0 - s)
    r = 1.0 - s - q1
    P = [s, q1] + [0.0] * (T - 1)
    if r <= 0:
        return P
    mu = (T * (1.0 - st.spike_sparsity) - q1) / r
    mu = min(max(mu, 2.0), float(T))
    n = T - 2
    p = (mu - 2.0) / n if n else 0.0
    for i in range(n + 1):
        P[2 + i] = r * math.comb(n, i) * p ** i * (1.0 - p) ** (n - i)
    return P


def synthetic_layer(name_or_stats, *, T: int = 4, seed: int = 0, shape=None):
    """Random layer with the given Table II statistics.

    Every neuron independently draws its popcount from :func:`popcount_distribution`, then that many
    distinct time steps uniformly; every weight is independently nonzero with probability
    ``1 - weight_sparsity``, uniform over -128..127 without 0. Deterministic for a ``seed``.
    Table II was measured at T = 4; for another ``T`` the same fractions are kept (spike density
    per step, silent and single-spike fractions), with the fallback of :func:`popcount_distribution`.

    Parameters
    ----------
    name_or_stats : str (a key of :data:`TABLE_II`), WorkloadStats or dict of its fields
    T : int
    seed : int
    shape : (M, K, N), optional; defaults to the workload's shape

    Returns
    -------
    spikes : uint8 ``[T, M, K]``
    w : int8 ``[K, N]``
    """
    st = _stats(name_or_stats)
    P = popcount_distribution(st, T)
    if shape is None:
        if st.shape is None:
            raise ValueError("shape must be given when the statistics carry none")
        shape = st.shape
    M, K, N = _check_shape(shape)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"seed must be an int, not {seed!r}")
    g = torch.Generator().manual_seed(seed)

    cdf = torch.tensor(P, dtype=torch.float64).cumsum(0)
    u = torch.rand(M, K, generator=g, dtype=torch.float64)
    pc = torch.searchsorted(cdf, u, right=True).clamp(max=T)                 # [M, K]
    # The ranks of iid uniform keys are a uniform random permutation of the T steps; keeping the
    # steps of rank < popcount picks a uniform subset of that size.
    ranks = torch.rand(M, K, T, generator=g).argsort(-1).argsort(-1)
    spikes = (ranks < pc.unsqueeze(-1)).permute(2, 0, 1).to(torch.uint8).contiguous()

    nz = torch.rand(K, N, generator=g, dtype=torch.float64) < 1.0 - st.weight_sparsity
    vals = torch.randint(0, 255, (K, N), generator=g) - 128                   # -128..126
    vals = vals + (vals >= 0).to(vals.dtype)                                  # -128..-1, 1..127
    w = torch.where(nz, vals, torch.zeros((), dtype=vals.dtype)).to(torch.int8)
    return spikes, w


def layer_stats(spikes, w) -> dict:
    """Realized Table II statistics of a layer: ``spike_sparsity``, ``silent_normal``,
    ``silent_strong``, ``weight_sparsity`` (fractions)."""
    x = check_spikes(spikes)
    w = check_weights(w)
    words = spike_words(x)
    n = words.numel()
    silent = int((words == 0).sum())
    single = int(strong_mask(words).sum())
    return {
        "spike_sparsity": 1.0 - int(x.sum()) / x.numel() if x.numel() else 0.0,
        "silent_normal": silent / n if n else 0.0,
        "silent_strong": (silent + single) / n if n else 0.0,
        "weight_sparsity": 1.0 - int((w != 0).sum()) / w.numel() if w.numel() else 0.0,
    }
