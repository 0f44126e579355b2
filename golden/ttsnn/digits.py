"""A small spiking conv net on scikit-learn's digits with a TT-decomposed block, trained in torch:
dense 3x3 against STT, PTT and HTT (accuracy, parameters, MACs).

Network, T steps, input ``[T, B, 1, 8, 8]`` (thermometer-coded pixels): stem 3x3 conv 1 ->
``channels`` (dense, as in TT-SNN) + neuron; one block conv ``channels -> channels`` (dense 3x3 or
TT with rank ``rank``) + neuron; 2x2 average pool; FC ``channels * 16 -> 10``; the class scores
are the FC outputs averaged over T. The neuron is TT-SNN's (:class:`.model.NeuronParams`,
surrogate :class:`.model.Spike`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..common.digits import load_digits_split
from .model import NeuronParams, Spike, is_late, tt_step
from .report import tt_params
from .tt import MODES, TTCores, check_htt_full, init_cores

__all__ = ["BLOCKS", "DigitsTTNet", "encode_images", "neuron_spikes", "train_digits",
           "DigitsResult"]

BLOCKS = ("dense",) + MODES


def encode_images(images: torch.Tensor, T: int) -> torch.Tensor:
    """Thermometer code of 8x8 images (0..16): ``[T, N, 1, 8, 8]`` float 0/1."""
    levels = 16.0 * (torch.arange(T, dtype=torch.float32) + 0.5) / T
    return (images[None, :, None] > levels.view(T, 1, 1, 1, 1)).float()


def neuron_spikes(y, neuron: NeuronParams):
    """TT-SNN's neuron over the steps of ``y [T, ...]`` (float): spikes with the surrogate
    gradient, the reset's spike detached."""
    u = s = None
    out = []
    for t in range(y.shape[0]):
        u = y[t] if t == 0 else neuron.lam * u * (1 - s.detach()) + y[t]
        s = Spike.apply(u, neuron.theta, neuron.a)
        out.append(s)
    return torch.stack(out)


class DigitsTTNet(nn.Module):
    """The network of the module docstring; ``block`` is ``dense``, ``stt``, ``ptt`` or
    ``htt``."""

    def __init__(self, block: str = "ptt", *, T: int = 4, channels: int = 8, rank: int = 4,
                 htt_full: int | None = None, seed: int = 0,
                 neuron: NeuronParams = NeuronParams()):
        super().__init__()
        if block not in BLOCKS:
            raise ValueError(f"block must be one of {', '.join(BLOCKS)}, not {block!r}")
        self.block, self.T, self.neuron = block, T, neuron
        self.htt_full = check_htt_full(-(-T // 2) if htt_full is None else htt_full, T)
        g = torch.Generator().manual_seed(seed)
        torch.manual_seed(seed)
        self.stem = nn.Conv2d(1, channels, 3, padding=1, bias=False)
        if block == "dense":
            self.conv = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        else:
            cores = init_cores(channels, channels, rank, init="random", generator=g)
            self.g = nn.ParameterList([nn.Parameter(c.float()) for c in
                                       (cores.g1, cores.g2, cores.g3, cores.g4)])
        self.fc = nn.Linear(channels * 16, 10)
        self.channels, self.rank = channels, rank

    def cores(self) -> TTCores:
        return TTCores(*self.g)

    def forward(self, x):
        T, B = x.shape[:2]
        s1 = neuron_spikes(self.stem(x.flatten(0, 1)).unflatten(0, (T, B)) * 2, self.neuron)
        if self.block == "dense":
            y = self.conv(s1.flatten(0, 1)).unflatten(0, (T, B))
        else:
            cores = self.cores()
            y = torch.stack([tt_step(s1[t], cores, self.block,
                                     late=is_late(self.block, t, self.htt_full))[0]
                             for t in range(T)])
        s2 = neuron_spikes(y, self.neuron)
        pooled = F.avg_pool2d(s2.flatten(0, 1), 2).flatten(1)
        return self.fc(pooled).unflatten(0, (T, B)).mean(0)

    def block_params(self) -> int:
        return (self.conv.weight.numel() if self.block == "dense"
                else tt_params(self.channels, self.channels, self.rank))

    def block_macs_per_step(self) -> float:
        """MACs of the block conv per time step (8x8 map), averaged over T for HTT."""
        per = self.block_params() * 64
        if self.block != "htt":
            return float(per)
        late = 2 * self.channels * self.rank * 64
        return (self.htt_full * per + (self.T - self.htt_full) * late) / self.T


@dataclass
class DigitsResult:
    block: str
    accuracy: float
    block_params: int
    total_params: int
    block_macs_per_step: float
    net: DigitsTTNet


def train_digits(block: str, *, T: int = 4, channels: int = 8, rank: int = 4, epochs: int = 30,
                 seed: int = 0, lr: float = 3e-3) -> DigitsResult:
    """Train one network (Adam, cross-entropy, batches of 64) and test it on the held-out 25 %."""
    x_train, y_train, x_test, y_test = load_digits_split(seed)
    s_train, s_test = encode_images(x_train, T), encode_images(x_test, T)
    net = DigitsTTNet(block, T=T, channels=channels, rank=rank, seed=seed)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    order = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        perm = torch.randperm(len(y_train), generator=order)
        for i in range(0, len(perm), 64):
            idx = perm[i:i + 64]
            loss = F.cross_entropy(net(s_train[:, idx]), y_train[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    with torch.no_grad():
        accuracy = float((net(s_test).argmax(1) == y_test).float().mean())
    return DigitsResult(block, accuracy, net.block_params(),
                        sum(p.numel() for p in net.parameters()), net.block_macs_per_step(), net)
