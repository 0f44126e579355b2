"""The exported DT-SNN ViT in integers: int8 weights, integer LIF registers, per-layer time-step
masks (:func:`export`), and its forward pass (:func:`int_forward`) over two operations a core
provides -- a spiking linear layer and an integer matmul of spikes by small integers -- so that
the same pass runs on the reference here, on LoAS's golden model and on the LoAS RTL
(``hw.loas.dtsnn``).

Export rules (the float model is ``golden.dtsnn.model``):

* a layer reading the residual stream (mean of ``n`` spike tensors) reads their concatenation
  with its weights stacked ``n`` times, divided by ``n``; the head reads every token's stream the
  same way, divided by ``16 n``;
* weights ``W`` (threshold 1) are scaled per layer so that the largest is 127
  (``s = max|W| / 127``), rounded to int8; the threshold register is ``floor(1 / s) + 1`` (the
  float spike ``H > 1`` on the integer membrane);
* the leak ``H = V/2 + I`` is the core's shift leak ``k = 1`` (``V - (V >> 1)``, which rounds
  half a unit up where the float halves exactly);
* attention: ``Y`` (SSA: ``(q k^T) v``; STAtten: ``q (K_b^T V_b)``) is exact in integers; its LIF
  runs on ``Y`` units with threshold ``floor(0.5 / scale) + 1`` (the float ``H scale > 0.5``),
  on the host (the core's LIF takes its currents from its own matmul);
* masks: each gated layer's ``T``-bit mask goes to its LIF mask register (policy ``integrate``:
  a masked step's spike is suppressed, the neuron runs on).

The integer model differs from the float one only by the weight rounding and the leak rounding;
``report["agreement"]`` measures how often their predictions agree.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field

import numpy as np
import torch

from ..common.lif import LIFParams, lif_integer
from .model import (ATTENTION_SCALE, ATTENTION_THRESHOLD, GATED_LAYERS, TOKENS, SpikingViT,
                    ViTShape)

__all__ = ["IntLayer", "IntViT", "export", "int_forward", "reference_linear",
           "reference_matmul", "attention_pairs", "MEM_WIDTH"]

#: Membrane width of the integer neurons (the LoAS core's default).
MEM_WIDTH = 16


@dataclass
class IntLayer:
    """One spiking linear layer: int8 weights ``[K, N]`` over its concatenated operand, the
    threshold register, the time-step mask, and the float value of one integer unit."""
    name: str
    weights: np.ndarray
    threshold: int
    tmask: int
    scale: float


@dataclass
class IntViT:
    shape: ViTShape
    layers: dict                    # name -> IntLayer (embed, b<i>.q/k/v/o/mlp1/mlp2, head)
    attn_threshold: int
    attn_masks: list                # per block: the attention LIF's mask
    notes: list = field(default_factory=list)

    @property
    def T(self) -> int:
        return self.shape.tmax

    def save(self, path) -> None:
        """The network as one ``.npz`` (weights by layer name, the rest as JSON)."""
        meta = {"shape": dataclasses.asdict(self.shape), "attn_threshold": self.attn_threshold,
                "attn_masks": self.attn_masks, "notes": self.notes,
                "layers": {n: {"threshold": l.threshold, "tmask": l.tmask, "scale": l.scale}
                           for n, l in self.layers.items()}}
        np.savez(path, meta=np.array(json.dumps(meta)),
                 **{f"w:{n}": l.weights for n, l in self.layers.items()})

    @classmethod
    def load(cls, path) -> "IntViT":
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(str(data["meta"]))
            layers = {n: IntLayer(n, data[f"w:{n}"], **spec)
                      for n, spec in meta["layers"].items()}
        return cls(ViTShape(**meta["shape"]), layers, meta["attn_threshold"],
                   meta["attn_masks"], meta["notes"])

    def with_masks_open(self) -> "IntViT":
        """The same network with every time step open (the fixed-``T_max`` comparison)."""
        full = (1 << self.T) - 1
        return IntViT(self.shape, {n: dataclasses.replace(l, tmask=full)
                                   for n, l in self.layers.items()},
                      self.attn_threshold, [full] * len(self.attn_masks), self.notes)

    def sparsity(self) -> float:
        """Zero fraction of every integer weight, over all layers."""
        total = sum(layer.weights.size for layer in self.layers.values())
        zero = sum(int((layer.weights == 0).sum()) for layer in self.layers.values())
        return zero / total


def _quantize(name, w: torch.Tensor, tmask: int, threshold: float = 1.0) -> IntLayer:
    w = w.detach().double().numpy()
    peak = float(np.abs(w).max())
    s = peak / 127 if peak else 1.0
    limit = (1 << (MEM_WIDTH - 1)) - 1
    if threshold / s >= limit:
        s = threshold / (limit - 1)
    q = np.clip(np.round(w / s), -128, 127).astype(np.int64)
    return IntLayer(name, q, int(math.floor(threshold / s)) + 1, tmask, s)


def export(model: SpikingViT) -> IntViT:
    """The integer network of a trained float model (see the module docstring)."""
    shape = model.shape
    masks = dict(zip(GATED_LAYERS(shape), model.masks()))
    full = (1 << shape.tmax) - 1
    layers = {"embed": _quantize("embed", model.embed, masks["embed"])}
    for b, block in enumerate(model.blocks):
        width = 1 + 2 * b                         # stream entries before this block's o
        for n in ("q", "k", "v"):
            layers[f"b{b}.{n}"] = _quantize(f"b{b}.{n}", (block[n] / width).repeat(width, 1),
                                            masks[f"b{b}.{n}"])
        layers[f"b{b}.o"] = _quantize(f"b{b}.o", block["o"], masks[f"b{b}.o"])
        layers[f"b{b}.mlp1"] = _quantize(f"b{b}.mlp1",
                                         (block["mlp1"] / (width + 1)).repeat(width + 1, 1),
                                         masks[f"b{b}.mlp1"])
        layers[f"b{b}.mlp2"] = _quantize(f"b{b}.mlp2", block["mlp2"], masks[f"b{b}.mlp2"])
    n = 1 + 2 * shape.depth
    layers["head"] = _quantize("head", (model.head / (n * TOKENS)).repeat(n * TOKENS, 1), full)
    scale = ATTENTION_SCALE[shape.attention]
    attn = int(math.floor(ATTENTION_THRESHOLD / scale)) + 1
    notes = ["weights rounded to int8 per layer (largest -> 127), threshold floor(1/s) + 1",
             "leak V/2 as V - (V >> 1) (rounds half a unit up)",
             f"attention LIF on Y units, threshold {attn} (float: Y * {scale:g} > 0.5), on the "
             f"host"]
    return IntViT(shape, layers, attn, [masks[f"b{b}.attn"] for b in range(shape.depth)], notes)


def _lif(currents: np.ndarray, threshold: int, tmask: int, T: int) -> np.ndarray:
    """The integer LIF (shift leak 1, hard reset, 16-bit membrane) on ``currents [T, ...]``."""
    p = LIFParams(T=T, in_width=32, mem_width=MEM_WIDTH, leak="shift", leak_shift=1,
                  threshold=threshold, reset="hard")
    flat = torch.from_numpy(currents.reshape(T, -1).T.copy())
    spikes, _ = lif_integer(flat, p, tmask)[:2]
    return spikes.T.numpy().reshape(currents.shape).astype(np.uint8)


async def reference_linear(operand: np.ndarray, layer: IntLayer) -> np.ndarray:
    """A spiking linear layer in plain integers: ``LIF(operand @ W)`` (no partial-sum limits)."""
    currents = np.einsum("tmk,kn->tmn", operand.astype(np.int64), layer.weights)
    return _lif(currents, layer.threshold, layer.tmask, operand.shape[0])


async def reference_matmul(pairs) -> list:
    return [x.astype(np.int64) @ w for x, w in pairs]


def attention_pairs(shape: ViTShape, q, k, v):
    """The attention's first products as (spikes, small integers) pairs, and how to finish.

    ``q, k, v``: spikes ``[T, B, N, dim]``. Returns ``(pairs, finish)``: ``await
    matmul(pairs)`` gives the first products; ``finish(first)`` returns the second pairs and
    ``assemble(second) -> Y [T, B, N, dim]`` (int64)."""
    T, B, N, _ = q.shape
    H, d = shape.heads, shape.head_dim
    qh, kh, vh = (x.reshape(T, B, N, H, d).transpose(0, 1, 3, 2, 4) for x in (q, k, v))
    if shape.attention == "ssa":
        keys = [(t, b, h) for t in range(T) for b in range(B) for h in range(H)]
        first = [(qh[i], kh[i].T) for i in keys]                        # S = q k^T  [N, N]

        def finish(S):
            second = [(vh[i].T, s.T) for i, s in zip(keys, S)]          # Y^T = v^T S^T [d, N]

            def assemble(Yt):
                Y = np.zeros((T, B, H, N, d), dtype=np.int64)
                for (t, b, h), y in zip(keys, Yt):
                    Y[t, b, h] = y.T
                return Y.transpose(0, 1, 3, 2, 4).reshape(T, B, N, H * d)
            return second, assemble
        return first, finish
    c = shape.chunk
    keys = [(t0, b, h) for t0 in range(0, T, c) for b in range(B) for h in range(H)]

    def block(x, t0, b, h):
        return x[t0:t0 + c, b, h].reshape(c * N, d)                     # steps' tokens merged
    first = [(block(kh, *i).T, block(vh, *i)) for i in keys]            # A = K_b^T V_b  [d, d]

    def finish(A):
        second = [(block(qh, *i), a) for i, a in zip(keys, A)]          # Y_b = Q_b A [cN, d]

        def assemble(Yb):
            Y = np.zeros((T, B, H, N, d), dtype=np.int64)
            for (t0, b, h), y in zip(keys, Yb):
                Y[t0:t0 + c, b, h] = y.reshape(c, N, d)
            return Y.transpose(0, 1, 3, 2, 4).reshape(T, B, N, H * d)
        return second, assemble
    return first, finish


async def int_forward(net: IntViT, x: np.ndarray, linear, matmul):
    """The integer network on token inputs ``x [T, B, 16, 20]`` (0/1): ``await linear(operand
    [T, M, K], layer)`` computes a spiking linear layer, ``await matmul(pairs)`` the attention
    products. Returns the output spikes ``[T, B, 10]``."""
    T, B, N, _ = x.shape
    rows = lambda a: a.reshape(T, B * N, -1)                          # noqa: E731
    stream = [await linear(rows(x), net.layers["embed"])]
    for b in range(net.shape.depth):
        operand = np.concatenate(stream, axis=2)
        q, k, v = [(await linear(operand, net.layers[f"b{b}.{n}"])).reshape(T, B, N, -1)
                   for n in ("q", "k", "v")]
        pairs, finish = attention_pairs(net.shape, q, k, v)
        second, assemble = finish(await matmul(pairs))
        Y = assemble(await matmul(second))
        a = _lif(Y, net.attn_threshold, net.attn_masks[b], T)
        stream.append(await linear(rows(a), net.layers[f"b{b}.o"]))
        h = await linear(np.concatenate(stream, axis=2), net.layers[f"b{b}.mlp1"])
        stream.append(await linear(h, net.layers[f"b{b}.mlp2"]))
    # The head: every token's stream, the stream entries innermost (the export's stacking).
    head = np.concatenate(stream, axis=2).reshape(T, B, -1)
    return await linear(head, net.layers["head"])
