"""The DT-SNN spiking ViT on the LoAS RTL (``snnforge train dtsnn`` then ``snnforge deploy
DIR/dtsnn.pt``): the RTL's outputs equal the core's golden model's, and masked time steps save
matches against the same network with every step open."""

import asyncio
import json

import numpy as np
import pytest
from click.testing import CliRunner

from snnforge.cli import main
from snnforge.dtsnn import token_data
from snnforge.hw.loas.config import LoASConfig
from snnforge.hw.loas.dtsnn import GROUP_K, loas_ops


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    root = tmp_path_factory.mktemp("dtsnn")
    result = invoke("train", "dtsnn", "--attention", "statten", "--epochs", "8", "--lam",
                    "1e-3", "-o", root / "ckpt")
    assert result.exit_code == 0, result.output
    assert "test accuracy" in result.output and "average time steps" in result.output
    x, y = token_data(4)
    np.save(root / "x.npy", x)
    np.save(root / "y.npy", y)
    return root


def deploy_on(root, tmp_path, count, *extra):
    np.save(tmp_path / "x.npy", np.load(root / "x.npy")[:count])
    np.save(tmp_path / "y.npy", np.load(root / "y.npy")[:count])
    result = invoke("deploy", root / "ckpt" / "dtsnn.pt", "--data", tmp_path / "x.npy",
                    "--labels", tmp_path / "y.npy", *extra, "-o", tmp_path / "out")
    assert result.exit_code == 0, result.output
    return result, json.loads((tmp_path / "out" / "report.json").read_text())


def test_dtsnn_on_the_rtl_equals_golden_and_masks_save_work(checkpoint, tmp_path):
    result, report = deploy_on(checkpoint, tmp_path, 6, "--compare-unmasked")
    r = report["results"]
    assert r["rtl_equals_golden"] and r["reference_equals_golden"] and report["problems"] == []
    assert "accuracy " in result.output and "fewer matches" in result.output
    with np.load(tmp_path / "out" / "outputs.npz") as out:
        assert np.array_equal(out["predictions"], out["golden_predictions"])
    assert report["t_eff"] < 4
    assert "| unmasked |" in (tmp_path / "out" / "report.md").read_text()
    masked, unmasked = report["rtl"]["masked"], report["rtl"]["unmasked"]
    assert masked["matches_per_image"] < unmasked["matches_per_image"]
    assert r["savings"]["matches_per_image"] > 0


@pytest.mark.slow
def test_dtsnn_on_the_rtl_over_the_whole_test_split(checkpoint, tmp_path):
    _, report = deploy_on(checkpoint, tmp_path, 450)
    r = report["results"]
    assert r["rtl_equals_golden"] and r["accuracy_rtl"] == r["accuracy_golden"]


@pytest.mark.parametrize("args, message", [
    (["--data", "{root}/y.npy"], "--data must have shape [N, T, 16, 20]"),
    (["-p", "leak=mul"], "-p leak=mul: the DT-SNN ViT needs leak=shift"),
])
def test_deploy_bad_input_exits_2(checkpoint, tmp_path, args, message):
    given = [a.format(root=checkpoint) for a in args]
    base = ["--data", checkpoint / "x.npy"] if "--data" not in given else []
    result = invoke("deploy", checkpoint / "ckpt" / "dtsnn.pt", *base, *given, "-o",
                    tmp_path / "out")
    assert result.exit_code == 2 and message in result.output, result.output
    assert not (tmp_path / "out").exists()


def test_a_file_that_is_not_a_checkpoint_exits_2(tmp_path):
    (tmp_path / "bad.pt").write_bytes(b"nope")
    np.save(tmp_path / "x.npy", np.zeros((1, 4, 16, 20), dtype=np.uint8))
    result = invoke("deploy", tmp_path / "bad.pt", "--data", tmp_path / "x.npy", "-o",
                    tmp_path / "out")
    assert result.exit_code == 2 and "not a DT-SNN checkpoint" in result.output


def test_train_dtsnn_bad_input_exits_2(tmp_path):
    result = invoke("train", "dtsnn", "--attention", "statten", "--tmax", "3", "-o", tmp_path)
    assert result.exit_code == 2 and "chunk=2 must divide tmax=3" in result.output
    result = invoke("train", "dtsnn", "--attention", "softmax", "-o", tmp_path / "x")
    assert result.exit_code == 2 and "Invalid value for '--attention'" in result.output


def test_attention_groups_span_at_most_group_k_positions():
    """Attention products are stacked along K into groups of at most GROUP_K positions (each
    row loads a mask per fiber of its group's K), never more than one K block; every product
    comes back in order with its own rows and columns."""
    cfg = LoASConfig(pes=4, fiber=32, T=4, leak="shift", reset="hard", masked="integrate")
    spans = []

    async def run_segment(x, layers):
        spans.append(layers[0].weights.shape[0])
        return None, np.zeros((x.shape[1], layers[0].weights.shape[1])), {}

    pairs = [(np.ones((16, 96), np.uint8), np.ones((96, 16), np.int64)) for _ in range(12)]
    _, matmul, _ = loas_ops(run_segment, cfg)
    results = asyncio.run(matmul(pairs))
    assert cfg.k_block(False) > GROUP_K
    assert spans == [480, 480, 192] and max(spans) <= GROUP_K
    assert [r.shape for r in results] == [(16, 16)] * 12
