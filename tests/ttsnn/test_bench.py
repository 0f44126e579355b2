"""The TT-SNN benchmark: its lane choice keeps to the budget, it runs end to end on a small
layer (every run checked against the golden models inside) and refuses bad arguments. (Its
engine model is ``PointwiseConv``'s own cycles per position, measured in test_pointwise.) The
full run is `python bench/ttsnn_bench.py`."""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("ttsnn_bench", ROOT / "bench" / "ttsnn_bench.py")
bench = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench)


@pytest.mark.parametrize("layer", [(16, 5, 16), (32, 6, 32), (8, 4, 8), (3, 1, 2)])
@pytest.mark.parametrize("budget", [4, 8, 16])
def test_balanced_engines_keep_to_the_budget(layer, budget):
    c_in, rank, c_out = layer
    engines = bench.balanced_engines(c_in, rank, c_out, budget)
    assert sum(n * w for n, w in engines) <= budget
    limits = ((rank, c_in), (rank, 3 * rank), (rank, 3 * rank), (c_out, rank))
    assert all(1 <= n <= o and 1 <= w <= i for (n, w), (o, i) in zip(engines, limits))
    lanes, ways = bench.dense_engine(c_in, c_out, budget)
    assert lanes * ways <= budget and lanes <= c_out and ways <= 9 * c_in


def test_bench_small_layer(tmp_path):
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "ttsnn_bench.py"), "--layers",
                           "3x2x4x4x3", "--T", "2", "--htt-full", "1", "--budget", "4",
                           "-o", str(tmp_path)], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    rows = json.loads((tmp_path / "ttsnn_bench.json").read_text())["rows"]
    assert [r["mode"] for r in rows] == ["stt", "ptt", "htt"]
    for r in rows:
        assert r["dense_forward_cycles"] > r["forward_cycles"] > 0 and r["dense_rows"] > 0
        assert sum(r["units"]) <= 4 and r["dense_lanes"] * r["dense_ways"] <= 4
        # The dense backward: per step, dW and W^T each 9 Cin Cout H W terms (3 x 4 x 4 x 3).
        assert r["dense_wgrad_cycles"] == r["dense_dgrad_cycles"] == 2 * 9 * 3 * 4 * 4 * 3
        assert r["dense_training_step_cycles"] > r["training_step_cycles"]
    assert (tmp_path / "ttsnn_bench.md").exists() and (tmp_path / "ttsnn_bench.png").exists()


@pytest.mark.parametrize("args, message", [
    (["--layers", "s9"], "expected s1, s2, s3 or CINxRxCOUTxHxW"),
    (["--layers", "3x2x4x2x3"], "height >= 4"),
    (["--lanes", "1,2"], "expected one number or four"),
    (["--budget", "0"], "--budget must be at least 1"),
])
def test_bench_bad_arguments_exit_2(tmp_path, args, message):
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "ttsnn_bench.py"), *args, "-o",
                           str(tmp_path)], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 2 and message in proc.stderr
