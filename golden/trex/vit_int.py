"""The digits ViT in integers: every weight layer through the crossbar tile's digital twin, every
head through the integer attention, the glue (bias, requantization, LayerNorm, ReLU, residual,
pooling) in integer arithmetic written out here.

Quantization (calibrated on sample images with the float model): weights symmetric int8 per
matrix (``s_w = max|W| / 127``); activations int8 per tensor (``s = max|a| / 127`` over the
calibration set); the residual stream int16 at one scale; biases int32 at ``s_x s_w``.

* ``requant(acc, M, S) = sat((acc * M + 2^(S-1)) >> S)`` to int8 (int16 for the residual), ``M /
  2^S`` the float rescale as a 16-bit fraction (:func:`rescale`).
* Matmul: ``acc = xbar(x, W) + b`` -- ``x`` int8 applied bit-serially (the patch embedding's
  pixels 0..16 with 6 bits), ``xbar`` the tile with its ADC (``ops.matmul``), then ``requant``.
* LayerNorm of an int16 row ``x [d]``: ``c = d x - sum x`` (exact: ``d`` times the centred
  value), ``sigma = max(1, isqrt(sum c^2 // d))`` (``d`` times the standard deviation), ``r =
  2^K // sigma``, the normalized value ``n = (c r + 2^(K-F-1)) >> (K - F)`` (``F`` fraction
  bits), ``y = sat8(((n g + 2^(F+G-1)) >> (F + G)) + b)`` with ``g = round(gamma / s_y 2^G)``,
  ``b = round(beta / s_y)``; the input scale cancels (``K, F, G = 32, 12, 8``).
* Attention per head: ``ops.attention(q, k, v, score_mult, score_shift)`` (int8 in, int8 out at
  ``v``'s scale), the score scale ``s_q s_k / sqrt(d_head)`` as ``score_scale``'s pair.
* Residual: ``x += requant16(a * M >> S)`` from the block's int8 scale to the stream's.
* Head: the final LayerNorm, the mean over tokens (``(sum + N/2) // N``), the classifier's
  crossbar matmul plus bias; the prediction is the largest.

``ops`` is the backend: :class:`GoldenOps` (``golden.trex.xbar.xbar_mvm``,
``golden.trex.attention.attention_head``) or the RTL's (``snnforge.sim.trex.vit_rtl``), which
count their work too. The same code runs both, so equal unit outputs give equal predictions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from .attention import attention_head
from .params import LN_F, LN_G, LN_K, AttentionParams, XbarParams, score_scale
from .vit import DigitsViT, patches, reuse_sources
from .xbar import xbar_mvm

__all__ = ["IntViT", "GoldenOps", "rescale", "requant", "int_layernorm", "linear",
           "run_encoders", "from_archive", "PIXEL_BITS"]

PIXEL_BITS = 6          # pixels 0..16 as signed inputs


def rescale(ratio: float, bits: int = 16) -> tuple[int, int]:
    """``(M, S)`` with ``M / 2^S ~ ratio``, ``M < 2^bits``."""
    if ratio <= 0:
        raise ValueError(f"ratio must be positive, not {ratio}")
    S = 0
    while round(ratio * (1 << (S + 1))) < (1 << bits) and S < 40:
        S += 1
    return round(ratio * (1 << S)), S


def requant(acc: torch.Tensor, M: int, S: int, bits: int = 8) -> torch.Tensor:
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    return ((acc * M + ((1 << S) >> 1)) >> S).clamp(lo, hi)


def int_layernorm(x: torch.Tensor, g: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """The module docstring's integer LayerNorm over the last dimension."""
    d = x.shape[-1]
    c = d * x - x.sum(-1, keepdim=True)
    var = (c * c).sum(-1, keepdim=True) // d
    sigma = torch.tensor([max(1, math.isqrt(int(v))) for v in var.reshape(-1)],
                         dtype=torch.int64).reshape(var.shape)
    r = (1 << LN_K) // sigma
    n = (c * r + (1 << (LN_K - LN_F - 1))) >> (LN_K - LN_F)
    shift = LN_F + LN_G
    return (((n * g + (1 << (shift - 1))) >> shift) + b).clamp(-128, 127)


