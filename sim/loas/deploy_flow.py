"""The LoAS family's deployment flows (``snnforge deploy``, the generator's ``deployer``).

* :func:`deploy_nir`: a NIR graph (``golden.nir``) mapped onto LoAS layer programs
  (``hw.loas.deploy``, which also fixes the core's leak kind) on a generated core (the LoAS demo
  configuration unless ``-p`` says otherwise); the samples run on the float reference of the
  graph, the integer golden model of the mapping and the RTL under Verilator (cocotb testcase
  ``deploy``); the RTL must equal the golden model output for output. ``DIR`` gets
  ``outputs.npz``, ``program.npz`` (the mapped network), ``report.json`` and ``report.md``.
* :func:`deploy_checkpoint`: the DT-SNN spiking ViT (``golden.dtsnn``, a checkpoint of
  ``snnforge train dtsnn``): the float model, the plain integer reference, the core's golden model
  and the RTL (testcase ``dtsnn``, ``hw.loas.dtsnn``); with ``compare_unmasked`` the same network
  with every step open, side by side.
* :func:`demo`: both, for ``make demo``.

Every directory is written whole or not at all.
"""

from __future__ import annotations

import asyncio
import dataclasses
import importlib.util
import json
from pathlib import Path

import numpy as np

from ...deploy import first_difference, load_data, run_on_rtl, write_dir
from ...generate import build_root, generate
from ...params import SnnforgeError
from ...registry import get_generator

__all__ = ["deploy_nir", "deploy_checkpoint", "demo"]

#: Test images the demo runs the ViT on (each about 2 s of simulation, twice: with its masks and
#: with every step open).
DTSNN_IMAGES = 32


def _markdown(report: dict) -> str:
    lines = [f"# snnforge deploy: {report['model']}", "",
             f"Core: `{report['core']}` with {report['core_changed'] or 'its defaults'}; "
             f"{report['samples']} samples, "
             f"T={report['T']}, dt={report['dt']} s.", "",
             "| layer | kind | shape (K x N) | rows/sample | weight sparsity | scale | "
             "threshold | leak | T | mask |", "|---|---|---|---|---|---|---|---|---|---|"]
    for layer in report["layers"]:
        scale = (f"{layer['scale_min']:.4g}" if layer["scale_min"] == layer["scale_max"]
                 else f"{layer['scale_min']:.4g}..{layer['scale_max']:.4g}")
        lines.append(f"| {layer['name']} | {layer['kind']} | {layer['K']} x {layer['N']} | "
                     f"{layer['rows_per_sample']} | {layer['weight_sparsity']:.1%} | {scale} | "
                     f"{layer['threshold']} | {layer['leak_amount']} (beta {layer['beta']:.4g}) | "
                     f"{report['T']} | {layer['tmask']:0{report['T']}b} |")
    r = report["results"]
    lines += ["", "| | float graph | integer golden | RTL |", "|---|---|---|---|"]
    if "accuracy_rtl" in r:
        lines.append(f"| accuracy | {r['accuracy_float']:.1%} | {r['accuracy_golden']:.1%} | "
                     f"{r['accuracy_rtl']:.1%} |")
    lines += [f"| agreement with the float graph | - | {r['agreement_golden_float']:.1%} | "
              f"{r['agreement_rtl_float']:.1%} |",
              f"| outputs equal to the golden model | - | - | {r['rtl_equals_golden']} |", "",
              f"RTL: {r['cycles']:,} compute cycles, {r['total_cycles']:,} end to end (loads "
              f"included), {r['matches']:,} matches, {r['dma_bytes']:,} DMA bytes, "
              f"{r['chained_boundaries']} layer boundaries chained on chip; per sample "
              f"{r['total_cycles_per_sample']:,.0f} cycles; energy (LoAS paper model, relative "
              f"units) {r['energy']:.4g}, per sample {r['energy_per_sample']:.4g}.", "",
              "Approximations of the integer mapping:", ""]
    lines += [f"- {note}" for note in report["approximations"]]
    lines += ["", f"Golden path: {report['golden_path']}"]
    return "\n".join(lines) + "\n"


