"""A small spiking vision transformer with dynamic time steps (DT-SNN), on scikit-learn's digits.

Float model (``torch``, surrogate gradients), built so that every layer maps onto the LoAS core:

* **Tokens.** The 8x8 image cut into 2x2 patches (16 tokens); at step ``t`` a token's input is
  its 4 thermometer-coded pixels (``golden.common.digits.encode``) and a one-hot code of its
  position (16 inputs that fire at every step: the position embedding as weights on always-on
  inputs). Patch embedding: ``Linear(20, dim)`` + LIF.
* **Residual stream.** A list of spike tensors; a layer that reads the stream reads their sum
  (``W (s_1 + s_2 + ...) = [s_1, s_2, ...] [W; W; ...]``: on the core, one matmul over the
  concatenated spikes), so every layer input stays binary.
* **Encoder** (``depth`` of them): ``q, k, v = LIF(stream W_q|k|v)``; spiking attention per head
  (``d = dim / heads``) without softmax -- ``"ssa"`` (Spikformer): ``Y[t] = (q[t] k[t]^T) v[t]``
  scaled by 1/8; ``"statten"`` (STAtten, ``shared/papers/trex.md`` section 6): steps in blocks
  of ``chunk`` consecutive steps, ``A = sum_{t in block} k[t]^T v[t]`` (d x d), ``Y[t] = q[t] A``
  scaled by 1/4 (1 / the token map's height); then an attention LIF (threshold 0.5);
  ``o = LIF(a W_o)`` joins the stream; MLP ``m = LIF(LIF(stream W_1) W_2)`` joins the stream.
* **Head.** The stream summed over tokens, ``Linear(dim, 10)`` + LIF; the class is the output
  neuron with most spikes (cross entropy on spike counts).

LIF (Spikformer's ``tau = 2``): ``H = V/2 + I``, spike ``H > threshold`` (1, attention 0.5),
hard reset (detached), fast-sigmoid surrogate.

**Dynamic time steps** (``shared/papers/dtsnn.md``, snnforge's definition): a score ``a[l, t]``
per gated layer (every LIF but the head's) and step, initialised to +2; the gate
``g = [a > 0]`` with a sigmoid straight-through gradient multiplies the layer's output spikes;
the neuron itself runs ungated (a masked step integrates and resets as usual: LIF policy
``integrate``). A regulariser ``lam * sum sigmoid(a)`` trades accuracy against active steps.
``T_eff`` is the mean over gated layers of their open steps. Fixed-T baselines: the first ``T``
steps open in every layer, gates frozen.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..common.digits import encode, load_digits_split
from ..common.prune import prune_step

__all__ = ["ViTShape", "SpikingViT", "ATTENTIONS", "tokens", "train_dtsnn", "evaluate",
           "GATED_LAYERS"]

ATTENTIONS = ("ssa", "statten")
#: Attention scales: Spikformer's 0.125; STAtten's 1/H for static images (a 4x4 token map).
ATTENTION_SCALE = {"ssa": 1 / 8, "statten": 1 / 4}
ATTENTION_THRESHOLD = 0.5


@dataclass(frozen=True)
class ViTShape:
    """Shape of the digits spiking ViT; validated at construction (``ValueError`` naming the
    parameter)."""
    tmax: int = 4
    dim: int = 32
    heads: int = 4
    mlp: int = 64
    depth: int = 2
    attention: str = "ssa"
    chunk: int = 2

    def __post_init__(self):
        for name in ("tmax", "dim", "heads", "mlp", "depth", "chunk"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, not {value!r}")
        if self.tmax > 16:
            raise ValueError(f"tmax must be at most 16 (the LoAS core's T), not {self.tmax}")
        if self.dim % self.heads:
            raise ValueError(f"heads={self.heads} must divide dim={self.dim}")
        if self.attention not in ATTENTIONS:
            raise ValueError(f"attention must be one of {', '.join(ATTENTIONS)}, not "
                             f"{self.attention!r}")
        if self.attention == "statten" and self.tmax % self.chunk:
            raise ValueError(f"chunk={self.chunk} must divide tmax={self.tmax} (STAtten's "
                             f"blocks of consecutive steps)")

    @property
    def head_dim(self) -> int:
        return self.dim // self.heads


def GATED_LAYERS(shape: ViTShape) -> list[str]:
    """Names of the gated LIF layers, in order (one row of the score matrix each)."""
    names = ["embed"]
    for b in range(shape.depth):
        names += [f"b{b}.{n}" for n in ("q", "k", "v", "attn", "o", "mlp1", "mlp2")]
    return names


TOKENS, PATCH_INPUTS = 16, 4


def tokens(images: torch.Tensor, T: int) -> torch.Tensor:
    """Images ``[B, 8, 8]`` -> token inputs ``[T, B, 16, 20]`` (uint8): per 2x2 patch its 4
    thermometer-coded pixels, then a one-hot position code that fires at every step."""
    spikes = encode(images, T).reshape(T, -1, 4, 2, 4, 2)          # [T, B, pr, r, pc, c]
    patches = spikes.permute(0, 1, 2, 4, 3, 5).reshape(T, -1, TOKENS, PATCH_INPUTS)
    position = torch.eye(TOKENS, dtype=torch.uint8).expand(T, patches.shape[1], -1, -1)
    return torch.cat([patches, position], dim=3)


class _Spike(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return (x > 0).to(x.dtype)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad / (1 + 10 * x.abs()) ** 2


class _Gate(torch.autograd.Function):
    """Hard gate ``a > 0`` forward, sigmoid derivative backward (the STE of dtsnn.md)."""
    @staticmethod
    def forward(ctx, a):
        ctx.save_for_backward(a)
        return (a > 0).to(a.dtype)

    @staticmethod
    def backward(ctx, grad):
        (a,) = ctx.saved_tensors
        s = torch.sigmoid(a)
        return grad * s * (1 - s)


def lif(currents: torch.Tensor, threshold: float = 1.0, gate: torch.Tensor | None = None):
    """Spikformer's LIF over ``currents [T, ...]``; the output spikes times ``gate [T]``."""
    v = torch.zeros_like(currents[0])
    out = []
    for t in range(currents.shape[0]):
        h = 0.5 * v + currents[t]
        s = _Spike.apply(h - threshold)
        v = h * (1 - s.detach())
        out.append(s if gate is None else s * gate[t])
    return torch.stack(out)


