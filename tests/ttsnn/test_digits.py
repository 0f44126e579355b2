"""The TT digits network: its blocks, counts and a short training run (float, torch)."""

import pytest
import torch

from snnforge.golden.ttsnn.digits import DigitsTTNet, encode_images, train_digits
from snnforge.golden.ttsnn.report import tt_params


def test_blocks_shapes_and_counts():
    x = encode_images(torch.full((3, 8, 8), 16.0), T=4)
    assert x.shape == (4, 3, 1, 8, 8) and x.sum() == 4 * 3 * 64
    for block in ("dense", "stt", "ptt", "htt"):
        net = DigitsTTNet(block, channels=6, rank=3)
        assert net(x).shape == (3, 10)
        assert net.block_params() == (6 * 6 * 9 if block == "dense" else tt_params(6, 6, 3))
    htt = DigitsTTNet("htt", T=4, channels=6, rank=3)
    # Two full steps, two with G1 and G4 only.
    assert htt.block_macs_per_step() == (2 * tt_params(6, 6, 3) + 2 * 2 * 6 * 3) * 64 / 4
    with pytest.raises(ValueError, match="block must be one of dense, stt, ptt, htt"):
        DigitsTTNet("tt")


def test_a_short_training_run_learns():
    result = train_digits("ptt", epochs=5, channels=6, rank=3)
    assert result.accuracy > 0.5            # ten classes: chance is 0.1