def deploy_nir(console, model, *, data, labels=None, outdir, overrides: dict | None = None,
               dt: float = 1e-4) -> dict:
    """Deploy ``model`` (a ``.nir`` file); returns the report (also written to ``outdir``)."""
    import torch
    from ...golden.loas.energy import energy as loas_energy
    from ...golden.nir import float_forward, read_chain
    from ...hw.loas.deploy import forward, golden_segment, map_chain, predictions
    core = "loas"
    overrides = dict(overrides or {})
    input_shape, stages = read_chain(model, dt)
    x, y = load_data(data, labels, input_shape)
    T = x.shape[1]
    if "T" in overrides and int(overrides["T"]) != T:
        raise SnnforgeError(f"-p T={overrides['T']} differs from the data's T={T}")
    if overrides.get("reset", "hard") != "hard":
        raise SnnforgeError("-p reset must be hard: NIR neurons reset to v_reset (0)")
    gen = get_generator(core)
    designs = {}

    def cfg_for(leak):
        params = {**gen.demo_params, "T": T, "leak": leak, "reset": "hard", **overrides}
        with console.status(f"generating {core} ..."):
            designs["design"] = generate(core, params)
        return designs["design"].config

    program, cfg = map_chain(input_shape, stages, cfg_for, T=T)
    design = designs["design"]
    spikes = np.ascontiguousarray(x.transpose(1, 0, *range(2, x.ndim)))   # [T, N, ...]

    with console.status("float reference and integer golden model ..."):
        float_out, _ = float_forward(stages, torch.from_numpy(spikes))
        float_out = float_out.numpy().astype(np.uint8)
        gold_out, gold_membrane, gold_counters = asyncio.run(
            forward(program, spikes, golden_segment(cfg)))

    rtl, counters = run_on_rtl(
        console, design, "deploy", {"program_file": ("program.npz", program.save),
                                    "spikes_file": ("spikes.npy", lambda p: np.save(p, spikes))},
        f"{core}: Verilator build (once per configuration) and run of {x.shape[0]} samples")
    problems = [first_difference(name, rtl[name], want) for name, want in
                (("spikes", gold_out), ("membrane", gold_membrane))
                if not np.array_equal(rtl[name], want)]
    if counters["matches"] != gold_counters["matches"]:
        problems.append(f"matches: golden {gold_counters['matches']}, RTL {counters['matches']}")

    pred = {"float": predictions(float_out), "golden": predictions(gold_out),
            "rtl": predictions(rtl["spikes"])}
    S = x.shape[0]
    dma_bytes = counters["dma_read_bytes"] + counters["dma_write_bytes"]
    # The LoAS paper's energy model: the RTL's cycles, DMA bytes and matches, the model's SRAM
    # traffic (the RTL counts no buffer accesses).
    energy = loas_energy("loas", counters["total_cycles"], dma_bytes,
                         gold_counters["sram_bytes"], counters["matches"])
    results = {
        "rtl_equals_golden": not problems,
        "agreement_golden_float": float((pred["golden"] == pred["float"]).mean()),
        "agreement_rtl_float": float((pred["rtl"] == pred["float"]).mean()),
        "cycles": counters["cycles"], "total_cycles": counters["total_cycles"],
        "total_cycles_per_sample": counters["total_cycles"] / S,
        "matches": counters["matches"],
        "dma_bytes": dma_bytes,
        "chained_boundaries": counters["chained_boundaries"],
        "energy": energy, "energy_per_sample": energy / S,
        "sim_wall_seconds": float(rtl["wall_seconds"])}
    if y is not None:
        results.update({f"accuracy_{k}": float((v == y).mean()) for k, v in pred.items()})
    report = {"model": str(model), "core": core,
              "core_params": design.params,
              "core_changed": ", ".join(f"{p.name}={design.params[p.name]}" for p in gen.params
                                        if design.params.get(p.name, p.default) != p.default),
              "samples": S, "T": T, "dt": dt, "layers": [layer.info() for layer in program.layers],
              "segments": program.segments(), "approximations": program.approximations,
              "golden_path": "none: every layer runs on the core (the host only re-lays out "
                             "operands between segments: im2col, reshapes)",
              "results": results, "counters": counters, "problems": problems}

    write_dir(outdir, {
        "outputs.npz": lambda path: np.savez(
            path, spikes=np.moveaxis(rtl["spikes"], 0, 1), membrane=rtl["membrane"],
            predictions=pred["rtl"], golden_predictions=pred["golden"],
            float_predictions=pred["float"], **({"labels": y} if y is not None else {})),
        "program.npz": program.save,
        "report.json": lambda path: path.write_text(json.dumps(report, indent=2) + "\n"),
        "report.md": lambda path: path.write_text(_markdown(report))})

    _print(console, report, outdir)
    if problems:
        raise SystemExit("snnforge deploy: the RTL differs from the golden model:\n  "
                         + "\n  ".join(problems))
    return report


