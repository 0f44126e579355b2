#!/usr/bin/env python3
"""TT-SNN on the RTL: a dense 3x3 conv against STT, PTT and HTT on the same MAC budget, per
benchmark layer -- forward speedup against the MAC reduction, cycles per phase, engine
utilization, computation energy.

    .venv/bin/python bench/ttsnn_bench.py                          # the scaled ResNet-19 layers
    .venv/bin/python bench/ttsnn_bench.py --layers s1 --budget 16
    .venv/bin/python bench/ttsnn_bench.py --layers 8x4x8x8x8 --lanes 2,4,4,2

Benchmark layers (``Cin x r x Cout x H x W``): the CIFAR ResNet-19's three stages scaled to
simulate in minutes -- channels / 4, maps at most 8x8 (32, 16, 8 in the network), ranks the
stage medians of the notes' real rank table / 4 -- or any shape (at least 4 rows: the
steady-state measurement halves them). Each
layer's core has the TT engines and a dense 3x3 engine on the same budget of MAC units (a
unit: one lane's product per cycle; an engine has ``lanes x ways``): the dense engine's fastest
shape within ``--budget`` units, and the TT engines' shapes within the same ``--budget`` units
together, chosen so that the slowest engine takes the fewest cycles per position (ties: G1 and
G4 faster, as HTT's late steps run on them alone; then fewer units); ``--lanes`` fixes the TT
lanes (one way each). Random cores, dense weights and spikes at ``--density``; every run
checked against the golden model (``fixed_forward`` / ``fixed_backward`` /
``fixed_dense_forward`` / ``fixed_dense_backward``).

Per layer and pipeline, all from the RTL's counters: the forward phase's cycles (maps in,
currents out), the layer's (with the neuron pass), the backward pass's (surrogate, input- and
weight-gradient passes), end to end (with the DMA); each engine's MAC rows and utilization (rows
per forward cycle; steady state: the layer run again at half its height, the extra rows' MAC
rows over their extra cycles -- the maps' fill and drain cancel); the backward unit's MACs per
cycle; the forward speedup against the dense engine's measured cycles beside the MAC
reduction; computation energy from the counters and SATA's per-operation energies
(``golden.ttsnn.report.op_energy``); PTT's and HTT's training step against STT's, beside the
paper's claims, and every pipeline's against the dense layer's (its forward on the dense engine,
its backward on the same backward unit). Writes ``build/bench/ttsnn_bench.{json,md,png}``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path

import numpy as np
import torch
from rich.console import Console

from snnforge.flows import run_job
from snnforge.generate import build_root
from snnforge.golden.ttsnn.fixed import (fixed_backward, fixed_dense_backward,
                                         fixed_dense_forward, fixed_forward)
from snnforge.golden.ttsnn.report import ANN_MAC, op_energy, tt_params
from snnforge.golden.ttsnn.tt import TTCores
from snnforge.hw.ttsnn.pointwise import position_cycles

MODES = ("stt", "ptt", "htt")
ENGINES = ("g1", "g2", "g3", "g4")
#: The CIFAR ResNet-19's stages (64/128/256 channels at 32/16/8, T = 4), scaled: channels / 4,
#: maps at most 8x8, ranks the stage medians of the real rank table (20, 23, 63) / 4.
LAYERS = {"s1": "16x5x16x8x8", "s2": "32x6x32x8x8", "s3": "64x16x64x8x8"}
OPTIONS = {"shift_y": 2, "theta": 20, "surrogate": 200, "shift_b4": 2, "shift_b3": 3,
           "shift_b2": 3, "shift_b1": 2}


def frontier(outs, ins, budget, floor=1):
    """``{units: (cycles, lanes, ways)}``: the fastest shape of an engine for each number of
    MAC units (``lanes x ways``) within the budget."""
    best = {}
    for lanes in range(1, min(outs, budget) + 1):
        for ways in range(1, min(ins, budget // lanes) + 1):
            # (floor: the windows' three cycles a position in front of G2, G3, dense)
            option = (max(floor, position_cycles(ins, outs, lanes, ways)), lanes, ways)
            best[lanes * ways] = min(best.get(lanes * ways, option), option)
    return best


def balanced_engines(c_in, rank, c_out, budget):
    """The TT engines' ``(lanes, ways)`` within ``budget`` MAC units whose slowest engine takes
    the fewest cycles per position; ties: G1 and G4 faster (they set HTT's late steps' pace,
    with G3's and G2's engines beside them), then fewer units."""
    shapes = ((rank, c_in, 1), (rank, 3 * rank, 3), (rank, 3 * rank, 3), (c_out, rank, 1))
    fronts = [sorted(frontier(*shape[:2], budget, shape[2]).items()) for shape in shapes]
    best = None
    for pick in itertools.product(*fronts):
        units = sum(u for u, _ in pick)
        if units <= budget:
            cycles = [c for _, (c, _, _) in pick]
            key = (max(cycles), max(cycles[0], cycles[3]), units)
            if best is None or key < best[0]:
                best = (key, [(lanes, ways) for _, (_, lanes, ways) in pick])
    return best[1]


def dense_engine(c_in, c_out, budget):
    """The dense engine's fastest ``(lanes, ways)`` of ``budget`` MAC units at most."""
    _, lanes, ways = min(frontier(c_out, 9 * c_in, budget, 3).values())
    return lanes, ways


