"""Tensor-train cores of a 3x3 convolution (TT-SNN, DATE 2024) and the kernels they compose to.

A weight ``W[Cout, Cin, 3, 3]`` is permuted to ``(Cin, kh, kw, Cout)`` and split by TT-SVD with one
rank ``r`` into four cores, each a bias-free convolution:

=====  ===========  ==================  ====================================
core   shape        convolution         role
=====  ===========  ==================  ====================================
G1     [r, Cin]     1x1, Cin -> r       the only core that sees spikes
G2     [r, r, 3]    3x1 (spans kh)      ``G2[out, in, kh]``, zero padding (1, 0)
G3     [r, r, 3]    1x3 (spans kw)      ``G3[out, in, kw]``, zero padding (0, 1)
G4     [Cout, r]    1x1, r -> Cout
=====  ===========  ==================  ====================================

The pipelines per time step (``o1 = G1 * s``): STT ``G4*(G3*(G2*o1))``; PTT
``G4*((G2*o1 + G3*o1)/2)``; HTT = PTT for the first ``htt_full`` steps, ``G4*o1`` after. Each
equals one plain convolution (:func:`composed_kernel`): STT a 3x3 with the outer-product kernel,
PTT a cross-shaped 3x3 whose corners are exactly 0, HTT's late steps a 1x1 with ``G4 @ G1``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .params import MODES

__all__ = ["MODES", "TTCores", "decompose", "init_cores", "reconstruct", "composed_kernel",
           "check_mode", "check_htt_full"]



def check_mode(mode: str) -> str:
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
    return mode


def check_htt_full(htt_full: int, T: int) -> int:
    """``htt_full``: the steps of HTT that run the full PTT path, 0 < htt_full <= T."""
    if not isinstance(htt_full, int) or not 0 < htt_full <= T:
        raise ValueError(f"htt_full must be an integer in 1..T={T}, not {htt_full!r}")
    return htt_full


@dataclass(frozen=True)
class TTCores:
    """The four cores of one TT conv layer (float or integer tensors)."""

    g1: torch.Tensor      # [r, Cin]
    g2: torch.Tensor      # [r, r, 3]   out, in, kh
    g3: torch.Tensor      # [r, r, 3]   out, in, kw
    g4: torch.Tensor      # [Cout, r]

    def __post_init__(self):
        r, cin = self.g1.shape
        for name, core, shape in (("g2", self.g2, (r, r, 3)), ("g3", self.g3, (r, r, 3)),
                                  ("g4", self.g4, (self.g4.shape[0], r))):
            if tuple(core.shape) != shape:
                raise ValueError(f"{name} must have shape {list(shape)} for rank {r}, "
                                 f"not {list(core.shape)}")

    @property
    def rank(self) -> int:
        return self.g1.shape[0]

    @property
    def cin(self) -> int:
        return self.g1.shape[1]

    @property
    def cout(self) -> int:
        return self.g4.shape[0]

    def map(self, fn) -> TTCores:
        return TTCores(*(fn(c) for c in (self.g1, self.g2, self.g3, self.g4)))

    def params(self) -> int:
        return sum(c.numel() for c in (self.g1, self.g2, self.g3, self.g4))


def _check_weight(w: torch.Tensor) -> torch.Tensor:
    if w.dim() != 4 or tuple(w.shape[2:]) != (3, 3):
        raise ValueError(f"w must be a 3x3 conv weight [Cout, Cin, 3, 3], not {list(w.shape)}")
    return w


def _check_rank(rank) -> int:
    if not isinstance(rank, int) or rank < 1:
        raise ValueError(f"rank must be a positive integer, not {rank!r}")
    return rank


def decompose(w: torch.Tensor, rank: int) -> TTCores:
    """TT-SVD of ``w [Cout, Cin, 3, 3]`` with every TT rank ``rank`` (float64).

    Sequential truncated SVDs of the unfoldings of ``(Cin, kh, kw, Cout)``; a rank larger than an
    unfolding allows is padded with zero singular directions, so the cores always have the
    requested shapes and, at full rank, reconstruct ``w`` exactly (to rounding)."""
    _check_rank(rank)
    x = _check_weight(w).detach().to(torch.float64).permute(1, 2, 3, 0)    # Cin, kh, kw, Cout
    cin, cout = x.shape[0], x.shape[3]
    dims = (cin, 3, 3, cout)
    cores, left, carry = [], 1, x.reshape(cin, -1)
    for k in range(3):
        mat = carry.reshape(left * dims[k], -1)
        u, s, vh = torch.linalg.svd(mat, full_matrices=False)
        keep = min(rank, s.numel())
        core = torch.zeros(left, dims[k], rank, dtype=torch.float64)
        core[:, :, :keep] = u[:, :keep].reshape(left, dims[k], keep)
        rest = torch.zeros(rank, mat.shape[1], dtype=torch.float64)
        rest[:keep] = s[:keep, None] * vh[:keep]
        cores.append(core)
        left, carry = rank, rest
    c1, c2, c3 = cores                          # [1, Cin, r], [r, 3, r], [r, 3, r]
    c4 = carry.reshape(rank, cout)              # [r, Cout]
    return TTCores(g1=c1[0].T.contiguous(), g2=c2.permute(2, 0, 1).contiguous(),
                   g3=c3.permute(2, 0, 1).contiguous(), g4=c4.T.contiguous())


def init_cores(cin: int, cout: int, rank: int, *, init: str, w: torch.Tensor | None = None,
               generator: torch.Generator | None = None) -> TTCores:
    """Cores to train from: ``init="tt-svd"`` decomposes the given pretrained ``w``;
    ``init="random"`` draws each core as PyTorch initialises a conv (uniform in
    ``+-1/sqrt(fan_in)``) and ignores ``w``. The
    choice is explicit: the released TT-SNN code meant the first and silently did the second."""
    _check_rank(rank)
    if init == "tt-svd":
        if w is None:
            raise ValueError("init='tt-svd' needs the pretrained weight w")
        if tuple(w.shape[:2]) != (cout, cin):
            raise ValueError(f"w has shape {list(w.shape)}, not [{cout}, {cin}, 3, 3]")
        return decompose(w, rank)
    if init != "random":
        raise ValueError(f"init must be 'tt-svd' or 'random', not {init!r}")

    def uniform(shape, fan_in):
        bound = fan_in ** -0.5
        return (torch.rand(shape, generator=generator, dtype=torch.float64) * 2 - 1) * bound

    return TTCores(g1=uniform((rank, cin), cin), g2=uniform((rank, rank, 3), 3 * rank),
                   g3=uniform((rank, rank, 3), 3 * rank), g4=uniform((cout, rank), rank))


def reconstruct(cores: TTCores) -> torch.Tensor:
    """The 3x3 weight ``W[o, i, h, w] = sum G4[o,a] G3[a,b,w] G2[b,c,h] G1[c,i]`` (= STT)."""
    return torch.einsum("oa,abw,bch,ci->oihw", cores.g4, cores.g3, cores.g2, cores.g1)


def composed_kernel(cores: TTCores, mode: str, *, late: bool = False) -> torch.Tensor:
    """The plain convolution kernel one step of ``mode`` equals: ``[Cout, Cin, 3, 3]`` for STT
    and PTT (``late`` HTT steps: ``[Cout, Cin, 1, 1]``). PTT's kernel is the cross of the two
    branches, each halved; its four corners are exactly zero."""
    check_mode(mode)
    g1, g2, g3, g4 = cores.g1, cores.g2, cores.g3, cores.g4
    if mode == "htt" and late:
        return (g4 @ g1)[:, :, None, None]
    if mode == "stt":
        return reconstruct(cores)
    kernel = torch.zeros(cores.cout, cores.cin, 3, 3, dtype=torch.promote_types(g1.dtype,
                                                                                 g2.dtype))
    kernel[:, :, :, 1] += torch.einsum("oa,abh,bi->oih", g4, g2, g1) / 2
    kernel[:, :, 1, :] += torch.einsum("oa,abw,bi->oiw", g4, g3, g1) / 2
    return kernel
