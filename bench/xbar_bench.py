#!/usr/bin/env python3
"""The crossbar tile on the RTL: cycles per matrix-vector product against the analytic bound, an
ADC-precision sweep (accuracy vs energy) and spiking vs bit-serial inputs, on scikit-learn's
digits.

    .venv/bin/python bench/xbar_bench.py                  # default 128x128 tile
    .venv/bin/python bench/xbar_bench.py --adc-bits 1,2,4,8 --T 4

The workload is a linear classifier of the digits (64 pixels -> 10 classes), trained in float
here (softmax regression, Adam), its weights quantized to ``w_bits`` and mapped onto the tile
(10 columns: two loads of the default tile's 9 logical columns). Every test image runs through
``snnforge run xbar``'s path under Verilator, and every result is checked against
``golden.trex.xbar``:

* bit-serial: the pixels (0..16) as 6-bit inputs, on a tile built with an 8-bit ADC so that one
  build sweeps ``--adc-bits`` (each ADC's range calibrated on the training split,
  ``calibrate_shift``); accuracy of the RTL's predictions (largest ``y``), energy, delay and
  EDAP per image from the RTL's counters and ``golden.trex.cost``;
* spiking: the same weights, the pixels thermometer-coded over ``--T`` steps, one crossbar
  read per step and the LIF on the columns; accuracy by the summed currents and by spike count;
* the tile's busy cycles per vector against ``in_bits x cols_per_adc`` (``cols_per_adc`` per
  spiking step), the issue bound;
* the golden model's non-ideal analog front end (conductance variation, IR drop) at the default
  ADC resolution: accuracy only (the RTL is the digital back end).

Writes ``build/bench/xbar_bench.{json,md,png}``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
from rich.console import Console

from snnforge.flows import run_job
from snnforge.generate import build_root
from snnforge.golden.common.digits import encode, load_digits_split
from snnforge.golden.trex.cost import xbar_cost
from snnforge.golden.trex.xbar import NonIdeal, calibrate_shift, xbar_mvm, xbar_spiking
from snnforge.registry import get_generator

IN_BITS = 6         # pixels 0..16 as signed 6-bit inputs


def train_classifier(x_train, y_train, w_bits, seed=0):
    """Softmax regression on the pixels; weights quantized symmetrically to ``w_bits``."""
    torch.manual_seed(seed)
    lin = torch.nn.Linear(64, 10, bias=False)
    opt = torch.optim.Adam(lin.parameters(), lr=0.01)
    for _ in range(300):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(lin(x_train / 16), y_train).backward()
        opt.step()
    w = lin.weight.detach().T                          # [64, 10]
    top = (1 << (w_bits - 1)) - 1
    return w, torch.round(w / w.abs().max() * top).long()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--adc-bits", default="1,2,3,4,5,6,8", help="ADC resolutions to sweep")
    ap.add_argument("--T", type=int, default=8, help="time steps of the spiking run")
    ap.add_argument("-p", dest="params", action="append", default=[], metavar="NAME=VALUE",
                    help="tile parameters (default: the generator's, adc_bits=8)")
    ap.add_argument("-o", "--out", default=None, help="output directory (default build/bench)")
    args = ap.parse_args(argv)
    try:
        sweep = [int(b) for b in args.adc_bits.split(",")]
        params = dict(item.split("=", 1) for item in args.params)
    except ValueError:
        ap.error("--adc-bits takes integers (1,2,4), -p takes name=value")
    params = {"adc_bits": max(8, *sweep), **params}
    outdir = Path(args.out) if args.out else build_root() / "bench"
    outdir.mkdir(parents=True, exist_ok=True)
    x_train, y_train, x_test, y_test = load_digits_split()
    xtr, xte = x_train.reshape(-1, 64).long(), x_test.reshape(-1, 64).long()
    console = Console(quiet=True)

    cfg = get_generator("xbar").configure(params)
    w_float, w_q = train_classifier(x_train.reshape(-1, 64), y_train, cfg.w_bits)
    float_acc = float(((x_test.reshape(-1, 64) @ w_float).argmax(1) == y_test).float().mean())
    exact_acc = float(((xte @ w_q).argmax(1) == y_test).float().mean())
    rows = []
    for bits in sweep:
        shift = calibrate_shift(xtr, w_q, cfg.tile, bits, in_bits=IN_BITS)
        options = {"in_bits": IN_BITS, "adc_bits": bits, "adc_shift": shift}
        done = run_job(console, "xbar", params, inputs={"x": xte.numpy(), "w": w_q.numpy()},
                       options=options)
        want = xbar_mvm(xte, w_q, cfg.tile, in_bits=IN_BITS, adc_bits=bits, adc_shift=shift)
        if not np.array_equal(done.result.outputs["y"], want.y.numpy()):
            raise SystemExit(f"adc_bits={bits}: the RTL's y differ from the golden model")
        rows.append(measure("bit-serial", bits, shift, done, cfg, len(xte), IN_BITS, y_test))
        print(f"{IN_BITS}-bit inputs, {bits}-bit ADC: accuracy {rows[-1]['accuracy']:.1%}, "
              f"{rows[-1]['energy_nj']:.2f} nJ/image", flush=True)

    spikes, train_spikes = encode(x_test, args.T).long(), encode(x_train, args.T).long()
    spiking_rows = []
    for bits in sorted({max(sweep)} | ({cfg.adc_bits} & set(sweep)) | ({6} & set(sweep))):
        shift = calibrate_shift(train_spikes, w_q, cfg.tile, bits, spiking=True)
        # The LIF threshold: the upper quartile of the positive per-step results on the
        # training split (a spike marks a strong class score).
        per_step = xbar_mvm(train_spikes, w_q, cfg.tile, adc_bits=bits, adc_shift=shift,
                            spiking=True).y
        threshold = max(1, int(per_step[per_step > 0].float().quantile(0.75)))
        options = {"spiking": True, "adc_bits": bits, "adc_shift": shift,
                   "threshold": threshold}
        done = run_job(console, "xbar", {**params, "T": args.T},
                       inputs={"x": spikes.numpy(), "w": w_q.numpy()}, options=options)
        scfg = done.design.config
        want = xbar_spiking(spikes, w_q, scfg.tile, scfg.lif.replace(threshold=threshold),
                            adc_bits=bits, adc_shift=shift)
        for name in ("y", "spikes"):
            if not np.array_equal(done.result.outputs[name], getattr(want, name).numpy()):
                raise SystemExit(f"spiking: the RTL's {name} differ from the golden model")
        row = measure("spiking", bits, shift, done, scfg, len(xte), 1, y_test, steps=args.T)
        count = done.result.outputs["spikes"].sum(0)
        row["spike_count_accuracy"] = float((count.argmax(1) == y_test.numpy()).mean())
        row["threshold"] = threshold
        spiking_rows.append(row)
        print(f"spiking T={args.T}, {bits}-bit ADC: accuracy {row['accuracy']:.1%}, "
              f"{row['energy_nj']:.2f} nJ/image", flush=True)

    # The analog front end's non-idealities (golden model only: the RTL is the digital twin).
    analog_rows = []
    bits = cfg.adc_bits if cfg.adc_bits in sweep else max(sweep)
    shift = calibrate_shift(xtr, w_q, cfg.tile, bits, in_bits=IN_BITS)
    for sigma, r_wire in ((0.0, 0.0), (0.05, 0.0), (0.1, 0.0), (0.2, 0.0), (0.3, 0.0),
                          (0.0, 1.0), (0.0, 5.0)):
        y = xbar_mvm(xte, w_q, cfg.tile, in_bits=IN_BITS, adc_bits=bits, adc_shift=shift,
                     analog=NonIdeal(sigma=sigma, r_wire=r_wire, seed=1)).y
        analog_rows.append({"sigma": sigma, "r_wire": r_wire, "adc_bits": bits,
                            "accuracy": float((y.argmax(1) == y_test).float().mean())})
        print(f"non-ideal sigma={sigma} r_wire={r_wire}: accuracy "
              f"{analog_rows[-1]['accuracy']:.1%}", flush=True)

    command = "python bench/xbar_bench.py " + " ".join(argv if argv is not None else sys.argv[1:])
    write_report(outdir, command, cfg, rows, spiking_rows, analog_rows, float_acc, exact_acc,
                 args.T, len(xte))


def measure(mode, bits, shift, done, cfg, images, planes, labels, steps=1):
    """One run's accuracy, cycles against the bound, and cost per image."""
    c = done.result.counters
    y = done.result.outputs["y"]
    score = y.sum(0) if mode == "spiking" else y
    accuracy = float((score.argmax(1) == labels.numpy()).mean())
    bound = c["vectors"] * planes * cfg.cols_per_adc
    work = {**c, "neuron_steps": c["neurons"] * steps}
    cost = xbar_cost(cfg.tile, work, adc_bits=bits)
    return {"mode": mode, "adc_bits": bits, "adc_shift": shift, "accuracy": accuracy,
            "vectors": c["vectors"], "busy_cycles": c["busy"], "bound_cycles": bound,
            "busy_over_bound": c["busy"] / bound, "end_to_end_cycles": c["total_cycles"],
            "reads": c["reads"], "conversions": c["conversions"],
            "cycles_per_image": c["busy"] / images,
            "energy_nj": cost.energy_pj / images / 1e3,
            "energy_by_part_pj": {k: v / images for k, v in cost.energy.items()},
            "delay_ns": cost.delay_ns / images, "area_um2": cost.area["total"],
            "edap": cost.edap / images / images}


