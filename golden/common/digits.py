"""scikit-learn's digits (8x8 images, shipped inside its wheel) as spike trains: the small real
data set every family's example network trains on."""

from __future__ import annotations

import torch

__all__ = ["load_digits_split", "encode"]


def load_digits_split(seed: int = 0, test_fraction: float = 0.25):
    """The digits data set split into train/test (stratified, deterministic)."""
    # scikit-learn is a development dependency: imported only where the data is wanted.
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    data = load_digits()
    x_train, x_test, y_train, y_test = train_test_split(
        data.images, data.target, test_size=test_fraction, random_state=seed, stratify=data.target)
    as_t = lambda a, dt: torch.tensor(a, dtype=dt)
    return (as_t(x_train, torch.float32), as_t(y_train, torch.int64),
            as_t(x_test, torch.float32), as_t(y_test, torch.int64))


def encode(images: torch.Tensor, T: int = 4) -> torch.Tensor:
    """Thermometer encoding: pixel (0..16) fires at step t iff it exceeds 16 (t + 0.5) / T.
    Returns binary spikes ``[T, N, 64]`` (uint8): dark pixels stay silent."""
    flat = images.reshape(images.shape[0], -1)
    levels = 16.0 * (torch.arange(T, dtype=torch.float32) + 0.5) / T
    return (flat.unsqueeze(0) > levels.view(T, 1, 1)).to(torch.uint8)
