#!/usr/bin/env python3
"""LoAS end to end through its DMA: end-to-end cycles against compute and the transfer bound.

    .venv/bin/python bench/loas_dma_bench.py                    # Table II layers, 64/128/256 bits
    .venv/bin/python bench/loas_dma_bench.py --widths 128 --layers R-L19
    .venv/bin/python bench/loas_dma_bench.py --synth            # + synthesis (about 40 min)
    .venv/bin/python bench/loas_dma_bench.py --synth-only       # synthesis alone, added to the last run

For every layer and AXI data width, the default core (P=16, W=128, T=4) runs the layer as one
command list under Verilator (``snnforge run``'s path), its outputs checked against the golden
model. Reported, all from the RTL's counters: compute cycles (start to done of the runs, from
a second run of the layer whose first run waits for its whole weight block, ``--no-follow``:
the default first run follows its weight masks' LOAD, and its cycles include that loading),
end-to-end cycles (``cp_control.go`` to the list's END: loads, runs, stores), bytes moved; and
the *compulsory transfer bound*: the compressed bytes of the spikes (fiber bitmasks + packed
T-bit words) and weights (bitmasks of the nonzero fibers + int8 values) read once and of the
outputs (bitmasks + packed words + membranes) written once, divided by the bus bytes per cycle.
``ratio = end_to_end / max(compute, bound)``; the target is <= 1.25 at 128 bits.
Writes ``build/bench/loas_dma_bench.{json,md,png}`` and a record for ``snnforge report``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
import warnings
from pathlib import Path

import torch
from amaranth.back import verilog
from amaranth.hdl import UnusedElaboratable
from rich.console import Console

from snnforge.flows import run_job
from snnforge.generate import build_root, generate
from snnforge.golden.loas import compress_weights, layer as golden_layer, pack_spikes
from snnforge.golden.loas.workloads import synthetic_layer
from snnforge.hw.loas.config import LoASConfig
from snnforge.hw.loas.core import LoASCore
from snnforge.results import save_result
from snnforge.synth.flow import synthesize

LAYERS = ("A-L4", "V-L8", "R-L19", "AlexNet", "VGG16", "ResNet19")
WIDTHS = (64, 128, 256)
THRESHOLD = 64
QUIET = Console(quiet=True)
SYNTH_MHZ = 100.0
#: The one-PE core of bench/loas_bench.py (its Fmax is the core's).
ONE_PE = {"pes": 1}
#: Measured by bench/loas_bench.py at e27a9c7, the last commit whose core was loaded word by
#: word through the host port (end-to-end simulated cycles, loading included).
HOST_PORT_CYCLES = {"A-L4": 181276, "V-L8": 136079, "R-L19": 46759, "AlexNet": 190034,
                    "VGG16": 108218, "ResNet19": 168957}


def compulsory_bytes(cfg, x, w, spikes_out):
    """Bytes of the compressed operands read once and of the compressed outputs written once."""
    W, T = cfg.fiber, cfg.T
    ps = pack_spikes(x, fiber=W)
    spikes = ps.M * ps.n_chunks * W // 8 + ps.nnz * T / 8
    cw = compress_weights(w, fiber=W)
    fibers = sum(1 for c in range(cw.n_chunks) for n in range(w.shape[1]) if cw.fiber_of(c, n)[0])
    weights = fibers * W // 8 + int((w != 0).sum())
    po = pack_spikes(spikes_out, fiber=W)
    outputs = po.M * po.n_chunks * W // 8 + po.nnz * T / 8 + po.M * po.K * cfg.mem_width / 8
    return {"spikes": spikes, "weights": weights, "outputs": outputs,
            "total": spikes + weights + outputs}


def run_layer(params, name, x, w, *, follow=True):
    start = time.monotonic()
    done = run_job(QUIET, "loas", params, inputs={"spikes": x.numpy(), "weights": w.numpy()},
                   options={"threshold": THRESHOLD, "leak_amount": 1, "follow": follow})
    wall = time.monotonic() - start
    cfg = done.design.config
    lif = cfg.lif.replace(threshold=THRESHOLD, leak_shift=1)
    want_s, want_v = golden_layer(x, w, lif, acc_width=cfg.out_width,
                                  k_block=done.result.facts["k_block"], fiber=cfg.fiber)
    if not (torch.equal(torch.from_numpy(done.result.outputs["spikes"]), want_s)
            and torch.equal(torch.from_numpy(done.result.outputs["membrane"]), want_v)):
        raise SystemExit(f"{name}: RTL outputs differ from the golden model")
    return cfg, done, wall, want_s


def plot(rows, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    widths = sorted({r["width"] for r in rows})
    layers = list(dict.fromkeys(r["layer"] for r in rows))
    fig, ax = plt.subplots(figsize=(10, 4))
    step = 0.8 / len(widths)
    for k, width in enumerate(widths):
        vals = [next((r["ratio"] for r in rows if r["layer"] == lay and r["width"] == width), 0)
                for lay in layers]
        ax.bar([i + (k - (len(widths) - 1) / 2) * step for i in range(len(layers))], vals, step,
               label=f"{width}-bit bus")
    ax.axhline(1.25, color="grey", linestyle="--", linewidth=1, label="target 1.25")
    ax.set_xticks(range(len(layers)), layers)
    ax.set_ylabel("end-to-end / max(compute, transfer bound)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def markdown(rows, command, synth):
    lines = [f"Measured with `{command}` on the default core (P=16, W=128, T=4); every count from "
             "the RTL's counters, every output checked against the golden model. Bound: the "
             "compressed spikes and weights read once and the compressed outputs written once, "
             "over the bus bytes per cycle. Compute: the runs' cycles when the first waits for its "
             "whole weight block (`--no-follow`; end to end that way in its own column). Host "
             "port: end-to-end cycles when the core was loaded word by word through the 32-bit "
             "host port (bench/loas_bench.py at e27a9c7).", "",
             "| layer | bus | compute cycles | transfer bound | end-to-end cycles | "
             "ratio | end to end, first run waiting | host port (before) | speedup | "
             "DMA bytes read / written | wall s |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        before = HOST_PORT_CYCLES.get(r["layer"])
        lines.append(
            f"| {r['layer']} | {r['width']} | {r['compute']:,} | {r['bound']:,.0f} | "
            f"{r['end_to_end']:,} | **{r['ratio']:.2f}** | "
            f"{format(r['end_to_end_waiting'], ',') if 'end_to_end_waiting' in r else 'n/a'} | "
            f"{before:,} | "
            f"{before / r['end_to_end']:.1f}x | {r['read']:,} / {r['written']:,} | "
            f"{r['wall']:.1f} |")
    if synth:
        core = synth["default core (P=16, W=128, T=4)"]["cells"]
        share = (lambda c: f"{c['lut4'] / core['lut4']:.1%} / {c['ff'] / core['ff']:.1%}"
                 if core else "(no default-core count)")
        lines += ["", f"Synthesis (Yosys + nextpnr, ECP5-85k, {SYNTH_MHZ:.0f} MHz constraint): the "
                  "host interface (AXI4-Lite bridge, arbiter, command processor, DMA engines, "
                  "memory window, counters) of the default core alone, placed out of context; "
                  "one PE placed and routed whole, its host interface included; the default "
                  "core whole (Yosys; it is larger than the device):", "",
                  "| block | LUT4 | FF | BRAM | DSP | share of the default core's LUT4 / FF | "
                  "Fmax MHz |", "|---|---|---|---|---|---|---|"]
        for label, r in synth.items():
            c = r["cells"]
            if c is None:
                lines.append(f"| {label} | Yosys failed: `{r['yosys_error']}` ({r['log']}) "
                             "| | | | | |")
                continue
            fmax = r["fmax_mhz"] if r["fmax_mhz"] else "(not placed)"
            lines.append(f"| {label} | {c['lut4']:,} | {c['ff']:,} | {c['bram']} | {c['dsp']} | "
                         f"{share(c)} | {fmax} |")
    return "\n".join(lines)


class _Block:
    """A sub-block's Verilog in the shape :func:`snnforge.synth.flow.synthesize` takes."""

    def __init__(self, name, component):
        self.top, self.params, self.component = name, {}, component
        self.verilog = verilog.convert(component, name=name, emit_src=False)
        self.sha256 = hashlib.sha256(self.verilog.encode()).hexdigest()

    def manifest(self):
        return {"ports": []}