def _print(console, report, outdir) -> None:
    from rich.table import Table
    table = Table(title="mapping onto loas", title_justify="left")
    for column in ("layer", "kind", "K x N", "rows/sample", "sparsity", "threshold", "leak"):
        table.add_column(column)
    for layer in report["layers"]:
        table.add_row(layer["name"], layer["kind"], f"{layer['K']} x {layer['N']}",
                      str(layer["rows_per_sample"]), f"{layer['weight_sparsity']:.1%}",
                      str(layer["threshold"]), str(layer["leak_amount"]))
    console.print(table)
    r = report["results"]
    if "accuracy_rtl" in r:
        console.print(f"accuracy {100 * r['accuracy_rtl']:.1f} % on the RTL (integer golden "
                      f"{100 * r['accuracy_golden']:.1f} %, float graph "
                      f"{100 * r['accuracy_float']:.1f} %)")
    console.print(f"predictions agree with the float graph on {r['agreement_rtl_float']:.1%} of "
                  f"{report['samples']} samples; RTL outputs equal the golden model's: "
                  f"{r['rtl_equals_golden']}")
    console.print(f"cycles {r['cycles']:,} compute, {r['total_cycles']:,} end to end "
                  f"({r['total_cycles_per_sample']:,.0f} per sample); energy {r['energy']:.4g} "
                  f"(LoAS model, relative units)")
    console.print(f"  -> {outdir}")


def _checkpoint_markdown(report: dict) -> str:
    shape, r = report["shape"], report["results"]
    lines = [f"# snnforge deploy: {report['model']}", "",
             f"DT-SNN spiking ViT ({shape['attention']}, T_max {shape['tmax']}, dim "
             f"{shape['dim']}, {shape['heads']} heads, {shape['depth']} encoders) on `loas`, "
             f"{report['samples']} samples; int8 weight sparsity {report['int8_sparsity']:.1%}; "
             f"average time steps {report['t_eff']:.2f}.", "",
             "| layer | mask (bit t = step t) |", "|---|---|"]
    lines += [f"| {name} | {mask} |" for name, mask in report["masks"].items()]
    if "accuracy_rtl" in r:
        lines += ["", "| | float | integer reference | core golden | RTL |",
                  "|---|---|---|---|---|",
                  f"| accuracy | {r['accuracy_float']:.1%} | {r['accuracy_reference']:.1%} | "
                  f"{r['accuracy_golden']:.1%} | {r['accuracy_rtl']:.1%} |"]
    lines += ["", f"RTL outputs equal the golden model's: {r['rtl_equals_golden']}; predictions "
                  f"agree with the float model on {r['agreement_int_float']:.1%}.", "",
              "| run | cycles/image | end-to-end cycles/image | matches/image | energy/image |",
              "|---|---|---|---|---|"]
    for tag, v in report["rtl"].items():
        lines.append(f"| {tag} | {v['cycles_per_image']:,.0f} | "
                     f"{v['total_cycles_per_image']:,.0f} | {v['matches_per_image']:,.0f} | "
                     f"{v['energy_per_image']:.4g} |")
    lines += ["", "Approximations:", ""] + [f"- {n}" for n in report["approximations"]]
    lines += ["", f"On the host: {report['golden_path']}"]
    return "\n".join(lines) + "\n"


