#!/usr/bin/env python3
"""TReX attention reuse on the digits ViT: the reuse search, then the baseline and the chosen
reuse set run on the encoder core -- accuracy, cycles, crossbar reads, ADC conversions, attention
MACs, energy, delay, area and EDAP side by side -- and the ADC resolution swept on the ViT.

    .venv/bin/python bench/trex_bench.py                    # whole test split on the RTL
    .venv/bin/python bench/trex_bench.py --images 50 --target 0.6

1. The base ViT (``golden.trex.vit``: 4 encoders, dim 32, 4 heads) is trained in float; every
   reuse set of encoders 1..3 is fine-tuned from it for the same number of epochs (the empty set
   too, the fair baseline).
2. Each set's latency is its cycles per image on the encoder core (one image's run under
   Verilator; the cycles do not depend on the data); the search (``search_reuse``) takes the
   most accurate set within ``--target`` x the baseline's latency.
3. The baseline and the chosen set run with their whole encoder stack on the ``trex`` encoder
   core under Verilator (``sim.trex.vit_rtl.encoders_on_core``: every matmul on its tile, every
   head on its attention unit, LayerNorms, requantizations and residuals in its vector unit,
   reuse by its registers; the patch embedding and the classifier head on the host, golden);
   their predictions must equal the integer golden model's (``golden.trex.vit_int``) on the
   same images, and the core's counters give energy, delay (its busy cycles less weight
   loading, at 250 MHz) and area (every weight matrix resident in its tiles, one attention unit
   and the vector unit) through ``golden.trex.cost.encoder_cost``.
4. ADC sweep: the chosen set's integer model (equal to the RTL, step 3) at each ``--adc-bits``
   on the whole test split: accuracy and the crossbar's energy per image.

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
from snnforge.golden.trex.cost import encoder_cost, tile_area, xbar_cost
from snnforge.golden.trex.params import XbarParams
from snnforge.golden.trex.vit import ViTConfig, evaluate, finetune, search_reuse, train_vit
from snnforge.golden.trex.vit_int import GoldenOps, IntViT
from snnforge.hw.trex.attention import AttentionUnit
from snnforge.sim.trex.vit_rtl import encoders_on_core

#: The tile the ViT is mapped on: 64 rows hold the MLP's inputs, 16 logical columns a load.
TILE = {"rows": 64, "cols": 128, "cell_bits": 2, "w_bits": 8, "in_bits": 8, "cols_per_adc": 8,
        "adc_bits": 6}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--epochs", type=int, default=60, help="base training epochs")
    ap.add_argument("--finetune", type=int, default=15, help="fine-tuning epochs per set")
    ap.add_argument("--target", type=float, default=0.8,
                    help="latency target as a fraction of the baseline's")
    ap.add_argument("--images", type=int, default=0, help="test images on the RTL (0: all)")
    ap.add_argument("--adc-shift", type=int, default=0)
    ap.add_argument("--adc-bits", default="2,3,4,5,6,8",
                    help="ADC resolutions of the sweep (comma-separated)")
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

    def latency(reuse):
        """The encoder core's busy cycles for one image (they do not depend on the data)."""
        model = IntViT(base, x_train[:64], reuse, tile=tile)
        ops = GoldenOps(tile, model.attn, adc_shift=args.adc_shift)
        _, done = encoders_on_core(run_job, model, x_test[:1], ops, adc_shift=args.adc_shift)
        return done.result.counters["busy"]

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
        start = time.monotonic()
        logits, done = encoders_on_core(run_job, model, x_test[:n], golden,
                                        adc_shift=args.adc_shift)
        rtl_pred = logits.argmax(-1)
        if not torch.equal(rtl_pred, golden_pred[:n]):
            raise SystemExit(f"{name}: the RTL's predictions differ from the integer golden "
                             "model's")
        c = done.result.counters
        unit = attention_unit(model.attn)
        cost = encoder_cost(tile, c, cfg.d_head, unit.quotient_bits)
        # Resident weights: every matrix in its own tiles (the core time-shares one).
        area = cost.area["total"] + (model.tiles() - 1) * tile_area(tile)["total"]
        energy, delay = cost.energy_pj / n, cost.delay_ns / n
        measured.append({
            "config": name, "reuse": list(reuse),
            "float_accuracy": evaluate(model_f, x_test, y_test, reuse),
            "int_accuracy": float((golden_pred == y_test).float().mean()),
            "rtl_images": n, "rtl_accuracy": float((rtl_pred == y_test[:n]).float().mean()),
            "cycles_per_image": c["busy"] / n,
            "stage_cycles_per_image": {k: c[f"{k}_cycles"] / n for k in (
                "ln", "matmul", "weight", "attention", "residual")},
            "xbar_reads_per_image": c["reads"] / n,
            "adc_conversions_per_image": c["conversions"] / n,
            "attention_macs_per_image": c["attention_macs"] / n,
            "energy_pj": energy, "energy_by_part_pj": {k: v / n for k, v in cost.energy.items()},
            "delay_ns": delay, "tiles": model.tiles(), "area_um2": area,
            "edap": energy * delay * area * 1e-6, "sim_cycles": done.sim_cycles,
            "rtl_wall_s": time.monotonic() - start})
        r = measured[-1]
        print(f"{name} {list(reuse)}: RTL = golden on {n} images, accuracy "
              f"{r['rtl_accuracy']:.1%}, {r['cycles_per_image']:,.0f} cycles/image, "
              f"{energy / 1e3:.1f} nJ, EDAP {r['edap']:.3g}", flush=True)
    sweep = []
    for bits in (int(b) for b in args.adc_bits.split(",")):
        sized = XbarParams(**{**TILE, "adc_bits": bits})    # the tile built with this ADC
        ops = GoldenOps(sized, model.attn, adc_shift=args.adc_shift)
        pred = model.predict(x_test, ops)
        xc = xbar_cost(sized, {**ops.counts, "busy": 0})
        sweep.append({"adc_bits": bits, "accuracy": float((pred == y_test).float().mean()),
                      "xbar_energy_pj": xc.energy_pj / len(x_test)})
        print(f"ADC {bits} bits: accuracy {sweep[-1]['accuracy']:.1%}, crossbar energy "
              f"{sweep[-1]['xbar_energy_pj'] / 1e3:.2f} nJ/image", flush=True)
    write(outdir, argv, args, rows, measured, baseline_latency, target, sweep)