def synthesize_kept(design, outdir, *, place):
    """``synthesize`` on the ECP5-85k at SYNTH_MHZ, or its last result for the same Verilog,
    target and settings (the flow is deterministic)."""
    done = outdir / "synth.json"
    kept = json.loads(done.read_text()) if done.exists() else {}
    if (kept.get("verilog_sha256"), kept.get("target"), "fmax_mhz" in kept or not place) == (
            design.sha256, "ecp5-85k", True) and kept.get("constraint_mhz", SYNTH_MHZ) == SYNTH_MHZ:
        print(f"synthesis of {design.top}: kept from {done}", flush=True)
        return kept
    print(f"synthesis of {design.top} ({'placed and routed' if place else 'Yosys only'}) ...",
          flush=True)
    try:
        return synthesize(design, "ecp5-85k", outdir, freq_mhz=SYNTH_MHZ, seed=1, place=place)
    except RuntimeError as error:     # a failed tool run is a result too: recorded, not fatal
        last = [line for line in str(error).splitlines() if line.strip()][-1:]
        print(f"  failed: {last}", flush=True)
        failed = {"verilog_sha256": design.sha256, "target": "ecp5-85k", "cells": None,
                  "yosys_error": last[0] if last else "yosys failed",
                  "log": str(outdir / "yosys.log")}
        done.write_text(json.dumps(failed, indent=2) + "\n")
        return failed