def write_report(outdir, command, cfg, rows, spiking_rows, analog_rows, float_acc, exact_acc,
                 T, images):
    md = [f"Measured with `{command}`: a {cfg.rows}x{cfg.cols} tile ({cfg.cell_bits}-bit cells, "
          f"{cfg.w_bits}-bit weights, {cfg.n_adc} ADCs of {cfg.cols_per_adc} columns), the "
          f"digits linear classifier (64 -> 10, two loads of the tile's {cfg.n_out} columns) on "
          f"the {images} test images; every RTL result equal to the golden "
          f"model. Float accuracy {float_acc:.1%}; integer (exact matmul, {cfg.w_bits}-bit "
          f"weights) {exact_acc:.1%}.", "",
          "| inputs | ADC bits | shift | accuracy | cycles / image | busy / bound | energy / "
          "image (nJ) | ADC share | delay / image (ns) | EDAP / image (pJ ns mm^2) |",
          "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows + spiking_rows:
        what = f"{IN_BITS}-bit serial" if r["mode"] == "bit-serial" else f"spikes, T={T}"
        md.append(f"| {what} | {r['adc_bits']} | {r['adc_shift']} | {r['accuracy']:.1%} | "
                  f"{r['cycles_per_image']:.1f} | {r['busy_over_bound']:.4f} | "
                  f"{r['energy_nj']:.2f} | "
                  f"{r['energy_by_part_pj']['adc'] / r['energy_by_part_pj']['total']:.0%} | "
                  f"{r['delay_ns']:.0f} | {r['edap']:.3g} |")
    for r in spiking_rows:
        md.append("")
        md.append(f"Spiking, {r['adc_bits']}-bit ADC, LIF threshold {r['threshold']}: accuracy "
                  f"by spike count {r['spike_count_accuracy']:.1%} (by summed currents "
                  f"{r['accuracy']:.1%}).")
    md += ["", f"Non-ideal analog front end (`golden.trex.xbar.NonIdeal`, golden model only; "
           f"R_on 6 kOhm, on/off 150, {analog_rows[0]['adc_bits']}-bit ADC, {IN_BITS}-bit "
           "inputs): conductance variation sigma and column-wire resistance per segment.", "",
           "| sigma | r_wire (ohm) | accuracy |", "|---|---|---|"]
    md += [f"| {r['sigma']} | {r['r_wire']} | {r['accuracy']:.1%} |" for r in analog_rows]
    md += ["", "Cycles: the tile's busy cycles (a vector in flight) per image; bound: "
           "`in_bits x cols_per_adc` issue cycles per vector (spiking: `cols_per_adc` per step) "
           "-- the ratio includes the pipeline's fixed latency once per load of the tile. "
           "Energy, delay, area: `golden.trex.cost` (SpikeSim's 65 nm constants scaled to the "
           "tile; delay at 250 MHz) on the RTL's counters of crossbar reads and ADC "
           "conversions."]
    (outdir / "xbar_bench.md").write_text("\n".join(md) + "\n")
    (outdir / "xbar_bench.json").write_text(json.dumps(
        {"command": command, "tile": cfg.tile.values(), "float_accuracy": float_acc,
         "exact_accuracy": exact_acc, "bit_serial": rows, "spiking": spiking_rows,
         "non_ideal": analog_rows},
        indent=2) + "\n")
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(5, 3.2))
    ax.plot([r["energy_nj"] for r in rows], [100 * r["accuracy"] for r in rows], "o-",
            label=f"{IN_BITS}-bit bit-serial")
    for r in rows:
        ax.annotate(f"{r['adc_bits']}b", (r["energy_nj"], 100 * r["accuracy"]), fontsize=7)
    ax.plot([r["energy_nj"] for r in spiking_rows], [100 * r["accuracy"] for r in spiking_rows],
            "s", color="C3", label=f"spiking T={T}")
    ax.axhline(100 * exact_acc, color="gray", lw=0.8, ls="--", label="exact integer")
    ax.set_xscale("log")
    ax.set_xlabel("energy per image (nJ)")
    ax.set_ylabel("accuracy (%)")
    ax.legend(fontsize=7)
    ax.set_title("Crossbar tile on digits: ADC precision")
    fig.tight_layout()
    fig.savefig(outdir / "xbar_bench.png", dpi=120)
    print("\n".join(md))


if __name__ == "__main__":
    main()
