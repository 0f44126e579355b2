#!/usr/bin/env python3
"""LoAS benchmarks: RTL cycles against the effectual-work bound and the paper's cycle models.

    .venv/bin/python bench/loas_bench.py                # all layers, default core (P=16, W=128, T=4)
    .venv/bin/python bench/loas_bench.py --layers R-L19 --no-sequential
    .venv/bin/python bench/loas_bench.py --synth        # also synthesize (SYNTH_CONFIGS)

Every cycle count of the RTL comes from the core's own counters (cycles from start to done of
each run; loading excluded), measured under Verilator through ``snnforge run``'s path
(``snnforge.flows.run_job``), and every RTL output is checked against the golden model before
its cycles are used. Writes ``build/bench/loas_bench.{json,md}`` and PNG plots, and a
record that ``snnforge report`` folds into ``build/report.md``.

Layers are the synthetic Table II layers of ``golden.workloads`` (A-L4, V-L8, R-L19 and the
whole-network averages), T = 4.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
from rich.console import Console

from snnforge.flows import run_job
from snnforge.generate import build_root, generate
from snnforge.golden.loas import match_count, match_count_sequential
from snnforge.golden.loas.baselines import baseline_table, loas_cycles
from snnforge.golden.loas.energy import energy
from snnforge.golden.loas.workloads import synthetic_layer
from snnforge.results import save_result
from snnforge.sim.loas.vectors import LayerCase, expected_layer
from snnforge.synth.flow import synthesize

LAYERS = ("A-L4", "V-L8", "R-L19", "AlexNet", "VGG16", "ResNet19")
THRESHOLD = 64


QUIET = Console(quiet=True)


def run_rtl(params, x, w, *, sequential, tag: str):
    """One layer on the RTL (``snnforge run``'s path, its first run waiting for its whole
    weight block, so that the cycles counter counts compute alone); returns its counters, runs,
    simulated cycles and wall time (outputs checked against the golden model)."""
    start = time.monotonic()
    done = run_job(QUIET, "loas", params, inputs={"spikes": x.numpy(), "weights": w.numpy()},
                   options={"threshold": THRESHOLD, "leak_amount": 1,
                            "sequential": sequential, "follow": False})
    outputs, facts = done.result.outputs, done.result.facts
    want = expected_layer(done.design.config, LayerCase(tag, x, w, threshold=THRESHOLD,
                                                        leak_amount=1, sequential=sequential),
                          facts["k_block"])
    if not (torch.equal(torch.from_numpy(outputs["spikes"]), want["spikes"])
            and torch.equal(torch.from_numpy(outputs["membrane"]), want["membrane"])
            and done.result.counters["matches"] == want["matches"]):
        raise SystemExit(f"RTL run {tag}: outputs differ from the golden model")
    return {"counters": done.result.counters, "runs": facts["runs"],
            "sim_cycles": done.sim_cycles, "wall_seconds": done.wall_seconds,
            "process_seconds": time.monotonic() - start}


def plot(rows, path: Path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    names = [r["layer"] for r in rows]
    xs = range(len(rows))
    fig, (a, b) = plt.subplots(1, 2, figsize=(12, 4))
    width = 0.27
    a.bar([x - width for x in xs], [r["util_rtl"] for r in rows], width, label="RTL (run-ahead PEs)")
    a.bar(list(xs), [r["util_free"] for r in rows], width, label="model, no lock-step")
    a.bar([x + width for x in xs], [r["util_lockstep"] for r in rows], width,
          label="model, lock-step (paper)")
    a.axhline(0.85, color="grey", linestyle="--", linewidth=1)
    a.set_xticks(list(xs), names)
    a.set_ylim(0, 1.05)
    a.set_title("utilization of the effectual-work bound (matches / P)")
    a.legend(fontsize=8)
    seq = [r for r in rows if r.get("seq_cycles")]
    if seq:
        xs2 = range(len(seq))
        b.bar([x - 0.2 for x in xs2], [r["seq_speedup"] for r in seq], 0.4, label="RTL FTP / sequential")
        b.bar([x + 0.2 for x in xs2], [r["ideal_ratio"] for r in seq], 0.4, label="ideal match ratio")
        b.set_xticks(list(xs2), [r["layer"] for r in seq])
        b.set_title("FTP vs sequential time steps, same RTL")
        b.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def markdown(rows, baselines, synth, overrides, command) -> str:
    core = ("the default core (P=16, W=128, T=4)" if not overrides else
            "a core with " + ", ".join(f"{k}={v}" for k, v in overrides.items()))
    lines = [f"Measured with `{command}` on {core}; RTL cycles are compute cycles (start to "
             "done) counted by the core, loading excluded; end-to-end: every simulated cycle of "
             "the layer, host-port loading of spikes and weights (one 32-bit word per cycle) and "
             "reading of the results included. Utilization = (matches / P) / cycles.", "",
             "| layer | M x K x N | matches | bound (matches/P) | RTL cycles | RTL util. | "
             "end-to-end cycles | no-lock-step model | lock-step model (paper) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['layer']} | {r['shape']} | {r['matches']:,} | {r['bound']:,.0f} | "
                     f"{r['rtl_cycles']:,} | **{r['util_rtl']:.1%}** | {r['sim_cycles']:,} | "
                     f"{r['free_cycles']:,} ({r['util_free']:.1%}) | {r['lockstep_cycles']:,} "
                     f"({r['util_lockstep']:.1%}) |")
    seq = [r for r in rows if r.get("seq_cycles")]
    if seq:
        lines += ["", "FTP vs sequential time steps on the same RTL (sequential: every fiber "
                  "expanded into T one-hot fibers):", "",
                  "| layer | sequential matches | FTP matches | ideal ratio | sequential cycles | "
                  "FTP cycles | RTL speedup | realized |", "|---|---|---|---|---|---|---|---|"]
        for r in seq:
            lines.append(f"| {r['layer']} | {r['seq_matches']:,} | {r['matches']:,} | "
                         f"{r['ideal_ratio']:.2f} | {r['seq_cycles']:,} | {r['rtl_cycles']:,} | "
                         f"{r['seq_speedup']:.2f}x | **{r['seq_speedup'] / r['ideal_ratio']:.1%}** |")
    lines += ["", "Baselines (golden cycle models of the notes with the paper's configurations: one "
              "cycle per match, 16 PEs, whatever the RTL's configuration) next to the RTL; speedup and energy efficiency relative to SparTen-S; energy with the "
              "notes' constants (relative units, traffic from the golden traffic models; the RTL "
              "row uses LoAS traffic with RTL cycles):", ""]
    lines += ["| layer | design | cycles | speedup | energy | energy eff. |", "|---|---|---|---|---|---|"]
    for layer, table in baselines.items():
        for row in table:
            lines.append(f"| {layer} | {row['design']} | {row['cycles']:,} | {row['speedup']:.2f}x | "
                         f"{row['energy']:.3g} | {row['efficiency']:.2f}x |")
    if synth:
        lines += ["", "Synthesis (`snnforge synth loas ...`; % of the device; the serial I/O "
                  "wrapper included on the iCE40):", "",
                  "| config | target | logic cells (nextpnr) | LUT4 | LUTRAM | FF | BRAM | DSP | "
                  "Fmax MHz |", "|---|---|---|---|---|---|---|---|---|"]
        for label, res in synth.items():
            c, avail = res["cells"], res["available"]
            share = lambda k: (f"{c.get(k, 0):,} ({c.get(k, 0) / avail[k]:.0%})" if avail.get(k)
                               else f"{c.get(k, 0):,}")
            if "pnr_error" in res:
                fmax = "not placed: " + ("does not fit the device" if "utilisation limit" in
                                         res["pnr_error"] or "no BELs remaining" in
                                         res["pnr_error"] else "nextpnr failed")
            else:
                fmax = f"{res.get('fmax_mhz')}"
            used, available = res.get("logic_cells", (0, 0))
            cells = f"{used:,} ({used / available:.0%})" if available else "-"
            lines.append(f"| {label} | {res['target']} | {cells} | {share('lut4')} | "
                         f"{c.get('lutram', 0):,} | {share('ff')} | {share('bram')} | "
                         f"{share('dsp')} | {fmax} |")
    return "\n".join(lines)


#: Synthesis configurations: the default core (its cell counts; it is larger than the ECP5-85k);
#: one default PE (W=128, T=4) with the host port and broadcaster, placed and routed for its Fmax;
#: a small core that fits the iCE40UP5K (one PE, 16-wide fibers, T=2: the UP5K has no
#: distributed RAM, so every small buffer is flip-flops).
ONE_PE = {"pes": 1}
ICE40_SMALL = {"pes": 1, "fiber": 16, "T": 2, "tile_n": 2, "group": 1, "k_max": 64, "n_max": 8,
               "v_max": 128, "f_max": 64, "group_fifo": 2, "match_fifo": 2, "adders": 1,
               "segment": 8}
SYNTH_SEED, SYNTH_MHZ = 1, 100.0        # nextpnr placement seed and clock constraint
SYNTH_CONFIGS = (
    ("default (P=16, W=128, T=4)", {}, "ecp5-85k"),
    ("one default PE (P=1, W=128, T=4)", ONE_PE, "ecp5-85k"),
    ("small (P=1, W=16, T=2)", ICE40_SMALL, "ice40-up5k"),
)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--layers", default=",".join(LAYERS))
    ap.add_argument("--no-sequential", action="store_true", help="skip the sequential-mode runs")
    ap.add_argument("--synth", action="store_true",
                    help="also synthesize: default core and one default PE on ECP5, small core "
                         "on iCE40")
    ap.add_argument("--synth-only", action="store_true",
                    help="only the synthesis; the layer results of the last run of the same "
                         "configuration (loas_bench.json) are kept in the report")
    ap.add_argument("--fresh-synth", action="store_true",
                    help="synthesize again even where build/synth holds a result for the same "
                         "Verilog, target and nextpnr settings")
    ap.add_argument("-p", "--param", action="append", default=[], help="core parameter key=value")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--shape", default=None, metavar="MxKxN",
                    help="override the layer shape (keeps the Table II sparsities)")
    ap.add_argument("-o", "--out", default=None, help="output directory (default build/bench)")
    ap.add_argument("--no-record", action="store_true",
                    help="do not add the results to build/results (snnforge report)")
    args = ap.parse_args(argv)
    overrides = dict(item.split("=", 1) for item in args.param)
    design = generate("loas", overrides)
    params, cfg = design.params, design.config
    outdir = Path(args.out) if args.out else build_root() / "bench"
    outdir.mkdir(parents=True, exist_ok=True)
    command = "python bench/loas_bench.py " + " ".join(argv if argv is not None else sys.argv[1:])
    rows, baselines = [], {}
    for name in ([] if args.synth_only else args.layers.split(",")):
        shape = tuple(int(v) for v in args.shape.split("x")) if args.shape else None
        x, w = synthetic_layer(name, T=cfg.T, seed=args.seed, shape=shape)
        T, M, K = x.shape
        N = w.shape[1]
        print(f"{name}: M={M} K={K} N={N}", flush=True)
        matches = match_count(x, w)
        lock = loas_cycles(x, w, pes=cfg.pes, fiber=cfg.fiber, tile_n=cfg.tile_n, lockstep=True)
        free = loas_cycles(x, w, pes=cfg.pes, fiber=cfg.fiber, tile_n=cfg.tile_n, lockstep=False)
        ftp = run_rtl(params, x, w, sequential=False, tag=f"{name}-ftp")
        cycles = ftp["counters"]["cycles"]
        bound = matches / cfg.pes
        row = {"layer": name, "shape": f"{M} x {K} x {N}", "matches": matches, "bound": bound,
               "rtl_cycles": cycles, "util_rtl": bound / cycles, "runs": len(ftp["runs"]),
               "lockstep_cycles": lock["cycles"], "util_lockstep": bound / lock["cycles"],
               "free_cycles": free["cycles"], "util_free": bound / free["cycles"],
               "sim_cycles": ftp["sim_cycles"], "sim_wall_seconds": round(ftp["wall_seconds"], 1),
               "sim_cycles_per_second": round(ftp["sim_cycles"] / ftp["wall_seconds"]),
               "counters": ftp["counters"]}
        print(f"  RTL {cycles} cycles, utilization {row['util_rtl']:.1%} (lock-step model "
              f"{row['util_lockstep']:.1%}, free model {row['util_free']:.1%}); simulated "
              f"{ftp['sim_cycles']} cycles in {ftp['wall_seconds']:.1f} s", flush=True)
        if not args.no_sequential:
            seq = run_rtl(params, x, w, sequential=True, tag=f"{name}-seq")
            row["seq_cycles"] = seq["counters"]["cycles"]
            row["seq_matches"] = match_count_sequential(x, w)
            row["ideal_ratio"] = row["seq_matches"] / matches
            row["seq_speedup"] = row["seq_cycles"] / cycles
            print(f"  sequential {row['seq_cycles']} cycles: speedup {row['seq_speedup']:.2f} of "
                  f"ideal {row['ideal_ratio']:.2f}", flush=True)
        table = baseline_table(x, w)
        loas_model = next(r for r in table if r["design"] == "LoAS")
        sparten = next(r for r in table if r["design"] == "SparTen-S")
        rtl_energy = energy("loas", cycles, loas_model["dram_bytes"], loas_model["sram_bytes"],
                            matches)
        table = [dict(r) for r in table] + [{
            "design": "LoAS RTL (this core)", "cycles": cycles,
            "speedup": sparten["cycles"] / cycles, "energy": rtl_energy,
            "efficiency": sparten["energy"] / rtl_energy}]
        baselines[name] = [{k: r[k] for k in ("design", "cycles", "speedup", "energy",
                                                "efficiency")} for r in table]
        rows.append(row)

    synth = {}
    if args.synth or args.synth_only:
        for label, p, target in SYNTH_CONFIGS:
            d = generate("loas", p)
            synth_dir = build_root() / "synth" / f"{d.key}-{target}"
            done = synth_dir / "synth.json"
            kept = json.loads(done.read_text()) if done.exists() else {}
            # The flow is deterministic: same Verilog, target and nextpnr settings, same result.
            same = (d.sha256, target, SYNTH_SEED, SYNTH_MHZ)
            if not args.fresh_synth and same == tuple(kept.get(k) for k in (
                    "verilog_sha256", "target", "seed", "constraint_mhz")):
                print(f"synthesis {label} for {target}: kept from {done}", flush=True)
                synth[label] = kept
                continue
            print(f"synthesis {label} for {target} ...", flush=True)
            synth[label] = synthesize(d, target, synth_dir, freq_mhz=SYNTH_MHZ, seed=SYNTH_SEED)
            save_result("synth", d, synth[label], suffix=target)
            print(f"  {synth[label]['cells']} Fmax {synth[label].get('fmax_mhz')}", flush=True)

    # Read only now: a layer run of the same configuration may have finished meanwhile.
    previous = outdir / "loas_bench.json"
    if args.synth_only and previous.exists():
        last = json.loads(previous.read_text())
        if last.get("params") == params and last.get("layers"):
            rows, baselines = last["layers"], last["baselines"]
            command = f"{last['command']}; {command}"
    png = outdir / "loas_bench.png"
    plot(rows, png)
    md = markdown(rows, baselines, synth, overrides, command)
    (outdir / "loas_bench.md").write_text(md + "\n")
    (outdir / "loas_bench.json").write_text(json.dumps(
        {"params": params, "command": command, "layers": rows, "baselines": baselines,
         "synth": synth}, indent=2, default=str) + "\n")
    if not args.no_record:
        save_result("bench", design, {"name": "loas_bench", "title": "LoAS benchmarks "
                                      "(`python bench/loas_bench.py`)", "markdown": md,
                                      "images": [str(png)]})
    print(md)


if __name__ == "__main__":
    main()
