#!/usr/bin/env python3
"""DT-SNN spiking ViT on digits: accuracy against average time steps, and RTL work with masks.

    .venv/bin/python bench/dtsnn_bench.py                  # about 12 min
    .venv/bin/python bench/dtsnn_bench.py --lams 1e-4,2e-4,5e-4 --fixed 1,2,4 --rtl-images 32

For SSA and STAtten attention: the ViT (``golden.dtsnn.model``, T_max = 4) trained with learned
time-step masks at several regulariser weights ``lam`` and as fixed-T baselines (the first T steps
open); test accuracy (float, and of the integer export) against the average number of open steps
(T_eff, mean over gated layers). Then, for the DT model of each attention at ``--rtl-lam``:
``snnforge deploy --compare-unmasked`` on the first ``--rtl-images`` test images -- the same
network with its masks and with every step open, on the LoAS demo core's RTL under Verilator
(every output checked against the core's golden model): cycles, matches and energy (LoAS paper
model, relative units) per image. Digits (8x8), not CIFAR-10: the paper's 95.97 % at 4.97 steps
is not comparable. Writes ``build/bench/dtsnn_bench.{json,md,png}``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

import numpy as np
import torch
from rich.console import Console

from snnforge.dtsnn import token_data, train
from snnforge.generate import build_root
from snnforge.golden.dtsnn.integer import (export, int_forward, reference_linear,
                                           reference_matmul)
from snnforge.golden.dtsnn.model import ViTShape, train_dtsnn
from snnforge.sim.loas.deploy_flow import deploy_checkpoint


def plot(rows, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(5.5, 3.4))
    for i, attention in enumerate(("ssa", "statten")):
        for kind, marker in (("dt", "o"), ("fixed", "s")):
            pts = sorted((r["t_eff"], r["accuracy"]) for r in rows
                         if r["attention"] == attention and r["kind"] == kind)
            if pts:
                ax.plot(*zip(*pts), marker + ("-" if kind == "dt" else "--"), color=f"C{i}",
                        label=f"{attention} {'DT masks' if kind == 'dt' else 'fixed T'}")
    ax.set_xlabel("average time steps (T_eff)")
    ax.set_ylabel("digits test accuracy")
    ax.set_ylim(0, 1.0)
    ax.legend(fontsize=7)
    ax.set_title("DT-SNN spiking ViT on digits")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def int_accuracy(model, x_test, y_test):
    net = export(model)
    out = asyncio.run(int_forward(net, x_test, reference_linear, reference_matmul))
    return float((out.sum(0).argmax(1) == y_test).mean())


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--lams", default="1e-4,2e-4,5e-4")
    ap.add_argument("--fixed", default="1,2,4")
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--rtl-lam", type=float, default=2e-4)
    ap.add_argument("--rtl-images", type=int, default=32)
    ap.add_argument("-o", "--out", default=None, help="output directory (default build/bench)")
    args = ap.parse_args(argv)
    outdir = Path(args.out) if args.out else build_root() / "bench"
    outdir.mkdir(parents=True, exist_ok=True)
    command = "python bench/dtsnn_bench.py " + " ".join(
        argv if argv is not None else sys.argv[1:])
    x, y = token_data(4)
    x_test = np.ascontiguousarray(x.transpose(1, 0, 2, 3))
    rows = []
    for attention in ("ssa", "statten"):
        shape = ViTShape(attention=attention)
        runs = [("dt", float(lam), None) for lam in args.lams.split(",")]
        runs += [("fixed", 0.0, int(t)) for t in args.fixed.split(",")]
        for kind, lam, fixed in runs:
            model, report = train_dtsnn(shape, epochs=args.epochs, lam=lam, fixed_t=fixed)
            rows.append({"attention": attention, "kind": kind, "lam": lam, "fixed_t": fixed,
                         "accuracy": report["test_accuracy"], "t_eff": report["t_eff"],
                         "accuracy_int": int_accuracy(model, x_test, y),
                         "masks": report["masks"]})
            print(f"{attention} {kind} lam={lam} T={fixed}: accuracy {report['test_accuracy']:.3f}"
                  f" (int {rows[-1]['accuracy_int']:.3f}) at T_eff {report['t_eff']:.2f}",
                  flush=True)

    console = Console(quiet=True)
    work = outdir / "dtsnn"
    n = args.rtl_images
    rtl = []
    for attention in ("ssa", "statten"):
        train(console, outdir=work / f"ckpt-{attention}", epochs=args.epochs, lam=args.rtl_lam,
              attention=attention)
        work.mkdir(exist_ok=True)
        np.save(work / "x.npy", x[:n])
        np.save(work / "y.npy", y[:n])
        report = deploy_checkpoint(console, work / f"ckpt-{attention}" / "dtsnn.pt", data=work / "x.npy",
                        labels=work / "y.npy", outdir=work / f"deploy-{attention}",
                        compare_unmasked=True)
        m, u = report["rtl"]["masked"], report["rtl"]["unmasked"]
        c, pes = m["counters"], report["core_params"]["pes"]
        rtl.append({"attention": attention, "t_eff": report["t_eff"],
                    # PE use of each kind of work, masked: matches per PE-cycle.
                    "pe_use_linear": c["linear_matches"] / (pes * c["linear_cycles"]),
                    "pe_use_attention": c["attention_matches"] / (pes * c["attention_cycles"]),
                    "compute_share": c["cycles"] / c["total_cycles"],
                    "rtl_equals_golden": report["results"]["rtl_equals_golden"],
                    "accuracy_rtl": report["results"]["accuracy_rtl"],
                    **{f"{tag}_{k}": v[k] for tag, v in (("masked", m), ("unmasked", u))
                       for k in ("cycles_per_image", "total_cycles_per_image",
                                 "matches_per_image", "energy_per_image")},
                    "savings": report["results"]["savings"]})
        print(f"RTL {attention}: {m['total_cycles_per_image']:.0f} vs "
              f"{u['total_cycles_per_image']:.0f} cycles/image", flush=True)

    md = [f"Measured with `{command}`: the DT-SNN spiking ViT (digits, T_max = 4, dim 32, 4 "
          f"heads, 2 encoders, 50 % weight sparsity), {args.epochs} epochs. Digits (8x8), not "
          f"the paper's CIFAR-10.", "",
          "| attention | masks | lam / T | T_eff | accuracy (float) | accuracy (integer) |",
          "|---|---|---|---|---|---|"]
    for r in rows:
        md.append(f"| {r['attention']} | {'learned' if r['kind'] == 'dt' else 'fixed'} | "
                  f"{r['lam'] if r['kind'] == 'dt' else r['fixed_t']} | {r['t_eff']:.2f} | "
                  f"{r['accuracy']:.1%} | {r['accuracy_int']:.1%} |")
    md += ["", f"On the LoAS RTL (demo core, {n} test images, lam = {args.rtl_lam}; RTL = golden "
               f"checked on every output):", "",
           "| attention | T_eff | RTL = golden | cycles/image masked | unmasked | saved | "
           "compute cycles saved | matches/image masked | unmasked | saved | energy saved | "
           "PE use linear / attention | compute share of end to end |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rtl:
        s = r["savings"]
        md.append(f"| {r['attention']} | {r['t_eff']:.2f} | {r['rtl_equals_golden']} | "
                  f"{r['masked_total_cycles_per_image']:,.0f} | "
                  f"{r['unmasked_total_cycles_per_image']:,.0f} | "
                  f"{s['total_cycles_per_image']:.1%} | {s['cycles_per_image']:.1%} | "
                  f"{r['masked_matches_per_image']:,.0f} | "
                  f"{r['unmasked_matches_per_image']:,.0f} | {s['matches_per_image']:.1%} | "
                  f"{s['energy_per_image']:.1%} | {r['pe_use_linear']:.0%} / "
                  f"{r['pe_use_attention']:.0%} | {r['compute_share']:.0%} |")
    (outdir / "dtsnn_bench.md").write_text("\n".join(md) + "\n")
    (outdir / "dtsnn_bench.json").write_text(json.dumps(
        {"command": command, "accuracy": rows, "rtl": rtl}, indent=2) + "\n")
    plot(rows, outdir / "dtsnn_bench.png")
    print("\n".join(md))
    print(f"wrote {outdir / 'dtsnn_bench.json'}, .md, .png")


if __name__ == "__main__":
    torch.set_num_threads(2)
    main()