def linear(ops, layer: dict, x: torch.Tensor, in_bits: int = 8) -> torch.Tensor:
    """``x [..., K]`` through a layer's crossbar matmul and bias, then its ``requant`` (when the
    layer has one)."""
    flat = x.reshape(-1, x.shape[-1])
    acc = (ops.matmul(flat, layer["w"], in_bits) + layer["b"]).reshape(*x.shape[:-1], -1)
    return requant(acc, *layer["requant"]) if "requant" in layer else acc


def from_archive(arrays: dict) -> dict:
    """:meth:`IntViT.archive`'s arrays as the layers :func:`run_encoders` takes."""
    layers = {}
    for key, value in arrays.items():
        parts = key.split(".")
        if len(parts) == 3:
            layers.setdefault(f"{parts[0]}.{parts[1]}", {})[parts[2]] = (
                tuple(int(v) for v in value) if parts[2] == "requant"
                else torch.as_tensor(np.asarray(value), dtype=torch.int64))
        else:
            layers[key] = tuple(int(v) for v in value)
    return layers


def run_encoders(x: torch.Tensor, layers: dict, sources: dict, ops, *, heads: int,
                 count: int) -> tuple[torch.Tensor, dict]:
    """Encoders ``0 .. count - 1`` on the int16 residual stream ``x [B, N, dim]``; encoder ``j``
    in ``sources`` reuses encoder ``sources[j]``'s attention output through its TB. Returns the
    stream and every encoder's attention output (int8 ``[B, N, dim]``, by encoder)."""
    B, N, dim = x.shape
    dh = dim // heads
    outputs = {}
    for j in range(count):
        if j in sources:
            t = int_layernorm(outputs[sources[j]], **layers[f"{j}.tb_ln"])
            a = linear(ops, layers[f"{j}.tb"], t).clamp(min=0)
        else:
            h = int_layernorm(x, **layers[f"{j}.ln1"])
            qkv = [linear(ops, layers[f"{j}.{n}"], h) for n in ("q", "k", "v")]
            split = [t.reshape(B, N, heads, dh).transpose(1, 2).reshape(B * heads, N, dh)
                     for t in qkv]
            o = ops.attention(*split, *layers[f"{j}.score"])
            o = o.reshape(B, heads, N, dh).transpose(1, 2).reshape(B, N, -1)
            a = linear(ops, layers[f"{j}.proj"], o)
        outputs[j] = a
        x = (x + requant(a, *layers[f"{j}.a_res"], bits=16)).clamp(-32768, 32767)
        h2 = int_layernorm(x, **layers[f"{j}.ln2"])
        hidden = linear(ops, layers[f"{j}.fc1"], h2).clamp(min=0)
        mo = linear(ops, layers[f"{j}.fc2"], hidden)
        x = (x + requant(mo, *layers[f"{j}.mlp_res"], bits=16)).clamp(-32768, 32767)
    return x, outputs