def layer_inputs(c_in, rank, c_out, H, W, T, density, seed):
    g = torch.Generator().manual_seed(seed)
    draw = lambda *s: torch.randint(-8, 8, s, generator=g).numpy()
    spikes = (torch.rand(T, c_in, H, W, generator=g) < density).long().numpy()
    grad = torch.randint(-200, 201, (T, c_out, H, W), generator=g).numpy()
    return {"spikes": spikes, "g1": draw(rank, c_in), "g2": draw(rank, rank, 3),
            "g3": draw(rank, rank, 3), "g4": draw(c_out, rank), "grad": grad,
            "w": draw(c_out, c_in, 3, 3)}


def macs_per_step(c_in, rank, c_out, H, W, late=False):
    """Multiply-accumulates of one step over the map (G1's are accumulates)."""
    # A TT layer's MACs per position are its parameters (golden.ttsnn.report.tt_params); HTT's
    # late steps skip G2's and G3's 6 r^2.
    return (tt_params(c_in, c_out, rank) - (6 * rank * rank if late else 0)) * H * W


def parse_layers(text, ap):
    out = {}
    for item in text.split(","):
        shape = LAYERS.get(item, item)
        try:
            dims = tuple(int(v) for v in shape.split("x"))
        except ValueError:
            dims = ()
        if len(dims) != 5 or min(dims) < 1:
            ap.error(f"--layers {item!r}: expected {', '.join(LAYERS)} or CINxRxCOUTxHxW")
        if dims[3] < 4:
            ap.error(f"--layers {item!r}: the steady-state measurement needs a height >= 4")
        out[item] = dims
    return out


