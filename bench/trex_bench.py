#!/usr/bin/env python3
"""TReX attention reuse on the digits ViT: the reuse search, then the baseline and the chosen
reuse set run on the RTL units -- accuracy, cycles, crossbar reads, ADC conversions, attention
MACs, energy, delay, area and EDAP side by side.

    .venv/bin/python bench/trex_bench.py                    # whole test split on the RTL
    .venv/bin/python bench/trex_bench.py --images 50 --target 0.6

1. The base ViT (``golden.trex.vit``: 4 encoders, dim 32, 4 heads) is trained in float; every
   reuse set of encoders 1..3 is fine-tuned from it for the same number of epochs (the empty set
   too, the fair baseline).
2. Each set's latency is its cycles per image on the RTL units, from the integer model's counts
   (crossbar reads x ``cols_per_adc`` + attention rows x the unit's cycles per row); the search
   (``search_reuse``) takes the most accurate set within ``--target`` x the baseline's latency.
3. The baseline and the chosen set run through the integer model (``golden.trex.vit_int``) with
   every crossbar matmul on the ``xbar`` core and every head on the ``attn`` core under Verilator
   (``sim.trex.vit_rtl``); their predictions must equal the golden backend's on the same
   images, and the RTL's counters give energy, delay (the units' busy cycles at 250 MHz) and
   area (every weight matrix resident in its tiles, one attention unit) through
   ``golden.trex.cost``.

Writes ``build/bench/trex_bench.{json,md,png}``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from snnforge.flows import run_job
from snnforge.generate import build_root, silence_unelaborated
from snnforge.golden.common.digits import load_digits_split
from snnforge.golden.trex.cost import attention_cost, tile_area, xbar_cost
from snnforge.golden.trex.params import XbarParams
from snnforge.golden.trex.vit import ViTConfig, evaluate, finetune, search_reuse, train_vit
from snnforge.golden.trex.vit_int import GoldenOps, IntViT
from snnforge.hw.trex.attention import AttentionUnit
from snnforge.sim.trex.vit_rtl import RtlOps

#: The tile the ViT is mapped on: 64 rows hold the MLP's inputs, 16 logical columns a load.
TILE = {"rows": 64, "cols": 128, "cell_bits": 2, "w_bits": 8, "in_bits": 8, "cols_per_adc": 8,
        "adc_bits": 6}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--epochs", type=int, default=60, help="base training epochs")
    ap.add_argument("--finetune", type=int, default=15, help="fine-tuning epochs per set")
    ap.add_argument("--target", type=float, default=0.75,
                    help="latency target as a fraction of the baseline's")
    ap.add_argument("--images", type=int, default=0, help="test images on the RTL (0: all)")
    ap.add_argument("--adc-shift", type=int, default=0)
    ap.add_argument("-o", "--out", default=None, help="output directory (default build/bench)")
    args = ap.parse_args(argv)
    outdir = Path(args.out) if args.out else build_root() / "bench"
    outdir.mkdir(parents=True, exist_ok=True)
    x_train, y_train, x_test, y_test = load_digits_split()
    cfg = ViTConfig()
    tile = XbarParams(**TILE)
    # The search chooses on a validation split of the training images; the test split measures.
    split = len(x_train) * 4 // 5
    x_fit, y_fit, x_val, y_val = x_train[:split], y_train[:split], x_train[split:], \
        y_train[split:]
    torch.manual_seed(0)
    base = train_vit(x_fit, y_fit, cfg, epochs=args.epochs)
    print(f"base ViT: float accuracy {evaluate(base, x_test, y_test):.1%}", flush=True)

    def cycles(counts, attn):
        unit = attention_unit(attn)
        return (counts["reads"] * tile.cols_per_adc
                + counts["attention_rows"] * unit.cycles_per_row(cfg.tokens))

    def latency(reuse):
        model = IntViT(base, x_train[:64], reuse, tile=tile)
        ops = GoldenOps(tile, model.attn, adc_shift=args.adc_shift)
        model.logits(x_test[:1], ops)
        return cycles(ops.counts, model.attn)

    baseline_latency = latency(())
    target = args.target * baseline_latency
    rows = search_reuse(base, x_fit, y_fit, x_val, y_val, latency, target, epochs=args.finetune)
    for r in rows:
        print(f"reuse {r['reuse']}: {r['latency']:,} cycles/image"
              + (f", float accuracy {r['accuracy']:.1%}" if "accuracy" in r else ""),
              flush=True)
    chosen = next(r for r in rows if r.get("chosen"))
    n = args.images or len(x_test)
    measured = []
    for name, reuse in (("baseline", ()), ("reuse", tuple(chosen["reuse"]))):
        model_f = finetune(base, x_fit, y_fit, reuse, epochs=args.finetune)
        model = IntViT(model_f, x_train[:256], reuse, tile=tile)
        golden = GoldenOps(tile, model.attn, adc_shift=args.adc_shift)
        golden_pred = model.predict(x_test, golden)
        rtl = RtlOps(run_job, tile, model.attn, adc_shift=args.adc_shift)
        start = time.monotonic()
        rtl_pred = model.predict(x_test[:n], rtl)
        if not torch.equal(rtl_pred, golden_pred[:n]):
            raise SystemExit(f"{name}: the RTL's predictions differ from the integer golden "
                             "model's")
        c = rtl.counts
        xc = xbar_cost(tile, {"reads": c["xbar_reads"], "conversions": c["xbar_conversions"],
                              "busy": c["xbar_busy"]})
        unit = attention_unit(model.attn)
        ac = attention_cost({"rows": c["attn_rows"], "macs": c["attn_macs"],
                             "busy": c["attn_busy"]}, cfg.d_head, unit.quotient_bits)
        area = model.tiles() * tile_area(tile)["total"] + ac.area["total"]
        energy = (xc.energy_pj + ac.energy_pj) / n
        delay = (xc.delay_ns + ac.delay_ns) / n
        measured.append({
            "config": name, "reuse": list(reuse),
            "float_accuracy": evaluate(model_f, x_test, y_test, reuse),
            "int_accuracy": float((golden_pred == y_test).float().mean()),
            "rtl_images": n, "rtl_accuracy": float((rtl_pred == y_test[:n]).float().mean()),
            "cycles_per_image": (c["xbar_busy"] + c["attn_busy"]) / n,
            "xbar_reads_per_image": c["xbar_reads"] / n,
            "adc_conversions_per_image": c["xbar_conversions"] / n,
            "attention_macs_per_image": c["attn_macs"] / n,
            "energy_pj": energy, "energy_xbar_pj": xc.energy_pj / n,
            "energy_attention_pj": ac.energy_pj / n, "delay_ns": delay,
            "tiles": model.tiles(), "area_um2": area,
            "edap": energy * delay * area * 1e-6, "rtl_jobs": rtl.jobs,
            "rtl_wall_s": time.monotonic() - start})
        r = measured[-1]
        print(f"{name} {list(reuse)}: RTL = golden on {n} images, accuracy "
              f"{r['rtl_accuracy']:.1%}, {r['cycles_per_image']:,.0f} cycles/image, "
              f"{energy / 1e3:.1f} nJ, EDAP {r['edap']:.3g}", flush=True)
    write(outdir, argv, args, rows, measured, baseline_latency, target)


def attention_unit(attn):
    """The attention unit, built for its cycle formula only."""
    unit = AttentionUnit(attn)
    silence_unelaborated(unit)
    return unit


def write(outdir, argv, args, rows, measured, baseline_latency, target):
    command = "python bench/trex_bench.py " + " ".join(argv if argv is not None else sys.argv[1:])
    base, reuse = measured
    md = [f"Measured with `{command}`: the digits ViT (4 encoders, dim 32, 4 heads, 16 tokens) "
          f"on {TILE['rows']}x{TILE['cols']} tiles ({TILE['cell_bits']}-bit cells, "
          f"{TILE['adc_bits']}-bit ADC, shift {args.adc_shift}) and one attention unit; latency "
          f"target {args.target:.0%} of the baseline's {baseline_latency:,} cycles/image. "
          "Digits, not ImageNet: TReX reports 2.3x EDAP on DeiT-S.", "",
          "Search (float accuracy on a validation split of the training images after "
          "fine-tuning; latency from the integer model's counts):",
          "", "| reuse | cycles / image | within target | validation accuracy |", "|---|---|---|---|"]
    for r in rows:
        acc = f"{r['accuracy']:.1%}" if "accuracy" in r else "-"
        md.append(f"| {r['reuse'] or '-'}{' (chosen)' if r.get('chosen') else ''} | "
                  f"{r['latency']:,} | {'yes' if r['within_target'] else 'no'} | {acc} |")
    md += ["", f"On the RTL ({base['rtl_images']} test images; predictions equal to the integer "
           "golden model's):", "",
           "| config | reuse | accuracy float / int / RTL | cycles / image | crossbar reads | "
           "ADC conversions | attention MACs | energy (nJ) | delay (us) | tiles | area (mm^2) "
           "| EDAP (pJ s mm^2) |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in measured:
        md.append(f"| {r['config']} | {r['reuse'] or '-'} | {r['float_accuracy']:.1%} / "
                  f"{r['int_accuracy']:.1%} / {r['rtl_accuracy']:.1%} | "
                  f"{r['cycles_per_image']:,.0f} | {r['xbar_reads_per_image']:,.0f} | "
                  f"{r['adc_conversions_per_image']:,.0f} | "
                  f"{r['attention_macs_per_image']:,.0f} | {r['energy_pj'] / 1e3:.1f} | "
                  f"{r['delay_ns'] / 1e3:.2f} | {r['tiles']} | {r['area_um2'] / 1e6:.3f} | "
                  f"{r['edap'] * 1e-9:.3g} |")
    md += ["", f"EDAP reduction {base['edap'] / reuse['edap']:.2f}x, energy "
           f"{base['energy_pj'] / reuse['energy_pj']:.2f}x, delay "
           f"{base['delay_ns'] / reuse['delay_ns']:.2f}x, area "
           f"{base['area_um2'] / reuse['area_um2']:.2f}x; accuracy change "
           f"{reuse['int_accuracy'] - base['int_accuracy']:+.1%} (integer model, whole test "
           "split).", "",
           "Energy: crossbar reads and ADC conversions (`golden.trex.cost`, SpikeSim's 65 nm "
           "constants) plus the attention unit's MACs and softmax steps (Horowitz 45 nm); the "
           "glue on the host (LayerNorm, requantization, residuals) is not counted, on both "
           "sides. Delay: the units' busy cycles at 250 MHz, one unit after another. Area: every "
           "weight matrix resident in its tiles (reuse drops an encoder's Q, K, V and projection "
           "and adds its TB) and one attention unit."]
    (outdir / "trex_bench.md").write_text("\n".join(md) + "\n")
    (outdir / "trex_bench.json").write_text(json.dumps(
        {"command": command, "tile": TILE, "target": args.target,
         "baseline_latency": baseline_latency, "search": rows, "measured": measured},
        indent=2) + "\n")
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(5, 3.2))
    for r in measured:
        ax.scatter(r["edap"] * 1e-9, 100 * r["int_accuracy"], s=40,
                   label=f"{r['config']} {r['reuse'] or ''}")
    ax.set_xlabel("EDAP per image (pJ s mm^2)")
    ax.set_ylabel("accuracy (%)")
    ax.legend(fontsize=7)
    ax.set_title("Digits ViT: attention reuse")
    fig.tight_layout()
    fig.savefig(outdir / "trex_bench.png", dpi=120)
    print("\n".join(md))


if __name__ == "__main__":
    main()