@dataclass
class GoldenOps:
    """The golden backend: the tile's digital twin and the integer attention; counts the work
    as the RTL's counters would."""
    tile: XbarParams
    attn: AttentionParams
    adc_bits: int | None = None
    adc_shift: int | None = None
    counts: dict = field(default_factory=lambda: {"reads": 0, "conversions": 0,
                                                  "vectors": 0, "attention_rows": 0,
                                                  "attention_macs": 0})

    def matmul(self, x: torch.Tensor, w: torch.Tensor, in_bits: int = 8) -> torch.Tensor:
        out = xbar_mvm(x, w, self.tile, in_bits=in_bits, adc_bits=self.adc_bits,
                       adc_shift=self.adc_shift)
        self.counts["reads"] += out.reads
        self.counts["conversions"] += out.conversions
        self.counts["vectors"] += x.shape[0] * -(-w.shape[1] // self.tile.n_out)
        return out.y

    def attention(self, q, k, v, score_mult: int, score_shift: int) -> torch.Tensor:
        H, N, d = q.shape
        self.counts["attention_rows"] += H * N
        self.counts["attention_macs"] += H * N * N * 2 * d
        return torch.stack([attention_head(q[h], k[h], v[h], self.attn, score_mult=score_mult,
                                           score_shift=score_shift)[0] for h in range(H)])


def _q8(w: torch.Tensor) -> tuple[torch.Tensor, float]:
    scale = float(w.abs().max()) / 127 or 1.0
    return torch.round(w / scale).clamp(-127, 127).long(), scale


class IntViT:
    """The integer model of a trained :class:`~.vit.DigitsViT` under a reuse set, calibrated on
    ``calib`` images (module docstring). ``tile``'s ``rows`` must hold ``mlp`` inputs."""

    def __init__(self, model: DigitsViT, calib: torch.Tensor, reuse=(), *,
                 tile: XbarParams = XbarParams(), attn: AttentionParams | None = None):
        cfg = model.cfg
        if tile.rows < max(cfg.mlp, cfg.dim, cfg.patch_pixels):
            raise ValueError(f"the tile's {tile.rows} rows cannot hold the model's "
                             f"{max(cfg.mlp, cfg.dim)} inputs")
        self.cfg, self.model, self.tile = cfg, model, tile
        self.sources = reuse_sources(reuse, cfg.depth)
        self.attn = attn or AttentionParams(max_tokens=cfg.tokens, d_head=cfg.d_head)
        if self.attn.max_tokens < cfg.tokens or self.attn.d_head != cfg.d_head:
            raise ValueError("attn must take the model's tokens and d_head")
        self.scales = self._calibrate(calib)
        self.layers = self._quantize()

    # -- calibration and quantization ----------------------------------------------------------
    @torch.no_grad()
    def _calibrate(self, images) -> dict:
        """Largest magnitude of every activation the integer model quantizes."""
        m, cfg = self.model, self.cfg
        top = {}

        def see(name, t):
            top[name] = max(top.get(name, 0.0), float(t.abs().max()))

        x = m.embed(patches(images / 16, cfg.patch)) + m.pos
        see("res", x)
        outputs = {}
        for j, enc in enumerate(m.encoders):
            if j in self.sources:
                ln = enc.tb[0](outputs[self.sources[j]])
                see(f"{j}.tb_ln", ln)
                a = enc.tb(outputs[self.sources[j]])
            else:
                h = enc.norm1(x)
                see(f"{j}.ln1", h)
                att = enc.attn
                for name in ("q", "k", "v"):
                    see(f"{j}.{name}", getattr(att, name)(h))
                a = att(h)
            see(f"{j}.a", a)
            outputs[j] = a
            x = x + a
            see("res", x)
            h2 = enc.norm2(x)
            see(f"{j}.ln2", h2)
            hidden = enc.mlp[1](enc.mlp[0](h2))
            see(f"{j}.hidden", hidden)
            mo = enc.mlp(h2)
            see(f"{j}.mlp", mo)
            x = x + mo
            see("res", x)
        see("final_ln", m.norm(x))
        return {k: (v / 127 if k != "res" else v / 32767) or 1.0 for k, v in top.items()}

    def _linear(self, lin, s_in, s_out=None):
        w, s_w = _q8(lin.weight.detach().T)
        layer = {"w": w, "b": torch.round(lin.bias.detach() / (s_in * s_w)).long()}
        if s_out is not None:
            layer["requant"] = rescale(s_in * s_w / s_out)
        return layer

    def _ln(self, ln, s_out):
        g = torch.round(ln.weight.detach() / s_out * (1 << LN_G)).long()
        return {"g": g, "b": torch.round(ln.bias.detach() / s_out).long()}

    def _quantize(self) -> dict:
        m, cfg, s = self.model, self.cfg, self.scales
        # The patch embedding takes pixels p (0..16) where the float model takes p / 16.
        L = {"embed": self._linear(m.embed, 1.0 / 16, s["res"])}
        L["pos"] = torch.round(m.pos.detach() / s["res"]).long()
        for j, enc in enumerate(m.encoders):
            if j in self.sources:
                L[f"{j}.tb_ln"] = self._ln(enc.tb[0], s[f"{j}.tb_ln"])
                L[f"{j}.tb"] = self._linear(enc.tb[1], s[f"{j}.tb_ln"], s[f"{j}.a"])
            else:
                L[f"{j}.ln1"] = self._ln(enc.norm1, s[f"{j}.ln1"])
                for name in ("q", "k", "v"):
                    L[f"{j}.{name}"] = self._linear(getattr(enc.attn, name), s[f"{j}.ln1"],
                                                    s[f"{j}.{name}"])
                L[f"{j}.proj"] = self._linear(enc.attn.proj, s[f"{j}.v"], s[f"{j}.a"])
                L[f"{j}.score"] = score_scale(
                    self.attn, s[f"{j}.q"] * s[f"{j}.k"] / math.sqrt(cfg.d_head))
            L[f"{j}.a_res"] = rescale(s[f"{j}.a"] / s["res"])
            L[f"{j}.ln2"] = self._ln(enc.norm2, s[f"{j}.ln2"])
            L[f"{j}.fc1"] = self._linear(enc.mlp[0], s[f"{j}.ln2"], s[f"{j}.hidden"])
            L[f"{j}.fc2"] = self._linear(enc.mlp[2], s[f"{j}.hidden"], s[f"{j}.mlp"])
            L[f"{j}.mlp_res"] = rescale(s[f"{j}.mlp"] / s["res"])
        L["final_ln"] = self._ln(m.norm, s["final_ln"])
        L["head"] = self._linear(m.head, s["final_ln"])
        return L

    def archive(self) -> dict[str, "np.ndarray"]:
        """The encoders' integer parameters as flat arrays (``"{j}.{layer}.{field}"``, pairs as
        ``"{j}.{pair}"``): what ``snnforge run trex --in params=P.npz`` takes
        (:func:`from_archive` reads it back)."""
        out = {}
        for name, layer in self.layers.items():
            if not name.split(".")[0].isdigit():
                continue
            if isinstance(layer, dict):
                for key, value in layer.items():
                    out[f"{name}.{key}"] = np.asarray(value, dtype=np.int64)
            else:
                out[name] = np.asarray(layer, dtype=np.int64)
        return out

    def tiles(self) -> int:
        """Tiles that hold every weight matrix the model uses, resident (a matrix of ``K``
        inputs and ``N`` outputs takes ``ceil(K / rows) x ceil(N / n_out)``)."""
        return sum(-(-layer["w"].shape[0] // self.tile.rows)
                   * -(-layer["w"].shape[1] // self.tile.n_out)
                   for layer in self.layers.values() if isinstance(layer, dict) and "w" in layer)

    # -- inference ------------------------------------------------------------------------------
    def embed(self, images: torch.Tensor, ops) -> torch.Tensor:
        """The residual stream ``[B, tokens, dim]`` (int16) of ``[B, 8, 8]`` images (pixels
        0..16): the patch embedding's crossbar matmul, bias, requantization and positions."""
        cfg, L = self.cfg, self.layers
        px = patches(images, cfg.patch).round().long()
        x = requant(ops.matmul(px.reshape(-1, cfg.patch_pixels), L["embed"]["w"], PIXEL_BITS)
                    + L["embed"]["b"], *L["embed"]["requant"], bits=16)
        return (x.reshape(images.shape[0], cfg.tokens, -1) + L["pos"]).clamp(-32768, 32767)

    def head(self, x: torch.Tensor, ops) -> torch.Tensor:
        """Logits of the residual stream after the encoders: the final LayerNorm, the mean
        over tokens, the classifier."""
        N = x.shape[1]
        pooled = int_layernorm(x, **self.layers["final_ln"]).sum(1)
        pooled = torch.div(pooled + N // 2, N, rounding_mode="floor")
        return linear(ops, self.layers["head"], pooled)

    def logits(self, images: torch.Tensor, ops) -> torch.Tensor:
        """Integer logits ``[B, classes]`` of ``[B, 8, 8]`` images (pixels 0..16)."""
        x = self.embed(images, ops)
        x, _ = run_encoders(x, self.layers, self.sources, ops, heads=self.cfg.heads,
                            count=self.cfg.depth)
        return self.head(x, ops)

    def predict(self, images, ops) -> torch.Tensor:
        return self.logits(images, ops).argmax(-1)