def run_layer(name, dims, args, given_lanes):
    """Dense, STT, PTT and HTT on one core built for the layer; returns its rows."""
    c_in, rank, c_out, H, W = dims
    engines = ([(n, 1) for n in given_lanes] if given_lanes
               else balanced_engines(c_in, rank, c_out, args.budget))
    engines = [(min(n, c_out if k == 3 else rank), w) for k, (n, w) in enumerate(engines)]
    lanes = tuple(n for n, _ in engines)
    units = tuple(n * w for n, w in engines)
    dense_lanes, dense_ways = dense_engine(c_in, c_out, args.budget)
    params = {**{f"lanes_{e}": n for e, (n, _) in zip(ENGINES, engines)},
              **{f"ways_{e}": w for e, (_, w) in zip(ENGINES, engines)},
              "dense_lanes": dense_lanes, "dense_ways": dense_ways,
              "max_width": W, "max_height": H}

    def run(mode, height, backward=True):
        """The layer at ``height`` on the RTL (forward, and ``backward``), its outputs checked
        against the golden model."""
        inputs = layer_inputs(c_in, rank, c_out, height, W, args.T, args.density, seed=1)
        options = {**OPTIONS, "mode": mode, "htt_full": args.htt_full}
        for name in ("g1", "g2", "g3", "g4") if mode == "dense" else ("w",):
            del inputs[name]
        if not backward:
            del inputs["grad"]
        done = run_job(Console(quiet=True), "ttsnn", params, inputs=inputs, options=options)
        cfg = done.design.config
        p = cfg.fixed.replace(**{k: v for k, v in options.items() if k != "mode"},
                              **({} if mode == "dense" else {"mode": mode}))
        spikes = torch.from_numpy(inputs["spikes"])
        expect = {}
        if mode == "dense":
            w = torch.from_numpy(inputs["w"])
            want = fixed_dense_forward(spikes, w, p)
            if backward:
                grad_in, dw, _ = fixed_dense_backward(torch.from_numpy(inputs["grad"]), want, w,
                                                      p)
                expect = {"grad_in": grad_in, "grad_w": dw}
        else:
            cores = TTCores(*(torch.from_numpy(inputs[k]) for k in ENGINES))
            want = fixed_forward(spikes, cores, p)
            grad_in, grads, _ = fixed_backward(torch.from_numpy(inputs["grad"]), want, cores, p)
            expect = {"grad_in": grad_in,
                      **{f"grad_g{k}": getattr(grads, f"g{k}") for k in (1, 2, 3, 4)}}
        expect.update(y=want.y, spikes=want.spikes, membrane=want.membrane)
        for out, value in expect.items():
            if not np.array_equal(done.result.outputs[out], value.numpy()):
                raise SystemExit(f"layer {name}, {mode} at height {height}: the RTL's {out} "
                                 "differ from the golden model")
        return done

    dense = run("dense", H)
    dense_half = run("dense", H // 2, backward=False).result.counters
    d = dense.result.counters
    dense_macs = 9 * c_in * c_out * H * W * args.T
    dense_steady = d["forward_cycles"] - dense_half["forward_cycles"]
    rows = []
    for mode in MODES:
        done = run(mode, H)
        half = run(mode, H // 2).result.counters
        c = done.result.counters
        late = [mode == "htt" and t >= args.htt_full for t in range(args.T)]
        macs = sum(macs_per_step(c_in, rank, c_out, H, W, lt) for lt in late)
        width = dict(zip(ENGINES, units))
        forward_ops = {"ac": c["g1_rows"] * width["g1"], "lif": c["neurons"] * args.T,
                       "mac": sum(c[f"{e}_rows"] * width[e] for e in ENGINES[1:])}
        backward_ops = {"pgu": c["neurons"] * args.T, "mac": c["backward_macs"]}
        steady = c["forward_cycles"] - half["forward_cycles"]
        row = {"layer": name, "shape": "x".join(map(str, dims)), "mode": mode,
               "lanes": list(lanes), "ways": [w for _, w in engines],
               "units": list(units), "dense_lanes": dense_lanes, "dense_ways": dense_ways,
               "forward_cycles": c["forward_cycles"], "layer_cycles": c["busy"],
               "end_to_end": c["total_cycles"], "macs": macs, "dense_macs": dense_macs,
               "dense_forward_cycles": d["forward_cycles"], "dense_rows": d["dense_rows"],
               "dense_utilization": d["dense_rows"] / d["forward_cycles"],
               "mac_reduction": dense_macs / macs,
               "speedup": d["forward_cycles"] / c["forward_cycles"],
               "steady_speedup": dense_steady / steady,
               "forward_energy": op_energy(forward_ops) / ANN_MAC,
               "backward_energy": op_energy(backward_ops) / ANN_MAC,
               "dense_forward_energy": op_energy(
                   {"ac": d["dense_rows"] * dense_lanes * dense_ways,
                    "lif": d["neurons"] * args.T})
               / ANN_MAC,
               "dense_backward_energy": op_energy({"pgu": d["neurons"] * args.T,
                                                   "mac": d["backward_macs"]}) / ANN_MAC,
               **{f"{e}_rows": c[f"{e}_rows"] for e in ENGINES},
               **{f"{e}_utilization": c[f"{e}_rows"] / c["forward_cycles"] for e in ENGINES},
               **{f"{e}_steady_utilization": (c[f"{e}_rows"] - half[f"{e}_rows"]) / steady
                  for e in ENGINES},
               "steady_backward_utilization": (
                   (c["backward_macs"] - half["backward_macs"])
                   / (c["backward_cycles"] - half["backward_cycles"])),
               "backward_cycles": c["backward_cycles"],
               **{k: c[k] for k in ("surrogate_cycles", "dgrad_cycles", "wgrad_cycles",
                                    "backward_macs")},
               "backward_utilization": c["backward_macs"] / c["backward_cycles"],
               "training_step_cycles": c["busy"] + c["backward_cycles"],
               **{f"dense_{k}": d[k] for k in ("backward_cycles", "surrogate_cycles",
                                               "dgrad_cycles", "wgrad_cycles",
                                               "backward_macs")},
               "dense_backward_utilization": d["backward_macs"] / d["backward_cycles"],
               "dense_training_step_cycles": d["busy"] + d["backward_cycles"]}
        row["training_energy"] = row["forward_energy"] + row["backward_energy"]
        row["dense_training_energy"] = row["dense_forward_energy"] + row["dense_backward_energy"]
        row["speedup_per_reduction"] = row["speedup"] / row["mac_reduction"]
        row["steady_speedup_per_reduction"] = row["steady_speedup"] / row["mac_reduction"]
        rows.append(row)
        print(f"{name} {mode}: forward {c['forward_cycles']:,} cycles (dense "
              f"{d['forward_cycles']:,}), backward {c['backward_cycles']:,}", flush=True)
    return rows


def tables(rows, args, command):
    md = [f"Measured with `{command}`: T={args.T} (HTT: {args.htt_full} full steps), spikes at "
          f"{args.density:.0%}; every output equal to the golden model. Budget: {args.budget} "
          "MAC units (lanes x ways) for the dense 3x3 engine, and for the four TT engines "
          "together.", "",
          "| layer | pipeline | dense lanes x ways | G1 / G2 / G3 / G4 lanes x ways | dense "
          "forward cycles | TT forward cycles | MAC reduction | speedup | speedup / reduction "
          "| steady-state speedup / reduction |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        label = r["layer"] if r["layer"] == r["shape"] else f"{r['layer']} {r['shape']}"
        shapes = " / ".join(f"{n}x{w}" for n, w in zip(r["lanes"], r["ways"]))
        md.append(f"| {label} | {r['mode'].upper()} | {r['dense_lanes']}x{r['dense_ways']} | "
                  f"{shapes} | {r['dense_forward_cycles']:,} | "
                  f"{r['forward_cycles']:,} | {r['mac_reduction']:.2f}x | {r['speedup']:.2f}x | "
                  f"{r['speedup_per_reduction']:.0%} | "
                  f"{r['steady_speedup_per_reduction']:.0%} |")
    md += ["", "Speedup: the dense engine's forward-phase cycles over the pipeline's, both "
           "measured on the same core; MAC reduction: the dense conv's multiply-accumulates "
           "over the TT layer's (HTT: its late steps without G2 and G3). Steady state: the "
           "cycles the extra rows of the full-height map add over the half-height run (fill "
           "and drain cancel).", "",
           "| layer | pipeline | forward cycles | layer cycles | backward cycles (surrogate / "
           "input grad / weight grad) | training step | end to end | G1 / G2 / G3 / G4 "
           "utilization (steady state) | dense engine utilization | backward MAC utilization "
           "(steady state) |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        util = " / ".join(f"{r[f'{e}_utilization']:.0%}" for e in ENGINES) + " (" + \
            " / ".join(f"{r[f'{e}_steady_utilization']:.0%}" for e in ENGINES) + ")"
        md.append(f"| {r['layer']} | {r['mode'].upper()} | {r['forward_cycles']:,} | "
                  f"{r['layer_cycles']:,} | {r['backward_cycles']:,} ({r['surrogate_cycles']:,}"
                  f" / {r['dgrad_cycles']:,} / {r['wgrad_cycles']:,}) | "
                  f"{r['training_step_cycles']:,} | {r['end_to_end']:,} | {util} | "
                  f"{r['dense_utilization']:.0%} | {r['backward_utilization']:.0%} "
                  f"({r['steady_backward_utilization']:.0%}) |")
    md += ["", "Utilization: an engine's MAC rows per forward-phase cycle (a row is `lanes x "
           "ways` multiply-accumulates); the backward unit's multiply-accumulates (terms inside "
           "the map) per backward cycle, on its one MAC. An engine waiting on a slower neighbour "
           "idles. Training step: the layer's forward (maps and neurons) plus its backward "
           "pass, DMA excluded.", "",
           "| layer | pipeline | forward energy (dense) | backward energy (dense) | training "
           "time vs STT | training energy vs STT | training time vs dense | training energy vs "
           "dense |", "|---|---|---|---|---|---|---|---|"]
    for name in dict.fromkeys(r["layer"] for r in rows):
        mine = [r for r in rows if r["layer"] == name]
        stt = mine[0]
        for r in mine:
            md.append(f"| {name} | {r['mode'].upper()} | {r['forward_energy']:,.0f} "
                      f"({r['dense_forward_energy']:,.0f}) | {r['backward_energy']:,.0f} "
                      f"({r['dense_backward_energy']:,.0f}) | "
                      f"{r['training_step_cycles'] / stt['training_step_cycles'] - 1:+.1%} | "
                      f"{r['training_energy'] / stt['training_energy'] - 1:+.1%} | "
                      f"{r['training_step_cycles'] / r['dense_training_step_cycles'] - 1:+.1%} "
                      f"| {r['training_energy'] / r['dense_training_energy'] - 1:+.1%} |")
    md += ["", "Energy: computation only, from the RTL's counters (G1 and dense rows x lanes "
           "accumulates, G2-G4 rows x lanes and the backward unit's MACs multiply-accumulates, "
           "one LIF update and one surrogate-gradient unit per neuron and step) times SATA's "
           "per-operation energies, in ANN MACs (`golden.ttsnn.report.SATA_OP_ENERGY`). The "
           "paper claims -17.7 % training time and -28.3 % training energy on N-Caltech101; "
           "the energy figure most likely compares PTT on a modified SATA with STT on SATA, "
           "including DRAM and SRAM energy (shared/papers/ttsnn.md section 10). Training vs "
           "dense: the dense layer's training step measured on the same core -- its forward "
           "layer on the dense engine, its backward pass (surrogate, `W^T`, `dW`) on the same "
           "one-MAC backward unit.", "",
           "| layer | dense backward cycles (surrogate / input grad / weight grad) | MAC "
           "utilization | dense training step |", "|---|---|---|---|"]
    for name in dict.fromkeys(r["layer"] for r in rows):
        r = next(r for r in rows if r["layer"] == name)
        md.append(f"| {name} | {r['dense_backward_cycles']:,} ({r['dense_surrogate_cycles']:,}"
                  f" / {r['dense_dgrad_cycles']:,} / {r['dense_wgrad_cycles']:,}) | "
                  f"{r['dense_backward_utilization']:.0%} | "
                  f"{r['dense_training_step_cycles']:,} |")
    return md


def plot(rows, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    layers = list(dict.fromkeys(r["layer"] for r in rows))
    fig, ax = plt.subplots(figsize=(6, 3.2))
    width = 0.2
    for k, mode in enumerate(("dense",) + MODES):
        values = [next(r for r in rows if r["layer"] == name and
                       (mode == "dense" or r["mode"] == mode))
                  for name in layers]
        cycles = [r["dense_forward_cycles"] if mode == "dense" else r["forward_cycles"]
                  for r in values]
        ax.bar([i + (k - 1.5) * width for i in range(len(layers))], cycles, width,
               label=mode.upper() if mode != "dense" else "dense 3x3")
    ax.set_xticks(range(len(layers)), layers)
    ax.set_yscale("log")
    ax.set_ylabel("forward cycles")
    ax.legend(fontsize=8)
    ax.set_title("TT-SNN layers on the RTL, same MAC budget")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--layers", default=",".join(LAYERS),
                    help=f"names ({', '.join(f'{k} = {v}' for k, v in LAYERS.items())}) or "
                         "CINxRxCOUTxHxW shapes, comma-separated")
    ap.add_argument("--T", type=int, default=4)
    ap.add_argument("--htt-full", type=int, default=2)
    ap.add_argument("--budget", type=int, default=16,
                    help="MAC units (lanes x ways): the dense engine's, and at most the TT "
                         "engines' together")
    ap.add_argument("--lanes", default=None,
                    help="fix the lanes of G1,G2,G3,G4 (one number: every engine) instead of "
                         "balancing them within the budget")
    ap.add_argument("--density", type=float, default=0.3)
    ap.add_argument("-o", "--out", default=None, help="output directory (default build/bench)")
    args = ap.parse_args(argv)
    layers = parse_layers(args.layers, ap)
    given = None
    if args.lanes:
        try:
            given = [int(v) for v in str(args.lanes).split(",")]
        except ValueError:
            ap.error(f"--lanes {args.lanes!r}: expected N or N,N,N,N")
        if len(given) not in (1, 4) or min(given) < 1:
            ap.error(f"--lanes {args.lanes!r}: expected one number or four (G1,G2,G3,G4) >= 1")
        given = given * 4 if len(given) == 1 else given
    if args.budget < 1:
        ap.error("--budget must be at least 1")
    outdir = Path(args.out) if args.out else build_root() / "bench"
    outdir.mkdir(parents=True, exist_ok=True)
    rows = [r for name, dims in layers.items() for r in run_layer(name, dims, args, given)]
    command = "python bench/ttsnn_bench.py " + " ".join(argv if argv is not None else sys.argv[1:])
    md = tables(rows, args, command)
    (outdir / "ttsnn_bench.md").write_text("\n".join(md) + "\n")
    (outdir / "ttsnn_bench.json").write_text(json.dumps(
        {"command": command, "T": args.T, "htt_full": args.htt_full, "budget": args.budget,
         "density": args.density, "rows": rows}, indent=2) + "\n")
    plot(rows, outdir / "ttsnn_bench.png")
    print("\n".join(md))


if __name__ == "__main__":
    main()
