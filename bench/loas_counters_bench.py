#!/usr/bin/env python3
"""Every counter of a few tiny LoAS layers and a chained network: this checkout against an
earlier revision, to show that a change moved no cycle (or which counters it moved).

    .venv/bin/python bench/loas_counters_bench.py --before c517618

Both revisions run the same cases in Amaranth's simulator, with back-pressure on every AXI4
channel and the host port (``loas_cases(TINY, "quick", seed=4)``: three layers over K blocks,
FTP and sequential, each run following its weight masks; and the chained network
``network_cases(TINY, seed=6)[0]``), outputs checked against the golden model. The earlier
revision is checked out and installed as ``bench/loas_run_wallclock.py`` does and runs this
script (``--measure``) on its own package. Writes ``build/bench/loas_counters.{json,md}``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from snnforge.generate import build_root

COUNTERS = ("cycles", "total_cycles", "rows_read", "bcast_stalls", "weight_waits", "matches")


def measure() -> list[dict]:
    """The cases' counters on this process's snnforge."""
    from amaranth.sim import Simulator

    from snnforge.host import HostDriver
    from snnforge.hw.loas.config import LoASConfig
    from snnforge.hw.loas.core import LoASCore
    from snnforge.hw.loas.driver import LoASDriver
    from snnforge.sim.amaranth_axi import AxiMemory
    from snnforge.sim.amaranth_host import AmaranthTransport
    from snnforge.sim.loas.vectors import (expected_layer, expected_network, loas_cases,
                                           network_cases)

    cfg = LoASConfig(pes=2, fiber=8, T=2, tile_n=3, group=2, k_max=32, n_max=12, v_max=256,
                     f_max=128, segment=4, adders=1, leak="none")
    cases, net = loas_cases(cfg, "quick", seed=4), network_cases(cfg, seed=6)[0]
    dut = LoASCore(cfg)
    size = 1 << 18
    memory = AxiMemory(dut.m_axi, size, latency=3, stall="random:0.2", seed=3)
    results = []

    async def bench(ctx):
        transport = AmaranthTransport(ctx, dut, idle=0.2, stall=0.2, seed=3, memory=memory)
        driver = LoASDriver(HostDriver(dut.regmap, transport), cfg, memory_size=size)
        for case in cases:
            got = await driver.run_layer(case.spikes, case.weights, threshold=case.threshold,
                                         tmask=case.tmask, sequential=case.sequential)
            want = expected_layer(cfg, case, got.k_block)
            results.append((case.name, got, want))
        got = await driver.run_layers(net.spikes, net.settings())
        results.append((net.name, got, expected_network(cfg, net, got.k_blocks)))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    memory.add_to(sim)
    sim.add_testbench(bench)
    sim.run()
    rows = []
    for name, got, want in results:
        if not (np.array_equal(got.spikes, want["spikes"])
                and np.array_equal(got.membrane, want["membrane"])):
            raise SystemExit(f"{name}: outputs differ from the golden model")
        rows.append({"case": name, **{k: int(got.counters[k]) for k in COUNTERS}})
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--before", help="the earlier revision (git rev); without it, this one only")
    ap.add_argument("--measure", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("-o", "--out", default=None, help="output directory (default build/bench)")
    args = ap.parse_args(argv)
    if args.measure:
        print(json.dumps(measure()))
        return 0
    runs = {"this checkout": measure()}
    if args.before:
        spec = importlib.util.spec_from_file_location(
            "loas_run_wallclock", Path(__file__).with_name("loas_run_wallclock.py"))
        wallclock = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(wallclock)
        site = wallclock.install_revision(args.before, build_root() / "counters" / args.before)
        env = {**os.environ, "PYTHONPATH": str(site)}
        proc = subprocess.run([sys.executable, __file__, "--measure"], env=env,
                              capture_output=True, text=True)
        if proc.returncode != 0:
            raise SystemExit(f"{args.before}: {proc.stderr[-2000:]}")
        runs[args.before] = json.loads(proc.stdout.strip().splitlines()[-1])
    outdir = Path(args.out) if args.out else build_root() / "bench"
    outdir.mkdir(parents=True, exist_ok=True)
    same = len({json.dumps(rows) for rows in runs.values()}) == 1
    (outdir / "loas_counters.json").write_text(json.dumps({"runs": runs, "identical": same},
                                                          indent=2) + "\n")
    lines = ["| revision | case | " + " | ".join(COUNTERS) + " |",
             "|---|---|" + "---|" * len(COUNTERS)]
    for rev, rows in runs.items():
        lines += [f"| {rev} | {r['case']} | " + " | ".join(str(r[k]) for k in COUNTERS) + " |"
                  for r in rows]
    lines += ["", "every counter identical" if same else "counters differ"]
    (outdir / "loas_counters.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