def mean(stream: list) -> torch.Tensor:
    """What a layer reading the residual stream sees: the mean of its spike tensors (a constant
    factor of their sum, folded into the reader's weights on the core)."""
    return sum(stream) / len(stream)


class SpikingViT(nn.Module):
    """The float model (see the module docstring); ``forward(x [T, B, 16, 20])`` returns the
    output spikes ``[T, B, 10]``."""

    def __init__(self, shape: ViTShape, seed: int = 0):
        super().__init__()
        self.shape = shape
        g = torch.Generator().manual_seed(seed)

        def linear(n_in, n_out, gain=1.0):
            return nn.Parameter(torch.randn(n_in, n_out, generator=g) * gain / n_in ** 0.5)
        d = shape.dim
        self.embed = linear(TOKENS + PATCH_INPUTS, d, 2.0)
        self.blocks = nn.ModuleList()
        for _ in range(shape.depth):
            # q, k and v start busier: sparse spikes make the attention products tiny.
            block = nn.ParameterDict({name: linear(d, d, 4.0) for name in ("q", "k", "v")})
            block["o"] = linear(d, d, 2.0)
            block["mlp1"] = linear(d, shape.mlp, 2.0)
            block["mlp2"] = linear(shape.mlp, d, 2.0)
            self.blocks.append(block)
        self.head = linear(d, 10, 4.0)
        self.scores = nn.Parameter(torch.full((len(GATED_LAYERS(shape)), shape.tmax), 2.0))
        self.frozen: torch.Tensor | None = None      # fixed gates (baselines; late DT training)

    def gates(self) -> torch.Tensor:
        """The gate matrix ``[layers, T]`` (0/1; a straight-through gradient to the scores)."""
        return self.frozen if self.frozen is not None else _Gate.apply(self.scores)

    def masks(self) -> list[int]:
        """Each gated layer's ``T``-bit mask (bit ``t`` = step ``t`` open)."""
        g = self.gates().detach().to(torch.int64)
        return [int((row << torch.arange(len(row))).sum()) for row in g]

    def attention(self, q, k, v):
        """Spiking attention on ``[T, B, N, dim]`` spikes -> the attention LIF's currents."""
        s = self.shape
        T, B, N, _ = q.shape
        q, k, v = (x.reshape(T, B, N, s.heads, s.head_dim).transpose(2, 3) for x in (q, k, v))
        if s.attention == "ssa":
            y = (q @ k.transpose(-1, -2)) @ v
        else:
            blocks = []
            for t0 in range(0, T, s.chunk):
                a = (k[t0:t0 + s.chunk].transpose(-1, -2) @ v[t0:t0 + s.chunk]).sum(0)
                blocks.append(q[t0:t0 + s.chunk] @ a)
            y = torch.cat(blocks)
        return y.transpose(2, 3).reshape(T, B, N, s.dim) * ATTENTION_SCALE[s.attention]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        g = self.gates()
        layer = iter(range(g.shape[0]))
        x = x.float()
        stream = [lif(x @ self.embed, gate=g[next(layer)])]
        for block in self.blocks:
            total = mean(stream)
            q, k, v = (lif(total @ block[n], gate=g[next(layer)]) for n in ("q", "k", "v"))
            a = lif(self.attention(q, k, v), ATTENTION_THRESHOLD, gate=g[next(layer)])
            stream.append(lif(a @ block["o"], gate=g[next(layer)]))
            h = lif(mean(stream) @ block["mlp1"], gate=g[next(layer)])
            stream.append(lif(h @ block["mlp2"], gate=g[next(layer)]))
        return lif(mean(stream).mean(2) @ self.head)

    def weights(self) -> list[tuple[str, nn.Parameter]]:
        """The weight matrices ``[in, out]`` by name, in layer order."""
        found = [("embed", self.embed)]
        for b, block in enumerate(self.blocks):
            found += [(f"b{b}.{n}", block[n]) for n in ("q", "k", "v", "o", "mlp1", "mlp2")]
        return found + [("head", self.head)]


