"""``snnforge run loas``: its own flags and the generic ``--in``/``-O`` form, against the golden
model; bad input exits 2 with one line naming the array or option."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from snnforge.cli import main
from snnforge.driver import Job, JobResult
from snnforge.golden.loas import layer, match_count
from snnforge.hw.loas.config import LoASConfig
from snnforge.hw.loas.driver import LoASDriver
from snnforge.registry import generators

SNNFORGE = str(Path(sys.executable).parent / "snnforge")
# The demo's 4-PE core: its Verilator build is shared with the regression and bench tests.
DEMO = generators()["loas"].demo_params
MEDIUM_LOAS = [arg for k, v in DEMO.items() for arg in ("-p", f"{k}={v}")]


def invoke(*args):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def _layer_files(tmp_path, spikes, weights):
    np.save(tmp_path / "s.npy", np.asarray(spikes))
    np.save(tmp_path / "w.npy", np.asarray(weights))
    return tmp_path / "s.npy", tmp_path / "w.npy"


def test_run_loas_layer_matches_golden(tmp_path):
    g = torch.Generator().manual_seed(3)
    x = (torch.rand(4, 6, 70, generator=g) < 0.3).to(torch.uint8)
    w = (torch.randint(-128, 128, (70, 20), generator=g) * (torch.rand(70, 20, generator=g) < 0.2))
    s_file, w_file = _layer_files(tmp_path, x, w)
    friendly, generic = tmp_path / "friendly.npz", tmp_path / "generic.npz"
    result = invoke("run", "loas", *MEDIUM_LOAS, "--spikes", str(s_file), "--weights",
                    str(w_file), "--lif", "threshold=50,leak=shift:1,reset=hard", "--tmask",
                    "0b1011", "-o", str(friendly))
    assert result.exit_code == 0, result.output
    assert "PE utilization" in result.output and "cycles/s" in result.output
    cfg = generators()["loas"].configure({**DEMO, "T": 4, "leak": "shift", "reset": "hard"})
    lif = cfg.lif.replace(threshold=50, leak_shift=1)
    assert lif.in_width == cfg.out_width
    spikes, membrane = layer(x, w, lif, tmask=0b1011)
    data = np.load(friendly)
    assert np.array_equal(data["spikes"], spikes.numpy())
    assert np.array_equal(data["membrane"], membrane.numpy())
    assert int(data["counter_matches"]) == match_count(x, w)
    # Every PE of each row tile runs the LIF (idle PEs on zeros): rows x columns x active steps.
    rows = -(-6 // cfg.pes) * cfg.pes
    assert int(data["counter_lif_steps"]) == rows * 20 * bin(0b1011).count("1")
    # The generic form runs the same job on the same core.
    result = invoke("run", "loas", *MEDIUM_LOAS, "-p", "reset=hard", "--in", f"spikes={s_file}",
                    "--in", f"weights={w_file}", "-O", "threshold=50", "-O", "leak_amount=1",
                    "-O", "tmask=0b1011", "-o", str(generic))
    assert result.exit_code == 0, result.output
    again = np.load(generic)
    assert sorted(again.files) == sorted(data.files)
    for name in data.files:
        assert np.array_equal(again[name], data[name]), name


@pytest.mark.parametrize("spikes, weights, extra, message", [
    ([[[0, 2]]], [[1], [1]], [], "spikes must be binary"),
    ([[[0, 1]]], [[300], [1]], [], "weights must lie within int8"),
    ([[[0, 1, 1]]], [[1], [1]], [], "K must match"),
    ([[0, 1]], [[1], [1]], [], "spikes must have shape [T, M, K]"),
    ([[[0, 1]]], [[1], [1]], ["--lif", "colour=red"], "not one of threshold, leak, reset"),
    ([[[0, 1]]], [[1], [1]], ["--tmask", "9"], "option tmask=9 is out of range 0..1"),
    ([[[0, 1]]], [[1], [1]], ["--lif", "leak=exp:1"], "use none, shift:K or mul:BETA"),
    ([[[0, 1]]], [[1], [1]], ["-O", "colour=red"], "unknown option 'colour'; options: "
                                                  "threshold, leak_amount, tmask"),
    ([[[0, 1]]], [[1], [1]], ["-O", "threshold=99999"], "option threshold=99999 is out of range"),
    ([[[0, 1]]], [[1], [1]], ["--in", "spikes=s.npy"], "input spikes is given twice"),
    ([[[0, 1]]], [[1], [1]], ["--in", "bias=s.npy"], "unknown input 'bias'; inputs: spikes, "
                                                     "weights"),
])
def test_run_bad_input_exits_2(tmp_path, spikes, weights, extra, message):
    s_file, w_file = _layer_files(tmp_path, spikes, weights)
    args = ["run", "loas", *MEDIUM_LOAS, "--spikes", str(s_file), "--weights", str(w_file),
            *extra, "-o", str(tmp_path / "o.npz")]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], lines
    assert not (tmp_path / "o.npz").exists()


def test_run_missing_input_file_and_unrunnable_generator(tmp_path):
    proc = subprocess.run([SNNFORGE, "run", "loas", "--spikes", str(tmp_path / "nope.npy"),
                           "--weights", str(tmp_path / "nope.npy"), "-o", "x.npz"],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and "no such file" in proc.stderr
    result = CliRunner().invoke(main, ["run", "lif_array", "--spikes", "a", "-o", "x.npz"])
    assert result.exit_code == 2 and "runnable generators: lif_core, loas" in result.stderr
    np.save(tmp_path / "w.npy", np.zeros((2, 2)))
    result = CliRunner().invoke(main, ["run", "loas", "--weights", str(tmp_path / "w.npy"),
                                       "-o", "x.npz"])
    assert result.exit_code == 2 and "missing input spikes [T, M, K]" in result.stderr


def test_report_names_saturated_counters():
    cfg = LoASConfig(**{**DEMO, "counter_width": 16})
    job = Job({"spikes": np.zeros((4, 2, 32), np.uint8), "weights": np.zeros((32, 8), np.int8)},
              {})
    counters = {"cycles": 0xFFFF, "matches": 10, "total_cycles": 0xFFFF,
                "dma_read_bytes": 64, "dma_write_bytes": 0}
    lines = LoASDriver.report(cfg, job, JobResult({}, counters, {"runs": [0]}))
    assert lines[-1].startswith("saturated at 2**16 - 1 (counter_width): cycles, total_cycles")
    counters.update(cycles=0xFFFE, total_cycles=0xFFFE)
    assert not any("saturated" in line
                   for line in LoASDriver.report(cfg, job, JobResult({}, counters, {"runs": [0]})))
