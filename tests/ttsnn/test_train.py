"""Training the digits network with the fixed-point TT layer: by the golden model, and on the
generated RTL (every step's forward, BPTT and SGD update by the core under Verilator), the two
equal bit for bit."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from rich.console import Console

from snnforge.cli import main
from snnforge.generate import build_root, generate
from snnforge.golden.ttsnn.train import TTTrainParams, evaluate_fixed, train_golden
from snnforge.sim.ttsnn.trainer import _train_rtl, compare_weights, core_params

# A smaller network than the default (4 channels, rank 2, T = 3) keeps the Verilator build short.
TINY = {"channels": 4, "rank": 2, "T": 3}


def test_golden_fixed_point_training_learns():
    p = TTTrainParams(steps=300, seed=1)
    result = train_golden(p)
    assert np.mean(result.losses[-60:]) < np.mean(result.losses[:60]) - 0.3
    assert evaluate_fixed(result.net) > 0.5
    first = TTTrainParams(steps=1, seed=1)
    assert not torch.equal(result.net.cores.g2, train_golden(first).net.cores.g2), \
        "the cores never moved"


@pytest.mark.parametrize("mode", ["stt", "htt"])
def test_rtl_training_equals_golden_bit_for_bit(mode, tmp_path):
    p = TTTrainParams(steps=2, mode=mode, **TINY)
    files, counters, bench = _train_rtl(Console(quiet=True), p, generate("ttsnn", core_params(p)),
                                        tmp_path)
    golden = train_golden(p)
    assert compare_weights(golden.weights(), files) == []
    assert np.array_equal(files["losses"], golden.losses)
    assert bench.stats["jobs"] == 4 and counters["backward_cycles"] > 0
    assert counters["update_cycles"] > 0 and counters["weights"] > 0
    # The comparison can fail: a golden training with another learning rate differs.
    other = train_golden(p.replace(lr_shift=p.lr_shift - 3))
    problems = compare_weights(other.weights(), files)
    assert problems and any(line.startswith("g") for line in problems), problems


def test_snnforge_train_on_rtl(tmp_path):
    out = tmp_path / "train.json"
    opts = [a for k, v in {"steps": 2, **TINY}.items() for a in ("-O", f"{k}={v}")]
    result = CliRunner().invoke(main, ["train", "ttsnn", "--on-rtl", *opts, "--float-epochs",
                                       "1", "-o", str(out)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "weights equal the golden training's bit for bit" in result.output
    summary = json.loads(out.read_text())
    assert summary["rtl"]["weights_equal"] and summary["rtl"]["losses_equal"]
    assert 0 <= summary["float"]["accuracy"] <= 1 and summary["rtl"]["counters"]["busy"] > 0
    assert summary["rtl"]["accuracy"] == summary["golden"]["accuracy"]


@pytest.mark.parametrize("args, message", [
    (["train", "loas"], "'loas' has no training flow; trainable: ttsnn, dtsnn"),
    (["train", "nosuch"], "'nosuch' has no training flow; trainable: ttsnn, dtsnn"),
    (["train", "ttsnn", "-O", "steps=0"], "steps=0 is out of range 1..1000000"),
    (["train", "ttsnn", "-O", "mode=dense"], "mode='dense' is not one of stt, ptt, htt"),
    (["train", "ttsnn", "-O", "lr=3"], "unknown parameter 'lr'"),
])
def test_train_bad_input_exits_2(args, message, tmp_path):
    out = tmp_path / "train.json"
    result = CliRunner().invoke(main, [*args, "-o", str(out)])
    assert result.exit_code == 2 and message in result.output, result.output
    assert not out.exists()


@pytest.mark.slow
def test_rtl_training_of_the_default_network():
    """300 steps of the default network (8 channels, rank 4, T = 4) on the RTL: weights equal
    the golden training's, and it learned (``snnforge train ttsnn --on-rtl -O steps=300``)."""
    p = TTTrainParams(steps=300)
    work = build_root() / "test-train"
    work.mkdir(parents=True, exist_ok=True)
    files, _, _ = _train_rtl(Console(quiet=True), p, generate("ttsnn", core_params(p)), work)
    golden = train_golden(p)
    assert compare_weights(golden.weights(), files) == []
    assert evaluate_fixed(golden.net) > 0.6
