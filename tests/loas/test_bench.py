"""The benchmark script runs end to end (small core, small layer) and writes its reports; the
full-size run is `python bench/loas_bench.py` (minutes) and `-m slow` here."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from snnforge.registry import generators

ROOT = Path(__file__).resolve().parents[2]

# The demo's 4-PE core: its Verilator build is shared with the regression and CLI tests.
SMALL = [arg for k, v in generators()["loas"].demo_params.items() for arg in ("-p", f"{k}={v}")]


def run_bench_script(tmp_path, *args):
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "loas_bench.py"), *args,
                           "--no-record", "-o", str(tmp_path)], capture_output=True, text=True,
                          cwd=ROOT)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return json.loads((tmp_path / "loas_bench.json").read_text()), proc.stdout


def test_bench_small_core(tmp_path):
    data, out = run_bench_script(tmp_path, "--layers", "R-L19,V-L8", "--shape", "8x256x64", *SMALL)
    assert [row["layer"] for row in data["layers"]] == ["R-L19", "V-L8"]
    for row in data["layers"]:
        assert 0 < row["util_rtl"] <= 1 and row["rtl_cycles"] >= row["bound"]
        assert row["seq_cycles"] > row["rtl_cycles"]
    assert "| R-L19 | LoAS RTL (this core) |" in (tmp_path / "loas_bench.md").read_text()


@pytest.mark.slow
def test_bench_default_core_r_l19(tmp_path):
    data, _ = run_bench_script(tmp_path, "--layers", "R-L19")
    assert data["layers"][0]["util_rtl"] >= 0.85


def test_counters_bench_this_checkout(tmp_path):
    """bench/loas_counters_bench.py without --before: this checkout's counters, checked against
    the golden model on the way, in JSON and markdown."""
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "loas_counters_bench.py"),
                           "-o", str(tmp_path)], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    data = json.loads((tmp_path / "loas_counters.json").read_text())
    rows = data["runs"]["this checkout"]
    assert [r["case"] for r in rows] == ["random_multi_fiber", "k_below_fiber", "k_blocks",
                                         "chain_3_layers"]
    assert all(0 < r["cycles"] < r["total_cycles"] and r["matches"] > 0 for r in rows)
    assert "| this checkout | k_blocks |" in (tmp_path / "loas_counters.md").read_text()
