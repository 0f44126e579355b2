"""A small vision transformer on scikit-learn's digits, with TReX's encoder-level attention
reuse, and the search that picks which encoders reuse.

Model (float, ``torch``): the 8 x 8 image cut into ``patch x patch`` patches (16 tokens of 4
pixels at ``patch = 2``), a linear patch embedding plus a learned position embedding, ``depth``
pre-norm encoders -- ``x += A_j``, ``A_j = proj(MHSA(LN1(x)))``; ``x += MLP(LN2(x))`` (ReLU) --
then a LayerNorm, the mean over tokens and a linear classifier.

**Attention reuse** (TReX, ``../shared/papers/trex.md`` section 1; our reading of the open
choices, section 1.2): an encoder ``j`` in ``reuse`` skips its Q/K/V projections, scores,
softmax and weighted sum and takes ``A_j = TB_j(A_src)`` instead, ``A_src`` the attention-block
output (after the projection) of the latest computing encoder before it; ``TB = LayerNorm ->
Linear -> ReLU`` (PIVOT's block semantics plus our TB). :func:`finetune` trains the TBs and
fine-tunes the rest with the reuse in place.

**The search** (:func:`search_reuse`): every reuse set, each fine-tuned briefly from the trained
base, its latency from a per-encoder cost (``cost(reuse)``, say the RTL's cycles); the most
accurate set within the latency target wins (ties: the faster).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import torch
from torch import nn

__all__ = ["ViTConfig", "DigitsViT", "train_vit", "finetune", "evaluate", "search_reuse",
           "patches", "reuse_sources"]


@dataclass(frozen=True)
class ViTConfig:
    """Shape of the digits ViT."""
    patch: int = 2
    dim: int = 32
    heads: int = 4
    mlp: int = 64
    depth: int = 4
    classes: int = 10

    def __post_init__(self):
        for name in ("patch", "dim", "heads", "mlp", "depth", "classes"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"{name} must be a positive integer, not {getattr(self, name)!r}")
        if 8 % self.patch:
            raise ValueError(f"patch must divide 8, not {self.patch}")
        if self.dim % self.heads:
            raise ValueError(f"heads={self.heads} must divide dim={self.dim}")

    @property
    def tokens(self) -> int:
        return (8 // self.patch) ** 2

    @property
    def patch_pixels(self) -> int:
        return self.patch * self.patch

    @property
    def d_head(self) -> int:
        return self.dim // self.heads


def patches(images: torch.Tensor, patch: int) -> torch.Tensor:
    """``[B, 8, 8]`` images -> ``[B, tokens, patch^2]`` pixels, patches in raster order."""
    B = images.shape[0]
    n = 8 // patch
    return (images.reshape(B, n, patch, n, patch).permute(0, 1, 3, 2, 4)
            .reshape(B, n * n, patch * patch))


def reuse_sources(reuse, depth: int) -> dict[int, int]:
    """``{j: source}`` for the reusing encoders: the latest computing encoder before each."""
    reuse = set(reuse)
    if 0 in reuse or not reuse <= set(range(depth)):
        raise ValueError(f"reuse must name encoders 1..{depth - 1} (encoder 0 computes its "
                         f"attention), not {sorted(reuse)}")
    sources, last = {}, 0
    for j in range(depth):
        if j in reuse:
            sources[j] = last
        else:
            last = j
    return sources


class Attention(nn.Module):
    def __init__(self, cfg: ViTConfig):
        super().__init__()
        self.cfg = cfg
        self.q, self.k, self.v = (nn.Linear(cfg.dim, cfg.dim) for _ in range(3))
        self.proj = nn.Linear(cfg.dim, cfg.dim)

    def forward(self, x):
        B, N, _ = x.shape
        h, dh = self.cfg.heads, self.cfg.d_head
        split = lambda t: t.reshape(B, N, h, dh).transpose(1, 2)
        q, k, v = split(self.q(x)), split(self.k(x)), split(self.v(x))
        a = torch.softmax(q @ k.transpose(-1, -2) / dh ** 0.5, dim=-1)
        return self.proj((a @ v).transpose(1, 2).reshape(B, N, -1))


class Encoder(nn.Module):
    def __init__(self, cfg: ViTConfig):
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(cfg.dim), nn.LayerNorm(cfg.dim)
        self.attn = Attention(cfg)
        self.mlp = nn.Sequential(nn.Linear(cfg.dim, cfg.mlp), nn.ReLU(),
                                 nn.Linear(cfg.mlp, cfg.dim))
        # The Transformation Block, used when this encoder reuses an earlier attention output.
        self.tb = nn.Sequential(nn.LayerNorm(cfg.dim), nn.Linear(cfg.dim, cfg.dim), nn.ReLU())

    def forward(self, x, reused=None):
        a = self.attn(self.norm1(x)) if reused is None else self.tb(reused)
        x = x + a
        return x + self.mlp(self.norm2(x)), a


class DigitsViT(nn.Module):
    """The digits ViT (module docstring); ``forward(images, reuse=())``."""

    def __init__(self, cfg: ViTConfig = ViTConfig()):
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Linear(cfg.patch_pixels, cfg.dim)
        self.pos = nn.Parameter(torch.randn(cfg.tokens, cfg.dim) * 0.02)
        self.encoders = nn.ModuleList(Encoder(cfg) for _ in range(cfg.depth))
        self.norm = nn.LayerNorm(cfg.dim)
        self.head = nn.Linear(cfg.dim, cfg.classes)

    def forward(self, images, reuse=()):
        sources = reuse_sources(reuse, self.cfg.depth)
        x = self.embed(patches(images / 16, self.cfg.patch)) + self.pos
        outputs = {}
        for j, encoder in enumerate(self.encoders):
            x, outputs[j] = encoder(x, outputs[sources[j]] if j in sources else None)
        return self.head(self.norm(x).mean(dim=1))


def _fit(model, x, y, *, epochs, lr, reuse=(), seed=0, batch=64):
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(1, epochs))
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(x), generator=g)
        for k in range(0, len(x), batch):
            idx = order[k:k + batch]
            opt.zero_grad()
            nn.functional.cross_entropy(model(x[idx], reuse), y[idx]).backward()
            opt.step()
        sched.step()
    model.eval()
    return model


def train_vit(x, y, cfg: ViTConfig = ViTConfig(), *, epochs: int = 60, lr: float = 3e-3,
              seed: int = 0) -> DigitsViT:
    """The base model, every encoder computing its attention."""
    torch.manual_seed(seed)
    return _fit(DigitsViT(cfg), x, y, epochs=epochs, lr=lr, seed=seed)


def finetune(base: DigitsViT, x, y, reuse, *, epochs: int = 15, lr: float = 1e-3,
             seed: int = 0) -> DigitsViT:
    """A copy of ``base`` fine-tuned with ``reuse`` in place (the TBs learn; the rest adapts).
    The empty set is fine-tuned too: the baseline gets the same training budget."""
    model = DigitsViT(base.cfg)
    model.load_state_dict(base.state_dict())
    return _fit(model, x, y, epochs=epochs, lr=lr, reuse=reuse, seed=seed)


@torch.no_grad()
def evaluate(model, x, y, reuse=()) -> float:
    model.eval()
    return float((model(x, reuse).argmax(1) == y).float().mean())


def search_reuse(base: DigitsViT, x_train, y_train, x_val, y_val, cost, target: float, *,
                 epochs: int = 15, seed: int = 0) -> list[dict]:
    """Every reuse set of encoders ``1 .. depth-1``: its latency ``cost(reuse)``, and (if within
    ``target``) its accuracy after fine-tuning. Returns the rows, the chosen one (most accurate
    within the target, ties to the faster) marked ``chosen``."""
    rows = []
    for k in range(base.cfg.depth):
        for reuse in itertools.combinations(range(1, base.cfg.depth), k):
            latency = cost(reuse)
            row = {"reuse": list(reuse), "latency": latency, "within_target": latency <= target}
            if row["within_target"]:
                model = finetune(base, x_train, y_train, reuse, epochs=epochs, seed=seed)
                row["accuracy"] = evaluate(model, x_val, y_val, reuse)
            rows.append(row)
    fitting = [r for r in rows if r["within_target"]]
    if fitting:
        best = max(fitting, key=lambda r: (r["accuracy"], -r["latency"]))
        best["chosen"] = True
    return rows
