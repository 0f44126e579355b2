"""``snnforge sweep`` on a two-worker loopback cluster with tiny LIF arrays: every point
computed once and then taken from the cache, a point that does not fit and one that times out
recorded with their logs, the Pareto front on hand-made points, bad input; (slow) LoAS layers
on the RTL."""

import json

import pytest
from click.testing import CliRunner
from rich.console import Console

from snnforge.cli import main
from snnforge.params import SnnforgeError
from snnforge.sweep import Sweep, _objectives, pareto_front, plan_sweep, run_sweep

SMALL = ["-p", "in_width=8", "-p", "mem_width=10"]


@pytest.fixture(scope="module")
def scheduler():
    from distributed import LocalCluster
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None) as cluster:
        yield cluster.scheduler_address


def sweep(tmp_path, scheduler, *args):
    """``snnforge sweep ARGS`` on the cluster with its own build directory; (exit status,
    sweep.json or None)."""
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["sweep", *args, "--scheduler", scheduler, "-o", str(out)],
                                env={"SNNFORGE_BUILD": str(tmp_path / "build")})
    path = out / "sweep.json"
    return result.exit_code, json.loads(path.read_text()) if path.exists() else None


def by_label(summary):
    return {p["label"]: p for p in summary["points"]}


def test_rerun_computes_only_what_is_missing(tmp_path, scheduler):
    code, first = sweep(tmp_path, scheduler, "lif_array", "-p", "T=1,2", *SMALL, "--no-place")
    assert code == 0
    points = by_label(first)
    assert set(points) == {"T=1", "T=2"}
    assert [p.get("error") for p in points.values()] == [None, None]
    assert all(p["status"] == "ok" and p["computed"] == ["synth"] for p in points.values())
    assert points["T=1"]["synth"]["cells"]["lut4"] < points["T=2"]["synth"]["cells"]["lut4"]
    assert points["T=1"]["pareto"] and not points["T=2"]["pareto"]
    assert first["objectives"] == ["LUT4"] and first["fixed"] == {"in_width": "8",
                                                                  "mem_width": "10"}
    for ext in ("md", "png"):
        assert (tmp_path / "out" / f"sweep.{ext}").stat().st_size > 0
    kept = tmp_path / "build" / "synth" / f"{points['T=1']['key']}-ecp5-85k" / "synth.json"
    stamp = kept.stat().st_mtime_ns

    code, again = sweep(tmp_path, scheduler, "lif_array", "-p", "T=1,2", *SMALL, "--no-place")
    assert code == 0
    assert all(p["status"] == "ok" and p["computed"] == [] for p in again["points"])
    assert kept.stat().st_mtime_ns == stamp
    assert "2 wholly from the cache" in (tmp_path / "out" / "sweep.md").read_text()

    code, grown = sweep(tmp_path, scheduler, "lif_array", "-p", "T=1,2,3", *SMALL, "--no-place")
    assert code == 0
    assert {p["label"]: p["computed"] for p in grown["points"]} == {
        "T=1": [], "T=2": [], "T=3": ["synth"]}


def test_a_point_that_does_not_fit_is_recorded_with_its_log(tmp_path, scheduler):
    # Placed on the iCE40UP5K: T=1 fits; T=16 needs about 7,000 of its 5,280 logic cells.
    code, summary = sweep(tmp_path, scheduler, "lif_array", "-p", "T=1,16", "--target",
                          "ice40-up5k")
    assert code == 0
    points = by_label(summary)
    assert points["T=1"]["status"] == "ok" and points["T=1"]["pareto"]
    assert points["T=1"]["synth"]["fmax_mhz"] > 0
    failed = points["T=16"]
    assert failed["status"] == "failed" and not failed["pareto"]
    assert "place and route failed" in failed["error"]
    assert "no BELs remaining" in open(failed["log"]).read()
    assert "Failed points" in (tmp_path / "out" / "sweep.md").read_text()


def test_a_point_that_times_out_is_recorded(tmp_path, scheduler):
    code, summary = sweep(tmp_path, scheduler, "lif_array", "-p", "T=3", *SMALL, "--no-place",
                          "--timeout", "0.2")
    assert code == 1                      # no point succeeded
    point, = summary["points"]
    assert point["status"] == "timeout" and point["error"] == "timed out after 0.2 s"
    assert "killed after 0.2 s" in open(point["log"]).read()


