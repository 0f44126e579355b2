#!/usr/bin/env python3
"""The LoAS presets on their devices: cells, utilisation, Fmax and critical path, and (with
``--layers``) their cycles on the Table II layers against the effectual-work bound.

    .venv/bin/python bench/loas_presets_bench.py                    # every preset
    .venv/bin/python bench/loas_presets_bench.py --presets ecp5-85k --layers A-L4,V-L8,R-L19
    .venv/bin/python bench/loas_presets_bench.py --presets ecp5-85k -p fiber=64 --layers R-L19 \
        --no-synth                                                    # the layers alone

Each preset is synthesized for the device it is named after (``paper``: ECP5-85k, synthesis
only -- it is larger than the device) through ``snnforge synth``'s flow, and its record is what
``snnforge list`` shows. Layer cycles come from the RTL's counters under Verilator, outputs
checked against the golden model (``bench/loas_bench.py``'s runner), with the counters that
say where the other cycles went. ``-p KEY=VALUE`` measures a candidate: the values apply on top
of every preset chosen. Writes ``build/bench/loas_presets.{json,md}``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from pathlib import Path

from snnforge.generate import build_root, generate
from snnforge.golden.loas import match_count
from snnforge.golden.loas.workloads import synthetic_layer
from snnforge.params import SnnforgeError
from snnforge.registry import get_generator
from snnforge.results import save_result
from snnforge.synth.flow import synthesize

#: preset -> (target, place and route)
TARGET = {"ecp5-85k": ("ecp5-85k", True), "ice40-up5k": ("ice40-up5k", True),
          "paper": ("ecp5-85k", False)}
SEED, MHZ = 1, 100.0


def _loas_bench():
    spec = importlib.util.spec_from_file_location("loas_bench",
                                                  Path(__file__).with_name("loas_bench.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def synth_preset(name: str, fresh: bool, overrides: dict) -> dict:
    design = generate("loas", {"preset": name, **overrides})
    target, place = TARGET[name]
    outdir = build_root() / "synth" / f"{design.key}-{target}"
    done = outdir / "synth.json"
    if done.exists() and not fresh:
        kept = json.loads(done.read_text())
        if (kept.get("verilog_sha256"), kept.get("seed", SEED), "fmax_mhz" in kept or
                "pnr_error" in kept or not place) == (design.sha256, SEED, True):
            print(f"{name}: kept from {done}", flush=True)
            return kept
    print(f"{name}: synthesis for {target}{'' if place else ' (no place)'} ...", flush=True)
    result = synthesize(design, target, outdir, freq_mhz=MHZ, seed=SEED, place=place)
    save_result("synth", design, result, suffix=target)
    return result


#: Counters kept with each layer: where the cycles beyond the bound went.
KEPT_COUNTERS = ("matches", "pe_busy", "bcast_stalls", "join_stalls", "lif_stalls", "rows_read")


def layer_rows(name: str, layers: list[str], overrides: dict) -> list[dict]:
    bench = _loas_bench()
    params = {"preset": name, **overrides}
    design = generate("loas", params)
    cfg = design.config
    rows = []
    for layer in layers:
        x, w = synthetic_layer(layer, T=cfg.T, seed=0)
        bound = match_count(x, w) / cfg.pes
        try:
            run = bench.run_rtl(params, x, w, sequential=False, tag=f"{name}-{layer}")
        except (SystemExit, SnnforgeError) as error:
            # Recorded, not fatal: e.g. a small core's command list outgrowing the simulated
            # memory.
            why = str(error).strip().splitlines()[-1]
            rows.append({"layer": layer, "bound": bound, "error": why})
            print(f"  {layer}: not run: {why}", flush=True)
            continue
        cycles = run["counters"]["cycles"]
        rows.append({"layer": layer, "rtl_cycles": cycles, "bound": bound,
                     "util": bound / cycles, "runs": len(run["runs"]),
                     "counters": {k: run["counters"][k] for k in KEPT_COUNTERS}})
        print(f"  {layer}: {cycles} cycles, {bound / cycles:.1%} of the bound", flush=True)
    return rows


def markdown(results: dict, command: str) -> str:
    lines = [f"LoAS presets (`{command}`; ECP5 out of context, iCE40 behind the serial I/O "
             "wrapper; nextpnr seed 1, 100 MHz constraint)", "",
             "| preset | target | LUT4 | FF | BRAM | DSP | logic used | Fmax MHz | critical path |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name, r in results.items():
        s = r["synth"]
        if s is None:
            lines.append(f"| {name} | not synthesized (--no-synth) | | | | | | | |")
            continue
        cells = s["cells"]
        logic = "n/a"
        if "logic_cells" in s:
            used, available = s["logic_cells"]
            logic = f"{used}/{available} ({used / available:.0%})"
        fmax = s.get("fmax_mhz") or ("not placed: larger than the device" if "pnr_error" in s
                                     else "synthesis only")
        path = next((p for p in s.get("critical_paths", []) if "<async>" not in p["clock"]),
                    None)
        crit = (f"{' -> '.join(path['through'])} ({path['delay_ns']} ns, "
                f"{path['logic_levels']} levels)") if path else ""
        lines.append(f"| {name} | {s['target']} | {cells['lut4']} | {cells['ff']} | "
                     f"{cells['bram']} | {cells['dsp']} | {logic} | {fmax} | {crit} |")
    layer_lines = [(name, row) for name, r in results.items() for row in r.get("layers", [])]
    if layer_lines:
        lines += ["", "| preset | layer | RTL cycles | effectual-work bound | utilisation | runs "
                  "| PE-cycles busy | broadcast stalls | join stalls |",
                  "|---|---|---|---|---|---|---|---|---|"]
        lines += [f"| {name} | {row['layer']} | {row['rtl_cycles']} | {row['bound']:.0f} | "
                  f"{row['util']:.1%} | {row['runs']} | {row['counters']['pe_busy']} | "
                  f"{row['counters']['bcast_stalls']} | {row['counters']['join_stalls']} |"
                  if "error" not in row else
                  f"| {name} | {row['layer']} | not run: {row['error']} | {row['bound']:.0f} "
                  "| | | | | |"
                  for name, row in layer_lines]
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    presets = tuple(get_generator("loas").presets)
    ap.add_argument("--presets", default=",".join(presets))
    ap.add_argument("--layers", default="", help="Table II layers to run at each placed preset")
    ap.add_argument("--fresh", action="store_true", help="synthesize again even if kept")
    ap.add_argument("--no-synth", action="store_true", help="run the layers only")
    ap.add_argument("-p", "--param", action="append", default=[], metavar="KEY=VALUE",
                    help="a core parameter on top of every preset (a candidate configuration)")
    ap.add_argument("-o", "--out", default=None, help="output directory (default build/bench)")
    args = ap.parse_args(argv)
    chosen = [p for p in args.presets.split(",") if p]
    unknown = [p for p in chosen if p not in TARGET]
    if unknown:
        ap.error(f"unknown preset {unknown[0]!r}; presets: {', '.join(TARGET)}")
    bad = [item for item in args.param if "=" not in item]
    if bad:
        ap.error(f"-p {bad[0]!r}: expected KEY=VALUE")
    overrides = dict(item.split("=", 1) for item in args.param)
    command = "python bench/loas_presets_bench.py " + " ".join(
        argv if argv is not None else sys.argv[1:])
    results = {}
    for name in chosen:
        try:
            params = get_generator("loas").configure({"preset": name, **overrides}).values()
        except SnnforgeError as error:
            ap.error(str(error))
        results[name] = {"params": params, "overrides": overrides,
                         "synth": None if args.no_synth else
                         synth_preset(name, args.fresh, overrides)}
        if args.layers and TARGET[name][1]:
            results[name]["layers"] = layer_rows(name, args.layers.split(","), overrides)
    outdir = Path(args.out) if args.out else build_root() / "bench"
    outdir.mkdir(parents=True, exist_ok=True)
    md = markdown(results, command.strip())
    (outdir / "loas_presets.md").write_text(md + "\n")
    (outdir / "loas_presets.json").write_text(json.dumps(
        {"command": command, "presets": results}, indent=2, default=str) + "\n")
    print(md)


if __name__ == "__main__":
    main()
