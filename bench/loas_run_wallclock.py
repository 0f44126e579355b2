#!/usr/bin/env python3
"""Wall-clock of ``snnforge run loas`` on one layer: this checkout against an earlier revision.

    .venv/bin/python bench/loas_run_wallclock.py                     # V-L8-like 64x2304x128
    .venv/bin/python bench/loas_run_wallclock.py --before e27a9c7 --repeat 3

Both revisions run the same layer (``bench/make_layer.py``'s synthetic Table II layer, default
V-L8 at 64x2304x128: 3 % weights) with the default core through their own ``snnforge run loas``
command, each in its own build directory: one run first to build the simulator (not timed),
then ``--repeat`` timed runs with the build warm; the best is reported. The earlier revision
(default e27a9c7, the last that loaded the core word by word through its 32-bit host port) is
checked out as a git worktree and installed, without dependencies, into a directory of its own
that only its runs put on ``PYTHONPATH``. Both runs' spikes and membranes must be equal.
Writes ``build/bench/loas_run_wallclock.{json,md,png}``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from snnforge.generate import build_root

ROOT = Path(__file__).resolve().parent.parent


def install_revision(rev: str, where: Path) -> Path:
    """A worktree of ``rev`` under ``where`` and its package installed beside it."""
    tree, site = where / "tree", where / "site"
    if not (site / "snnforge").exists():
        if not tree.exists():
            subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(tree), rev],
                           check=True, capture_output=True)
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                        "--target", str(site), str(tree)], check=True)
    return site


def timed_runs(label, argv, cwd: Path, env, repeat):
    cwd.mkdir(parents=True, exist_ok=True)
    times, log = [], ""
    for i in range(repeat + 1):
        start = time.monotonic()
        proc = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True)
        took = time.monotonic() - start
        if proc.returncode != 0:
            raise SystemExit(f"{label}: snnforge run failed\n{proc.stdout[-2000:]}"
                             f"{proc.stderr[-2000:]}")
        log = proc.stdout
        print(f"{label}: {'build + run' if i == 0 else 'warm run'} {took:.1f} s", flush=True)
        if i:
            times.append(took)
    return min(times), times, log


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--before", default="e27a9c7", help="the earlier revision (git rev)")
    ap.add_argument("--layer", default="V-L8")
    ap.add_argument("--shape", default="64x2304x128", metavar="MxKxN")
    ap.add_argument("--repeat", type=int, default=2, help="timed warm runs per revision")
    ap.add_argument("-o", "--out", default=None, help="output directory (default build/bench)")
    args = ap.parse_args(argv)
    if args.repeat < 1:
        ap.error("--repeat must be at least 1")
    outdir = Path(args.out) if args.out else build_root() / "bench"
    work = build_root() / "wallclock"
    layers = work / "layers"
    subprocess.run([sys.executable, str(ROOT / "bench" / "make_layer.py"), args.layer,
                    "--shape", args.shape, "-o", str(layers)], check=True)
    spikes, weights = (layers / f"{args.layer}.{k}.npy" for k in ("spikes", "weights"))
    site = install_revision(args.before, work / f"before-{args.before}")

    rows = []
    for label, env_path in ((f"before ({args.before})", str(site)), ("this checkout", None)):
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "SNNFORGE_BUILD")}
        if env_path:
            env["PYTHONPATH"] = env_path
        cwd = work / ("before" if env_path else "after")
        out = cwd / "out.npz"
        best, times, log = timed_runs(label, [sys.executable, "-m", "snnforge.cli", "run", "loas",
                                              "--spikes", str(spikes), "--weights", str(weights),
                                              "-o", str(out)], cwd, env, args.repeat)
        result = np.load(out)
        rows.append({"revision": label, "best_s": best, "times_s": times,
                     "counter_cycles": int(result["counter_cycles"]),
                     "counter_total_cycles": int(result["counter_total_cycles"])
                     if "counter_total_cycles" in result else None,
                     "outputs": {k: result[k] for k in ("spikes", "membrane")},
                     "log": log.strip().splitlines()[-3:]})
    before, after = rows
    for key in ("spikes", "membrane"):
        if not np.array_equal(before["outputs"][key], after["outputs"][key]):
            raise SystemExit(f"the two revisions' {key} differ")
    for row in rows:
        del row["outputs"]
    speedup = before["best_s"] / after["best_s"]
    command = "python bench/loas_run_wallclock.py " + " ".join(
        argv if argv is not None else sys.argv[1:])
    md = "\n".join([
        f"Measured with `{command}`: `snnforge run loas` on {args.layer} at {args.shape} "
        f"(default core, warm simulator build, best of {args.repeat}); outputs equal.", "",
        "| revision | wall s (best) | compute cycles | end-to-end cycles |", "|---|---|---|---|",
        *(f"| {r['revision']} | {r['best_s']:.1f} | {r['counter_cycles']:,} | "
          f"{r['counter_total_cycles'] or '(not counted)'} |" for r in rows),
        "", f"Wall-clock speedup: **{speedup:.1f}x**."])
    outdir.mkdir(parents=True, exist_ok=True)
    (outdir / "loas_run_wallclock.md").write_text(md + "\n")
    (outdir / "loas_run_wallclock.json").write_text(json.dumps(
        {"command": command, "layer": args.layer, "shape": args.shape, "rows": rows,
         "speedup": speedup}, indent=2) + "\n")
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(5, 3))
    ax.barh([r["revision"] for r in rows], [r["best_s"] for r in rows], color=["grey", "C0"])
    ax.set_xlabel("wall-clock seconds (warm build)")
    ax.set_title(f"snnforge run loas, {args.layer} {args.shape}")
    fig.tight_layout()
    fig.savefig(outdir / "loas_run_wallclock.png", dpi=120)
    print(md)


if __name__ == "__main__":
    main()
