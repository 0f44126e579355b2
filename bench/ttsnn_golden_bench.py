#!/usr/bin/env python3
"""TT-SNN golden figures: the ResNet-34 / N-Caltech101 reduction table and the digits networks.

    .venv/bin/python bench/ttsnn_golden_bench.py                 # about 5 min of CPU
    .venv/bin/python bench/ttsnn_golden_bench.py --epochs 30 --seeds 0,1,2

Parameters and MACs per time step of the dense network against its TT version with the real
rank table (``golden.ttsnn.param_flop_report``), beside the paper's 7.98x / 9.25x; then the digits
network (``golden.ttsnn.digits``) trained in float torch with a dense 3x3 block and with STT, PTT
and HTT blocks: test accuracy (mean over seeds), block parameters and MACs per step. Writes
``build/bench/ttsnn_golden_bench.{json,md,png}``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

from snnforge.generate import build_root
from snnforge.golden.ttsnn.digits import BLOCKS, train_digits
from snnforge.golden.ttsnn.report import PAPER_CLAIMS, RESNET34_NCALTECH, param_flop_report


def plot(rows, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(5, 3))
    ax.bar([r["block"] for r in rows], [r["accuracy"] for r in rows], color="C0")
    for i, r in enumerate(rows):
        ax.text(i, r["accuracy"], f"{r['block_macs_per_step']:,.0f} MACs", ha="center",
                va="bottom", fontsize=7)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("digits test accuracy")
    ax.set_title("TT-SNN digits net: dense vs TT blocks")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--seeds", default="0,1")
    ap.add_argument("--channels", type=int, default=8)
    ap.add_argument("--rank", type=int, default=4)
    ap.add_argument("-o", "--out", default=None, help="output directory (default build/bench)")
    args = ap.parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(",")]
    outdir = Path(args.out) if args.out else build_root() / "bench"
    outdir.mkdir(parents=True, exist_ok=True)
    command = "python bench/ttsnn_golden_bench.py " + " ".join(
        argv if argv is not None else sys.argv[1:])

    report = param_flop_report(*RESNET34_NCALTECH)
    t = report["total"]
    rows = []
    for block in BLOCKS:
        runs = [train_digits(block, epochs=args.epochs, seed=s, channels=args.channels,
                             rank=args.rank) for s in seeds]
        acc = [r.accuracy for r in runs]
        rows.append({"block": block, "accuracy": statistics.mean(acc), "accuracies": acc,
                     "block_params": runs[0].block_params, "total_params": runs[0].total_params,
                     "block_macs_per_step": runs[0].block_macs_per_step})
        print(f"{block}: accuracy {statistics.mean(acc):.3f} {acc}", flush=True)

    dense = rows[0]
    md = [f"Measured with `{command}`.", "",
          "ResNet-34 / N-Caltech101 with TT-SNN's rank table (stem and FC dense; every conv at "
          "its output map):", "",
          "| | dense | TT | reduction | paper |", "|---|---|---|---|---|",
          f"| parameters | {t['dense_params']:,} | {t['tt_params']:,} | "
          f"**{report['param_reduction']:.2f}x** | {PAPER_CLAIMS['params']}x |",
          f"| MACs per step | {t['dense_macs']:,} | {t['tt_macs']:,} | "
          f"**{report['mac_reduction']:.2f}x** | {PAPER_CLAIMS['flops']}x (FLOPs) |",
          f"| MACs per step, HTT late steps | {t['dense_macs']:,} | {t['htt_late_macs']:,} | "
          f"{t['dense_macs'] / t['htt_late_macs']:.2f}x | |", "",
          f"Digits (8x8, T=4, {args.channels} channels, rank {args.rank}, {args.epochs} epochs, "
          f"seeds {args.seeds}; float training):", "",
          "| block | test accuracy | block parameters | block MACs per step | vs dense |",
          "|---|---|---|---|---|"]
    for r in rows:
        md.append(f"| {r['block']} | {r['accuracy']:.1%} | {r['block_params']:,} | "
                  f"{r['block_macs_per_step']:,.0f} | "
                  f"{dense['block_macs_per_step'] / r['block_macs_per_step']:.2f}x fewer MACs |")
    md = "\n".join(md)
    (outdir / "ttsnn_golden_bench.md").write_text(md + "\n")
    (outdir / "ttsnn_golden_bench.json").write_text(json.dumps(
        {"command": command, "resnet34_ncaltech": {k: v for k, v in report.items()
                                                   if k != "layers"},
         "layers": report["layers"], "digits": rows}, indent=2) + "\n")
    plot(rows, outdir / "ttsnn_golden_bench.png")
    print(md)


if __name__ == "__main__":
    main()
