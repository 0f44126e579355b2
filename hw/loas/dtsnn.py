"""The DT-SNN spiking ViT (``golden.dtsnn``) on the LoAS core: the two operations its integer
forward pass needs, over a segment runner of ``hw.loas.deploy`` (``golden_segment`` for the
golden model of the core, ``rtl_segment`` for the RTL).

* **Spiking linear layer**: one LoAS layer, the layer's time-step mask in the LIF mask register
  (policy ``integrate``), the shift leak ``k = 1``.
* **Attention products** (spikes times small integers: ``q k^T``, ``v^T S^T``, ``K_b^T V_b``,
  ``Q_b A``): many small independent matmuls, stacked along K into one LoAS layer per group --
  pair ``i``'s spikes in its own rows and K range, its weights in that K range of shared
  columns, so its rows meet only its weights (the dual-sparse core skips the zeros; a
  block-diagonal layout would broadcast every pair's columns to every pair's rows) --, the
  spikes at the last step only, the threshold out of reach, the product read from the final
  membranes (``V = leak(0) + O[T-1] = O[T-1]``, exact while it fits the membrane). A group holds
  as many pairs as fit :data:`GROUP_K` positions (and one K block): each of its rows loads a mask
  for every fiber of the group's whole K, so its loading grows with the square of its pairs.

What stays on the host: the attention LIF (its currents come from two chained matmuls, not from
one core matmul) and the layout of operands between layers.
"""

from __future__ import annotations

import numpy as np

from .config import LoASConfig
from .deploy import DeployLayer

__all__ = ["loas_ops", "HOST_PATH", "GROUP_K"]

#: K positions an attention group spans at most. Measured on the ViT (SSA, 8 digits images) on
#: the ecp5-85k core: groups up to its 4,608-position K block took 114,957 end-to-end cycles
#: per image, groups of at most 512 positions 59,250.
GROUP_K = 512

HOST_PATH = ("the attention LIF (integer, golden.common.lif) on the two attention products' "
             "results; operand layouts (concatenated residual stream, head tokens)")


def loas_ops(run_segment, cfg: LoASConfig):
    """``(linear, matmul, counters)`` for ``golden.dtsnn.integer.int_forward`` over
    ``run_segment``; ``counters`` accumulates the core's counters of every run, plus ``runs``
    (LoAS layers run) and the compute cycles and matches of each kind (``linear_cycles``,
    ``attention_matches``, ...)."""
    if cfg.leak != "shift" or cfg.reset != "hard" or cfg.masked != "integrate":
        raise ValueError("the DT-SNN ViT needs a LoAS core with leak=shift, reset=hard, "
                         "masked=integrate")
    T = cfg.T
    counters: dict = {}

    def add(found, kind):
        for key, value in found.items():
            counters[key] = counters.get(key, 0) + int(value)
        for key in ("cycles", "matches"):
            if key in found:           # the golden model counts matches, not cycles
                counters[f"{kind}_{key}"] = counters.get(f"{kind}_{key}", 0) + int(found[key])
        counters["runs"] = counters.get("runs", 0) + 1

    async def linear(operand, layer):
        K, N = layer.weights.shape
        spikes, _, found = await run_segment(operand, [DeployLayer(
            layer.name, "dense", layer.weights, layer.threshold, 1, layer.tmask, (K,), (N,))])
        add(found, "linear")
        return spikes

    never = (1 << cfg.lif.threshold_bits) - 1

    async def matmul(pairs):
        results = []
        k_cap, n_cap = min(cfg.k_block(False), GROUP_K), cfg.n_max
        i = 0
        while i < len(pairs):
            group, k_sum = [], 0
            while i < len(pairs) and pairs[i][1].shape[1] <= n_cap and (
                    not group or k_sum + pairs[i][0].shape[1] <= k_cap):
                group.append(pairs[i])
                k_sum += pairs[i][0].shape[1]
                i += 1
            if not group:
                raise ValueError(f"an attention product of {pairs[i][1].shape[1]} columns "
                                 f"exceeds the core's n_max={n_cap}")
            m_sum = sum(x.shape[0] for x, _ in group)
            n = max(w.shape[1] for _, w in group)
            x_big = np.zeros((T, m_sum, k_sum), dtype=np.uint8)
            w_big = np.zeros((k_sum, n), dtype=np.int64)
            m0 = k0 = 0
            for x, w in group:
                if w.size and (w.min() < -128 or w.max() > 127):
                    raise ValueError(f"an attention operand exceeds int8 ({int(w.min())}.."
                                     f"{int(w.max())}): fewer tokens or a shorter chunk")
                x_big[T - 1, m0:m0 + x.shape[0], k0:k0 + x.shape[1]] = x
                w_big[k0:k0 + w.shape[0], :w.shape[1]] = w
                m0, k0 = m0 + x.shape[0], k0 + x.shape[1]
            _, membrane, found = await run_segment(x_big, [DeployLayer(
                "attention", "dense", w_big, never, 1, (1 << T) - 1, (k_sum,), (n,))])
            add(found, "attention")
            m0 = 0
            for x, w in group:
                results.append(membrane[m0:m0 + x.shape[0], :w.shape[1]].astype(np.int64))
                m0 += x.shape[0]
        return results

    return linear, matmul, counters
