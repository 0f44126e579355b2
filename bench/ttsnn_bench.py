#!/usr/bin/env python3
"""TT-SNN forward and backward on the RTL: cycles per pipeline (STT, PTT, HTT) and phase, and
engine utilization.

    .venv/bin/python bench/ttsnn_bench.py                     # default layer, every pipeline
    .venv/bin/python bench/ttsnn_bench.py --shape 16x4x16x8x8 --T 4 --lanes 4
    .venv/bin/python bench/ttsnn_bench.py --lanes 2               # 2 lanes on every engine

For one layer (``Cin x r x Cout x H x W``, random cores and spikes at ``--density``) the core is
built for the layer and runs each pipeline, forward then backward (random output-spike
gradients), through ``snnforge run``'s path under Verilator; its outputs and gradients are
checked against ``golden.ttsnn.fixed_forward`` and ``fixed_backward``. Reported, all from the
RTL's counters: the forward phase's cycles (maps in, currents out), the whole layer's (with the
neuron pass), the backward pass's (surrogate, input-gradient and weight-gradient passes) and
end to end (with the DMA); each engine's MAC rows and utilization (rows per forward cycle, and
in steady state: the layer run again at half its height, the rows and forward cycles the extra
rows of the map add -- the maps' fill and drain, which depend on the width, cancel), the backward
unit's MACs per backward cycle; the computation energy of each phase from those
counters and SATA's per-operation energies (``golden.ttsnn.report.op_energy``); PTT's and HTT's
training-step time and energy against STT's, beside the paper's claims; and the layer's
multiply-accumulates from the TT shapes beside those of a dense 3x3 conv. A dense 3x3 on the same
engines is not built: the table gives its lower bound (every lane of the four engines busy every
cycle) and TT's speedup against that bound. Writes ``build/bench/ttsnn_bench.{json,md,png}``.
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
from snnforge.golden.ttsnn.fixed import fixed_backward, fixed_forward
from snnforge.golden.ttsnn.report import ANN_MAC, op_energy
from snnforge.golden.ttsnn.tt import TTCores

MODES = ("stt", "ptt", "htt")
ENGINES = ("g1", "g2", "g3", "g4")


def layer_inputs(c_in, rank, c_out, H, W, T, density, seed):
    g = torch.Generator().manual_seed(seed)
    draw = lambda *s: torch.randint(-8, 8, s, generator=g).numpy()
    spikes = (torch.rand(T, c_in, H, W, generator=g) < density).long().numpy()
    grad = torch.randint(-200, 201, (T, c_out, H, W), generator=g).numpy()
    return {"spikes": spikes, "g1": draw(rank, c_in), "g2": draw(rank, rank, 3),
            "g3": draw(rank, rank, 3), "g4": draw(c_out, rank), "grad": grad}


def macs_per_step(c_in, rank, c_out, H, W, late=False):
    """Multiply-accumulates of one step over the map (G1's are accumulates)."""
    per = rank * c_in + c_out * rank + (0 if late else 6 * rank * rank)
    return per * H * W


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--shape", default="8x4x8x8x8", metavar="CINxRxCOUTxHxW")
    ap.add_argument("--T", type=int, default=4)
    ap.add_argument("--htt-full", type=int, default=2)
    ap.add_argument("--lanes", default="2,4,4,2",
                    help="lanes of G1,G2,G3,G4 (one number: every engine); the default balances "
                         "the default layer's rows per position (G1, G4 16; G2, G3 12)")
    ap.add_argument("--density", type=float, default=0.3)
    ap.add_argument("-o", "--out", default=None, help="output directory (default build/bench)")
    args = ap.parse_args(argv)
    try:
        c_in, rank, c_out, H, W = (int(v) for v in args.shape.split("x"))
    except ValueError:
        ap.error(f"--shape {args.shape!r}: expected CINxRxCOUTxHxW, e.g. 8x4x8x8x8")
    outdir = Path(args.out) if args.out else build_root() / "bench"
    outdir.mkdir(parents=True, exist_ok=True)
    try:
        given = [int(v) for v in str(args.lanes).split(",")]
    except ValueError:
        ap.error(f"--lanes {args.lanes!r}: expected N or N,N,N,N")
    if len(given) not in (1, 4):
        ap.error(f"--lanes {args.lanes!r}: expected one number or four (G1,G2,G3,G4)")
    given = given * 4 if len(given) == 1 else given
    lanes = {f"lanes_{e}": min(n, c_out if e == "g4" else rank) for e, n in zip(ENGINES, given)}
    if H < 4:
        ap.error("--shape: the steady-state measurement needs a height of at least 4")
    rows = []

    def run(mode, options, height):
        """The layer at ``height`` on the RTL, its outputs checked against the golden model."""
        inputs = layer_inputs(c_in, rank, c_out, height, W, args.T, args.density, seed=1)
        done = run_job(Console(quiet=True), "ttsnn", lanes, inputs=inputs, options=options)
        p = done.design.config.fixed.replace(**options)
        cores = TTCores(*(torch.from_numpy(inputs[k]) for k in ENGINES))
        want = fixed_forward(torch.from_numpy(inputs["spikes"]), cores, p)
        grad_in, grads, _ = fixed_backward(torch.from_numpy(inputs["grad"]), want, cores, p)
        for name, value in (("y", want.y), ("spikes", want.spikes), ("membrane", want.membrane),
                            ("grad_in", grad_in),
                            *((f"grad_g{k}", getattr(grads, f"g{k}")) for k in (1, 2, 3, 4))):
            if not np.array_equal(done.result.outputs[name], value.numpy()):
                raise SystemExit(f"{mode} at height {height}: the RTL's {name} differ from the "
                                 "golden model")
        return done

    for mode in MODES:
        options = {"mode": mode, "htt_full": args.htt_full, "shift_y": 2, "theta": 20,
                   "surrogate": 200, "shift_b4": 2, "shift_b3": 3, "shift_b2": 3, "shift_b1": 2}
        done = run(mode, options, H)
        half = run(mode, options, H // 2).result.counters
        cfg = done.design.config
        c = done.result.counters
        late = [mode == "htt" and t >= args.htt_full for t in range(args.T)]
        macs = sum(macs_per_step(c_in, rank, c_out, H, W, lt) for lt in late)
        width = {e: cfg.lanes[k] for k, e in enumerate(ENGINES)}
        forward_ops = {"ac": c["g1_rows"] * width["g1"], "lif": c["neurons"] * args.T,
                       "mac": sum(c[f"{e}_rows"] * width[e] for e in ENGINES[1:])}
        backward_ops = {"pgu": c["neurons"] * args.T, "mac": c["backward_macs"]}
        dense_macs = 9 * c_in * c_out * H * W * args.T
        dense_bound = dense_macs / sum(cfg.lanes)
        rows.append({"mode": mode, "forward_cycles": c["forward_cycles"],
                     "layer_cycles": c["busy"], "end_to_end": c["total_cycles"],
                     "macs": macs, "dense_macs": dense_macs,
                     "dense_bound_cycles": dense_bound,
                     "speedup_vs_dense_bound": dense_bound / c["forward_cycles"],
                     "mac_reduction": dense_macs / macs,
                     "forward_energy": op_energy(forward_ops) / ANN_MAC,
                     "backward_energy": op_energy(backward_ops) / ANN_MAC,
                     **{f"{e}_rows": c[f"{e}_rows"] for e in ENGINES},
                     **{f"{e}_utilization": c[f"{e}_rows"] / c["forward_cycles"]
                        for e in ENGINES},
                     **{f"{e}_steady_utilization": (c[f"{e}_rows"] - half[f"{e}_rows"])
                        / (c["forward_cycles"] - half["forward_cycles"]) for e in ENGINES},
                     "steady_backward_utilization": (
                         (c["backward_macs"] - half["backward_macs"])
                         / (c["backward_cycles"] - half["backward_cycles"])),
                     "backward_cycles": c["backward_cycles"],
                     **{k: c[k] for k in ("surrogate_cycles", "dgrad_cycles", "wgrad_cycles",
                                          "backward_macs")},
                     "backward_utilization": c["backward_macs"] / c["backward_cycles"],
                     "training_step_cycles": c["busy"] + c["backward_cycles"]})
        rows[-1]["training_energy"] = rows[-1]["forward_energy"] + rows[-1]["backward_energy"]
        print(f"{mode}: forward {c['forward_cycles']:,} cycles, layer {c['busy']:,}, backward "
              f"{c['backward_cycles']:,}, end to end {c['total_cycles']:,}", flush=True)
    command = "python bench/ttsnn_bench.py " + " ".join(argv if argv is not None else sys.argv[1:])
    md = [f"Measured with `{command}`: layer Cin={c_in}, r={rank}, Cout={c_out}, {H}x{W}, "
          f"T={args.T} (HTT: {args.htt_full} full steps), lanes G1-G4 "
          f"{', '.join(str(v) for v in cfg.lanes)}, spikes at {args.density:.0%}; outputs equal "
          f"to the golden model.", "",
          "| pipeline | forward cycles | layer cycles | backward cycles (surrogate / input "
          "grad / weight grad) | training step | end to end | MACs (TT) | MACs (dense 3x3) | "
          "G1 / G2 / G3 / G4 utilization (steady state) | backward MAC utilization (steady "
          "state) |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        util = " / ".join(f"{r[f'{e}_utilization']:.0%}" for e in ENGINES) + " (" + \
            " / ".join(f"{r[f'{e}_steady_utilization']:.0%}" for e in ENGINES) + ")"
        md.append(f"| {r['mode'].upper()} | {r['forward_cycles']:,} | {r['layer_cycles']:,} | "
                  f"{r['backward_cycles']:,} ({r['surrogate_cycles']:,} / "
                  f"{r['dgrad_cycles']:,} / {r['wgrad_cycles']:,}) | "
                  f"{r['training_step_cycles']:,} | {r['end_to_end']:,} | {r['macs']:,} | "
                  f"{r['dense_macs']:,} | {util} | {r['backward_utilization']:.0%} "
                  f"({r['steady_backward_utilization']:.0%}) |")
    md += ["", "Utilization: an engine's MAC rows per forward-phase cycle (a row is `lanes` "
           "multiply-accumulates); the backward unit's multiply-accumulates (terms inside the "
           "map) per backward cycle, on its one MAC. Steady state: the same layer at half the "
           f"height ({H // 2} rows) run too; the extra rows' MAC rows over their extra cycles "
           "(each map's fill and drain cancel). An engine waiting on a slower neighbour is "
           "idle: balanced lanes (rows per position alike) keep every engine busy. Training step: the layer's forward "
           "(maps and neurons) plus its backward pass, DMA excluded.", "",
           "| pipeline | MAC reduction vs dense | dense 3x3 bound (cycles) | forward speedup vs "
           "the bound | speedup / reduction | forward energy | backward energy | training "
           "time vs STT | training energy vs STT |", "|---|---|---|---|---|---|---|---|---|"]
    stt = rows[0]
    for r in rows:
        md.append(f"| {r['mode'].upper()} | {r['mac_reduction']:.2f}x | "
                  f"{r['dense_bound_cycles']:,.0f} | {r['speedup_vs_dense_bound']:.2f}x | "
                  f"{r['speedup_vs_dense_bound'] / r['mac_reduction']:.0%} | "
                  f"{r['forward_energy']:,.0f} | {r['backward_energy']:,.0f} | "
                  f"{r['training_step_cycles'] / stt['training_step_cycles'] - 1:+.1%} | "
                  f"{r['training_energy'] / stt['training_energy'] - 1:+.1%} |")
    md += ["", "Dense 3x3 bound: the dense conv's multiply-accumulates over every lane of the "
           "four engines, all busy every cycle (not built: a lower bound of its cycles). Energy: "
           "computation only, from the RTL's counters (G1 rows x lanes accumulates, G2-G4 rows "
           "x lanes and the backward unit's MACs multiply-accumulates, one LIF update and one "
           "surrogate-gradient unit per neuron and step) times SATA's per-operation energies, "
           "in ANN MACs (`golden.ttsnn.report.SATA_OP_ENERGY`). The paper claims -17.7 % "
           "training time and -28.3 % training energy on N-Caltech101; the energy figure most "
           "likely compares PTT on a modified SATA with STT on SATA, including DRAM and SRAM "
           "energy (shared/papers/ttsnn.md section 10)."]
    (outdir / "ttsnn_bench.md").write_text("\n".join(md) + "\n")
    (outdir / "ttsnn_bench.json").write_text(json.dumps(
        {"command": command, "shape": args.shape, "T": args.T, "htt_full": args.htt_full,
         "lanes": list(cfg.lanes), "density": args.density, "rows": rows}, indent=2) + "\n")
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(5, 3))
    names = [r["mode"].upper() for r in rows]
    ax.bar(names, [r["layer_cycles"] for r in rows], color="C0", label="forward (layer)")
    ax.bar(names, [r["backward_cycles"] for r in rows],
           bottom=[r["layer_cycles"] for r in rows], color="C1", label="backward")
    ax.set_ylabel("cycles")
    ax.legend()
    ax.set_title(f"TT layer {args.shape}, T={args.T}")
    fig.tight_layout()
    fig.savefig(outdir / "ttsnn_bench.png", dpi=120)
    print("\n".join(md))


if __name__ == "__main__":
    main()