def deploy_checkpoint(console, checkpoint, *, data, labels=None, outdir,
                      overrides: dict | None = None, compare_unmasked: bool = False) -> dict:
    """Deploy a DT-SNN checkpoint on the LoAS RTL; returns the report (also in ``outdir``)."""
    import torch
    from ...dtsnn import load_checkpoint
    from ...golden.dtsnn.integer import export, int_forward, reference_linear, reference_matmul
    from ...golden.dtsnn.model import GATED_LAYERS
    from ...golden.loas.energy import energy as loas_energy
    from ...hw.loas.deploy import golden_segment, predictions
    from ...hw.loas.dtsnn import HOST_PATH, loas_ops
    model = load_checkpoint(checkpoint)
    net = export(model)
    x, y = load_data(data, labels, (16, 20))
    if x.shape[1] != net.T:
        raise SnnforgeError(f"--data has T={x.shape[1]} steps; the network was trained for "
                            f"tmax={net.T}")
    overrides = dict(overrides or {})
    for key, need in (("T", net.T), ("leak", "shift"), ("reset", "hard"),
                      ("masked", "integrate")):
        if key in overrides and str(overrides[key]) != str(need):
            raise SnnforgeError(f"-p {key}={overrides[key]}: the DT-SNN ViT needs {key}={need}")
    gen = get_generator("loas")
    design = generate("loas", {**gen.demo_params, "T": net.T, "leak": "shift", "reset": "hard",
                               "masked": "integrate", **overrides})
    cfg = design.config
    tok = np.ascontiguousarray(x.transpose(1, 0, 2, 3))                # [T, N, 16, 20]
    S = x.shape[0]
    with console.status("float model, integer reference and the core's golden model ..."):
        with torch.no_grad():
            float_out = model(torch.from_numpy(tok)).numpy().astype(np.uint8)
        reference = asyncio.run(int_forward(net, tok, reference_linear, reference_matmul))
        linear, matmul, gold_counters = loas_ops(golden_segment(cfg), cfg)
        gold_out = asyncio.run(int_forward(net, tok, linear, matmul))
    runs = {"masked": (net, gold_out, gold_counters)}
    if compare_unmasked:
        open_net = net.with_masks_open()
        linear, matmul, open_counters = loas_ops(golden_segment(cfg), cfg)
        runs["unmasked"] = (open_net, asyncio.run(int_forward(open_net, tok, linear, matmul)),
                            open_counters)
    results, problems, rtl_main = {}, [], None
    for tag, (variant, want, golden) in runs.items():
        out, counters = run_on_rtl(
            console, design, "dtsnn", {"net_file": ("net.npz", variant.save),
                                       "tokens_file": ("tokens.npy", lambda p: np.save(p, tok))},
            f"loas: Verilator build (once per configuration) and the ViT on {S} images ({tag})")
        got = out["spikes"]
        if not np.array_equal(got, want):
            problems.append(first_difference(f"{tag} spikes", got, want))
        if counters["matches"] != golden["matches"]:
            problems.append(f"{tag}: matches golden {golden['matches']}, RTL "
                            f"{counters['matches']}")
        dma = counters["dma_read_bytes"] + counters["dma_write_bytes"]
        e = loas_energy("loas", counters["total_cycles"], dma, golden["sram_bytes"],
                        counters["matches"])
        results[tag] = {"cycles_per_image": counters["cycles"] / S,
                        "total_cycles_per_image": counters["total_cycles"] / S,
                        "matches_per_image": counters["matches"] / S,
                        "energy_per_image": e / S, "layer_runs": counters["runs"],
                        "counters": counters}
        if tag == "masked":
            rtl_main = got
    pred = {"float": predictions(float_out), "reference": predictions(reference),
            "golden": predictions(gold_out), "rtl": predictions(rtl_main)}
    summary = {"rtl_equals_golden": not problems,
               "reference_equals_golden": bool(np.array_equal(reference, gold_out)),
               "agreement_int_float": float((pred["golden"] == pred["float"]).mean())}
    if y is not None:
        summary.update({f"accuracy_{k}": float((v == y).mean()) for k, v in pred.items()})
    if compare_unmasked:
        m, u = results["masked"], results["unmasked"]
        summary["savings"] = {k: 1 - m[k] / u[k] for k in ("cycles_per_image",
                                                           "total_cycles_per_image",
                                                           "matches_per_image",
                                                           "energy_per_image") if u[k]}
    masks = dict(zip(GATED_LAYERS(net.shape), model.masks()))
    report = {"model": str(checkpoint), "core": "loas", "core_params": design.params,
              "samples": S, "shape": dataclasses.asdict(net.shape),
              "t_eff": float(np.mean([bin(m).count("1") for m in masks.values()])),
              "masks": {k: f"{v:0{net.T}b}" for k, v in masks.items()},
              "int8_sparsity": net.sparsity(), "results": summary, "rtl": results,
              "approximations": net.notes, "golden_path": HOST_PATH, "problems": problems}
    write_dir(outdir, {
        "outputs.npz": lambda path: np.savez(
            path, spikes=np.moveaxis(rtl_main, 0, 1), predictions=pred["rtl"],
            golden_predictions=pred["golden"], float_predictions=pred["float"],
            **({"labels": y} if y is not None else {})),
        "report.json": lambda path: path.write_text(json.dumps(report, indent=2) + "\n"),
        "report.md": lambda path: path.write_text(_checkpoint_markdown(report))})
    if y is not None:
        console.print(f"accuracy {100 * summary['accuracy_rtl']:.1f} % on the RTL (integer "
                      f"{100 * summary['accuracy_golden']:.1f} %, float "
                      f"{100 * summary['accuracy_float']:.1f} %), average time steps "
                      f"{report['t_eff']:.2f} of {net.T}")
    line = (f"RTL outputs equal the golden model's: {summary['rtl_equals_golden']}; "
            f"{results['masked']['total_cycles_per_image']:,.0f} cycles per image")
    if compare_unmasked:
        line += (f" vs {results['unmasked']['total_cycles_per_image']:,.0f} with every step "
                 f"open: {summary['savings']['total_cycles_per_image']:.1%} fewer cycles, "
                 f"{summary['savings']['matches_per_image']:.1%} fewer matches")
    console.print(line)
    console.print(f"  -> {Path(outdir)}")
    if problems:
        raise SystemExit("snnforge deploy: the RTL differs from the golden model:\n  "
                         + "\n  ".join(problems))
    return report