def evaluate(model: SpikingViT, images, labels, batch: int = 256) -> float:
    """Test accuracy (most output spikes; ties: the lower class)."""
    model.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, len(labels), batch):
            out = model(tokens(images[i:i + batch], model.shape.tmax))
            correct += int((out.sum(0).argmax(1) == labels[i:i + batch]).sum())
    return correct / len(labels)


def train_dtsnn(shape: ViTShape = ViTShape(), *, epochs: int = 30, lam: float = 0.0,
                fixed_t: int | None = None, sparsity: float = 0.5, seed: int = 0,
                lr: float = 1e-2, progress=None):
    """Train on digits: cross entropy on spike counts (+ ``lam`` times the sum of the gates'
    sigmoids), gradual magnitude pruning of every weight matrix to ``sparsity`` (LoAS thrives on
    sparse weights); the last 30 % of the epochs with the masks fixed. ``fixed_t``: a fixed-T
    baseline (the first ``fixed_t`` steps open everywhere, gates frozen). ``progress(epoch,
    loss)`` is called after each epoch. Returns ``(model, report)``."""
    if fixed_t is not None and not 1 <= fixed_t <= shape.tmax:
        raise ValueError(f"fixed_t must be in 1..{shape.tmax}, not {fixed_t!r}")
    torch.manual_seed(seed)
    model = SpikingViT(shape, seed)
    if fixed_t is not None:
        rows = len(GATED_LAYERS(shape))
        model.frozen = (torch.arange(shape.tmax) < fixed_t).float().expand(rows, -1).clone()
    x_train, y_train, x_test, y_test = load_digits_split(seed)
    x = tokens(x_train, shape.tmax)
    params = [p for n, p in model.named_parameters() if n != "scores"]
    opt = torch.optim.Adam([{"params": params}, {"params": [model.scores], "lr": 0.02}], lr=lr)
    weights = [w for _, w in model.weights()]
    masks = [torch.ones_like(w) for w in weights]
    g = torch.Generator().manual_seed(seed)
    for epoch in range(epochs):
        if epoch == int(0.7 * epochs) and model.frozen is None:
            # The masks are constants at inference: fix them, let the weights adapt to them.
            model.frozen = model.gates().detach().clone()
        prune_step(weights, masks, epoch, epochs, sparsity)
        model.train()
        perm = torch.randperm(x.shape[1], generator=g)
        total = 0.0
        for i in range(0, len(perm), 64):
            idx = perm[i:i + 64]
            counts = model(x[:, idx]).sum(0)
            loss = nn.functional.cross_entropy(counts * 2.0, y_train[idx])
            if lam and model.frozen is None:
                loss = loss + lam * torch.sigmoid(model.scores).sum()
            opt.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            with torch.no_grad():
                for w, mask in zip(weights, masks):
                    w.mul_(mask)
            total += float(loss.detach()) * len(idx)
        if progress is not None:
            progress(epoch, total / len(perm))
    gates = model.gates().detach()
    report = {"test_accuracy": evaluate(model, x_test, y_test),
              "t_eff": float(gates.sum(1).mean()), "masks": model.masks(),
              "attention": shape.attention, "tmax": shape.tmax, "fixed_t": fixed_t,
              "lam": lam, "sparsity": [float((w == 0).float().mean()) for w in weights]}
    return model, report