def synth_rows(outdir):
    """The default core's host interface alone (placed out of context: cells and Fmax), the
    one-PE core placed and routed whole (the core's Fmax, host interface included) and the
    default core whole (Yosys cells; it is larger than any ECP5)."""
    rows = {}
    with warnings.catch_warnings():     # the rest of the core is built but not converted
        warnings.simplefilter("ignore", UnusedElaboratable)
        host = _Block("loas_host_interface", LoASCore(LoASConfig()).host)
    rows["host interface of the default core"] = synthesize_kept(
        host, outdir / "host-interface", place=True)
    one = generate("loas", ONE_PE)
    rows["one default PE (P=1, W=128, T=4)"] = synthesize_kept(
        one, build_root() / "synth" / f"{one.key}-ecp5-85k", place=True)
    core = generate("loas", {})
    rows["default core (P=16, W=128, T=4)"] = synthesize_kept(
        core, build_root() / "synth" / f"{core.key}-ecp5-85k-yosys", place=False)
    return {label: {k: r.get(k) for k in ("cells", "fmax_mhz", "logic_cells", "pnr_error",
                                           "yosys_error", "log")}
            for label, r in rows.items()}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--layers", default=",".join(LAYERS))
    ap.add_argument("--widths", default=",".join(map(str, WIDTHS)))
    ap.add_argument("-p", "--param", action="append", default=[], help="core parameter key=value")
    ap.add_argument("--synth", action="store_true",
                    help="also synthesize: the host interface alone, the default core, one PE")
    ap.add_argument("--synth-only", action="store_true",
                    help="synthesis alone, added to the last layer results")
    ap.add_argument("-o", "--out", default=None, help="output directory (default build/bench)")
    ap.add_argument("--no-record", action="store_true")
    args = ap.parse_args(argv)
    base = dict(item.split("=", 1) for item in args.param)
    outdir = Path(args.out) if args.out else build_root() / "bench"
    outdir.mkdir(parents=True, exist_ok=True)
    command = "python bench/loas_dma_bench.py " + " ".join(argv if argv is not None else
                                                          sys.argv[1:])
    rows = []
    for width in [] if args.synth_only else [int(v) for v in args.widths.split(",")]:
        params = {**base, "dma_width": width}
        for name in args.layers.split(","):
            x, w = synthetic_layer(name, T=4, seed=0)
            cfg, done, wall, spikes_out = run_layer(params, name, x, w)
            c = done.result.counters
            waiting = run_layer(params, name, x, w, follow=False)[1].result.counters
            need = compulsory_bytes(cfg, x, w, spikes_out)
            bound = need["total"] / cfg.beat_bytes
            compute = waiting["cycles"]
            row = {"layer": name, "width": width, "compute": compute,
                   "end_to_end_waiting": waiting["total_cycles"],
                   "end_to_end": c["total_cycles"], "bound": bound,
                   "ratio": c["total_cycles"] / max(compute, bound),
                   "read": c["dma_read_bytes"], "written": c["dma_write_bytes"],
                   "compulsory": need, "runs": len(done.result.facts["runs"]), "wall": wall,
                   "counters": c}
            rows.append(row)
            print(f"{name} @ {width}: compute {row['compute']:,}, end-to-end "
                  f"{row['end_to_end']:,}, bound {bound:,.0f}, ratio {row['ratio']:.2f} "
                  f"({row['runs']} runs, {wall:.1f} s)", flush=True)
    synth = synth_rows(outdir / "synth") if args.synth or args.synth_only else {}
    previous = outdir / "loas_dma_bench.json"
    if args.synth_only and previous.exists():
        last = json.loads(previous.read_text())
        rows, command = last["rows"], f"{last['command']}; {command}"
    png = outdir / "loas_dma_bench.png"
    plot(rows, png)
    md = markdown(rows, command, synth)
    (outdir / "loas_dma_bench.md").write_text(md + "\n")
    (outdir / "loas_dma_bench.json").write_text(json.dumps(
        {"command": command, "rows": rows, "synth": synth}, indent=2, default=str) + "\n")
    if not args.no_record:
        save_result("bench", generate("loas", base), {
            "name": "loas_dma_bench", "title": "LoAS end to end through the DMA "
            "(`python bench/loas_dma_bench.py`)", "markdown": md, "images": [str(png)]})
    print(md)


if __name__ == "__main__":
    main()