def demo(console) -> bool:
    """``snnforge deploy`` on a third-party network -- the snnTorch digits MLP, exported by
    snnTorch's own NIR exporter, on the LoAS demo core's RTL over the digits test split -- and
    on the DT-SNN spiking ViT, with its time-step masks and without."""
    console.rule("deploy: an snnTorch network through NIR onto loas")
    missing = [m for m in ("snntorch", "nirtorch", "sklearn")
               if importlib.util.find_spec(m) is None]
    if missing:
        console.print(f"skipped: {', '.join(missing)} not installed (development dependencies: "
                      f"pip install 'snnforge[dev]')")
        return True
    from ...golden.nir.digits import digits_spikes, export_nir, train_snntorch_digits
    work = build_root() / "demo"
    work.mkdir(parents=True, exist_ok=True)
    with console.status("training the snnTorch digits MLP ..."):
        net, _ = train_snntorch_digits()
        export_nir(net, work / "digits.nir")
    x, y = digits_spikes(4)
    np.save(work / "digits_x.npy", x)
    np.save(work / "digits_y.npy", y)
    report = deploy_nir(console, work / "digits.nir", data=work / "digits_x.npy",
                        labels=work / "digits_y.npy", outdir=work / "deploy")
    ok = report["results"]["rtl_equals_golden"]

    console.rule("deploy: the DT-SNN spiking ViT (STAtten) with dynamic time steps onto loas")
    from ...dtsnn import token_data, train as train_dtsnn
    train_dtsnn(console, outdir=work / "dtsnn", attention="statten")
    x, y = token_data(4)
    np.save(work / "dtsnn_x.npy", x[:DTSNN_IMAGES])
    np.save(work / "dtsnn_y.npy", y[:DTSNN_IMAGES])
    report = deploy_checkpoint(console, work / "dtsnn" / "dtsnn.pt", data=work / "dtsnn_x.npy",
                          labels=work / "dtsnn_y.npy", outdir=work / "dtsnn_deploy",
                          compare_unmasked=True)
    return ok and report["results"]["rtl_equals_golden"]