def attention_unit(attn):
    """The attention unit, built for its cycle formula only."""
    unit = AttentionUnit(attn)
    silence_unelaborated(unit)
    return unit


def write(outdir, argv, args, rows, measured, baseline_latency, target, sweep):
    command = "python bench/trex_bench.py " + " ".join(argv if argv is not None else sys.argv[1:])
    base, reuse = measured
    md = [f"Measured with `{command}`: the digits ViT (4 encoders, dim 32, 4 heads, 16 tokens) "
          f"on {TILE['rows']}x{TILE['cols']} tiles ({TILE['cell_bits']}-bit cells, "
          f"{TILE['adc_bits']}-bit ADC, shift {args.adc_shift}) and one attention unit; latency "
          f"target {args.target:.0%} of the baseline's {baseline_latency:,} cycles/image. "
          "Digits, not ImageNet: TReX reports 2.3x EDAP on DeiT-S.", "",
          "Search (float accuracy on a validation split of the training images after "
          "fine-tuning; latency: the encoder core's cycles per image):",
          "", "| reuse | cycles / image | within target | validation accuracy |", "|---|---|---|---|"]
    for r in rows:
        acc = f"{r['accuracy']:.1%}" if "accuracy" in r else "-"
        md.append(f"| {r['reuse'] or '-'}{' (chosen)' if r.get('chosen') else ''} | "
                  f"{r['latency']:,} | {'yes' if r['within_target'] else 'no'} | {acc} |")
    md += ["", f"On the encoder core ({base['rtl_images']} test images, the encoder stack on the "
           "RTL; predictions equal to the integer golden model's):", "",
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
           "Cycles: the core's busy cycles per image (LayerNorm / matmul / weight loading / "
           "attention / residual: " + "; ".join(
               f"{r['config']} " + " / ".join(f"{v:,.0f}" for v in
                                              r["stage_cycles_per_image"].values())
               for r in measured) + "). Energy: crossbar reads and ADC conversions "
           "(`golden.trex.cost`, SpikeSim's 65 nm constants), the attention unit's MACs and "
           "softmax steps and the vector unit's element operations as MACs (Horowitz 45 nm), "
           "buffer row accesses; the patch embedding and the head (on the host) are not "
           "counted, on both sides. Delay: the core's busy cycles less weight loading at 250 "
           "MHz (TReX's tiles hold their weights; the FPGA core reloads one tile). Area: every "
           "weight matrix resident in its tiles (reuse drops an encoder's Q, K, V and "
           "projection and adds its TB), one attention unit, the vector unit.", "",
           "ADC sweep (the reuse configuration's integer model, equal to the RTL, whole test "
           "split):", "", "| ADC bits | accuracy | crossbar + ADC energy (nJ/image) |",
           "|---|---|---|"]
    md += [f"| {r['adc_bits']} | {r['accuracy']:.1%} | {r['xbar_energy_pj'] / 1e3:.2f} |"
           for r in sweep]
    (outdir / "trex_bench.md").write_text("\n".join(md) + "\n")
    (outdir / "trex_bench.json").write_text(json.dumps(
        {"command": command, "tile": TILE, "target": args.target,
         "baseline_latency": baseline_latency, "search": rows, "measured": measured,
         "adc_sweep": sweep},
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