def test_pareto_front_on_hand_made_points():
    assert pareto_front([(1, 5), (2, 3), (3, 3), (2, 4), (4, 1), (1, 5), None]) == \
        [True, True, False, False, True, True, False]
    assert pareto_front([(7,), (3,), (3,)]) == [False, True, True]
    assert pareto_front([]) == []


def test_objectives_are_cells_and_time_per_layer():
    record = {"status": "ok", "synth": {"logic_cells": [1000, 83640], "fmax_mhz": 50.0,
                                        "cells": {"lut4": 800}},
              "layers": {"A": {"cycles": 1000}, "B": {"cycles": 3000}}}
    placed = Sweep("x", "ecp5-85k", [], [], {}, layers=("A", "B"))
    assert _objectives(placed, record) == (1000, 40.0)          # mean 2000 cycles at 50 MHz
    assert _objectives(Sweep("x", "ecp5-85k", [], [], {}), record) == (1000, 20.0)  # 1/Fmax
    synth_only = Sweep("x", "ecp5-85k", [], [], {}, layers=("B",), place=False)
    assert _objectives(synth_only, record) == (800, 3000)
    assert _objectives(placed, {**record, "status": "failed"}) is None


@pytest.mark.parametrize("args, message", [
    (["lif_array", "-p", "T=1,99"], "parameter T=99 is out of range 1..32"),
    (["lif_array", "-p", "bogus=1,2"], "unknown parameter 'bogus'; valid parameters: T,"),
    (["loas", "-p", "fiber=32", "-p", "adders=1,9"], "adders must be an integer in 1..4"),
    (["lif_array", "-p", "T=1,,2"], "an empty value"),
    (["lif_array", "-p", "T=1", "-p", "T=2"], "-p T is given twice"),
    (["lif_array", "--target", "xc7"], "'xc7' is not one of 'ecp5-85k', 'ice40-up5k'"),
    (["lif_array", "--scheduler", "nohost"], "not a scheduler address"),
    (["lif_array", "--scheduler", "xyz://host:8786"], "unknown scheme 'xyz'"),
    (["lif_array", "--layers", "V-L8"], "lif_array has no workload layers"),
    (["lif_array", "--workers", "2", "--scheduler", "127.0.0.1:8786"],
     "--workers sizes the local cluster"),
    (["lif_array", "--scheduler", "127.0.0.1:1"], "cannot reach the scheduler"),
])
def test_bad_input_exits_2_with_one_line(args, message):
    result = CliRunner().invoke(main, ["sweep", *args])
    assert result.exit_code == 2
    assert result.output.startswith("snnforge: error: ") and result.output.count("\n") == 1
    assert message in result.output


def test_unknown_layers_are_named():
    with pytest.raises(SnnforgeError, match="unknown layer 'V-L9'; layers: .*V-L8, R-L19"):
        plan_sweep("loas", ["pes=1,2"], layers=["V-L9"])
    result = CliRunner().invoke(main, ["sweep", "loas", "-p", "pes=1,2", "--layers", "V-L9"])
    assert result.exit_code == 2 and "unknown layer 'V-L9'" in result.output


@pytest.mark.slow
def test_layers_run_on_the_rtl_and_are_cached(tmp_path, monkeypatch):
    # The LoAS generator's own workload layers (snnforge.sim.loas.sweep), as `--layers` runs them.
    monkeypatch.setenv("SNNFORGE_BUILD", str(tmp_path / "build"))
    tiny = ["pes=1", "fiber=16", "T=2", "tile_n=4", "k_max=512", "n_max=64", "v_max=1024",
            "f_max=512", "adders=1"]
    plan = plan_sweep("loas", tiny, layers=["R-L19"], place=False)
    point, = run_sweep(Console(quiet=True), plan, tmp_path / "out", workers=1)["points"]
    assert point["status"] == "ok", point["error"]
    assert point["computed"] == ["synth", "layer:R-L19"]
    layer = point["layers"]["R-L19"]
    assert layer["cycles"] > layer["compute_cycles"] > 0 and layer["matches"] > 0
    again, = run_sweep(Console(quiet=True), plan, tmp_path / "out", workers=1)["points"]
    assert again["computed"] == [] and again["layers"] == {"R-L19": layer}
