#!/usr/bin/env python3
"""An snnTorch network through NIR onto the LoAS RTL: accuracy, cycles and energy per image.

    .venv/bin/python bench/nir_deploy_bench.py                     # about 2 min
    .venv/bin/python bench/nir_deploy_bench.py --sparsity 0,0.5,0.8,0.9 --hidden 64 --epochs 30

For each weight sparsity: the snnTorch digits MLP (``golden.nir.digits``: 64 -> hidden -> 10,
per-neuron Leaky, reset to zero) trained, pruned to that sparsity, exported with snnTorch's own
``export_to_nir`` and deployed with ``snnforge deploy`` (``deploy_nir``: the LoAS demo core, T=4,
the whole digits test split on the RTL under Verilator, every output checked against the integer
golden model). Records the float graph's, the golden model's and the RTL's accuracy, how often
the RTL's prediction agrees with the float graph's, the RTL's compute and end-to-end cycles per
image, matches and the LoAS paper model's energy per image (relative units). Figures are on
digits (8x8), not the paper's data sets. Writes ``build/bench/nir_deploy_bench.{json,md,png}``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from rich.console import Console

from snnforge.sim.loas.deploy_flow import deploy_nir
from snnforge.generate import build_root
from snnforge.golden.nir.digits import digits_spikes, export_nir, train_snntorch_digits


def plot(rows, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(5.5, 3.2))
    x = [r["sparsity"] for r in rows]
    ax.plot(x, [r["total_cycles_per_image"] for r in rows], "o-", label="end-to-end cycles")
    ax.plot(x, [r["cycles_per_image"] for r in rows], "s-", label="compute cycles")
    ax.set_xlabel("weight sparsity")
    ax.set_ylabel("RTL cycles per image")
    right = ax.twinx()
    right.plot(x, [r["accuracy_rtl"] for r in rows], "^--", color="C2", label="RTL accuracy")
    right.set_ylim(0, 1.05)
    right.set_ylabel("digits test accuracy")
    ax.legend(loc="lower left", fontsize=7)
    right.legend(loc="lower right", fontsize=7)
    ax.set_title("snnTorch -> NIR -> LoAS RTL (digits)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sparsity", default="0,0.5,0.8,0.9")
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--T", type=int, default=4)
    ap.add_argument("-o", "--out", default=None, help="output directory (default build/bench)")
    args = ap.parse_args(argv)
    outdir = Path(args.out) if args.out else build_root() / "bench"
    outdir.mkdir(parents=True, exist_ok=True)
    command = "python bench/nir_deploy_bench.py " + " ".join(
        argv if argv is not None else sys.argv[1:])
    console = Console(quiet=True)
    work = outdir / "nir_deploy"
    work.mkdir(exist_ok=True)
    x, y = digits_spikes(args.T)
    np.save(work / "x.npy", x)
    np.save(work / "y.npy", y)
    rows = []
    for sparsity in (float(s) for s in args.sparsity.split(",")):
        net, trained = train_snntorch_digits(T=args.T, hidden=args.hidden, epochs=args.epochs,
                                             sparsity=sparsity)
        model = work / f"digits-{sparsity}.nir"
        export_nir(net, model)
        report = deploy_nir(console, model, data=work / "x.npy", labels=work / "y.npy",
                            outdir=work / f"deploy-{sparsity}")
        r, S = report["results"], report["samples"]
        rows.append({"sparsity": sparsity, "weight_sparsity": trained["sparsity"],
                     "accuracy_snntorch": trained["test_accuracy"],
                     **{k: r[k] for k in ("accuracy_float", "accuracy_golden", "accuracy_rtl",
                                          "agreement_rtl_float", "rtl_equals_golden",
                                          "matches")},
                     "cycles_per_image": r["cycles"] / S,
                     "total_cycles_per_image": r["total_cycles_per_sample"],
                     "energy_per_image": r["energy_per_sample"],
                     "layers": report["layers"], "approximations": report["approximations"]})
        print(f"sparsity {sparsity}: accuracy float {r['accuracy_float']:.3f} RTL "
              f"{r['accuracy_rtl']:.3f}, {r['total_cycles_per_sample']:.0f} cycles/image",
              flush=True)

    md = [f"Measured with `{command}`: the snnTorch digits MLP (64 -> {args.hidden} -> 10, "
          f"T={args.T}) exported by snnTorch's `export_to_nir`, deployed with `snnforge deploy` "
          f"on the LoAS demo core under Verilator over the {len(y)} test images. Digits (8x8), "
          f"not the paper's data sets.", "",
          "| weight sparsity | float graph | integer golden | RTL | RTL = golden | agreement "
          "RTL/float | compute cycles/image | end-to-end cycles/image | matches | energy/image "
          "(rel.) |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        md.append(f"| {r['sparsity']:.0%} | {r['accuracy_float']:.1%} | "
                  f"{r['accuracy_golden']:.1%} | {r['accuracy_rtl']:.1%} | "
                  f"{r['rtl_equals_golden']} | {r['agreement_rtl_float']:.1%} | "
                  f"{r['cycles_per_image']:.0f} | {r['total_cycles_per_image']:.0f} | "
                  f"{r['matches']:,} | {r['energy_per_image']:.4g} |")
    (outdir / "nir_deploy_bench.md").write_text("\n".join(md) + "\n")
    (outdir / "nir_deploy_bench.json").write_text(json.dumps(
        {"command": command, "rows": rows}, indent=2) + "\n")
    plot(rows, outdir / "nir_deploy_bench.png")
    print("\n".join(md))
    print(f"wrote {outdir / 'nir_deploy_bench.json'}, .md, .png")


if __name__ == "__main__":
    main()
