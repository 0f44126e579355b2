#!/usr/bin/env python3
"""LoAS design-space sweep on the ECP5-85k: 12 small cores, placed and routed, run on Table II
layers under Verilator; their Pareto front of logic cells against time per layer.

    .venv/bin/python bench/loas_sweep_bench.py                 # one worker (one to two hours)
    .venv/bin/python bench/loas_sweep_bench.py --workers 2 --layers V-L8

``snnforge sweep loas -p pes=1,2,3 -p fiber=32,64 -p adders=1,2 -p tile_n=8 -p k_max=512
-p n_max=256 -p v_max=2048 -p f_max=1024 --target ecp5-85k --layers V-L8,R-L19`` (the layers:
``snnforge.sim.loas.sweep``), written to ``build/bench/loas_sweep_bench.{md,json,png}``. Points
already synthesized or run (same Verilog) come from the cache.
"""

from __future__ import annotations

import argparse

from rich.console import Console

from snnforge.generate import build_root
from snnforge.sweep import plan_sweep, run_sweep

#: Four PEs on 64-wide fibers do not route on the ECP5-85k (nextpnr's router1 still had
#: ~18,000 overused wires after an hour, with the PEs' row queues in LUT RAM or in block RAM);
#: three do (72 MHz, 37 % of the logic cells).
SWEPT = ["pes=1,2,3", "fiber=32,64", "adders=1,2"]
#: Buffers of the LoAS demo core: every point places in a few minutes.
FIXED = ["tile_n=8", "k_max=512", "n_max=256", "v_max=2048", "f_max=1024"]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workers", type=int, default=1, help="local cluster workers (default 1)")
    ap.add_argument("--layers", default="V-L8,R-L19", help="Table II layers (default V-L8,R-L19)")
    args = ap.parse_args(argv)
    sweep = plan_sweep("loas", SWEPT + FIXED, target="ecp5-85k",
                       layers=[v for v in args.layers.split(",") if v],
                       # A point that has not placed in an hour is recorded as timed out.
                       timeout_s=3600)
    console = Console(highlight=False)
    summary = run_sweep(console, sweep, build_root() / "bench", workers=args.workers,
                        stem="loas_sweep_bench")
    console.print(open(summary["files"][0]).read(), markup=False)


if __name__ == "__main__":
    main()
