"""``snnforge deploy``: a trained network in NIR, mapped onto a core and run on its RTL.

The flow: read the graph (``golden.nir``), map it onto LoAS layer programs (``hw.loas.deploy``,
which also fixes the core's leak kind), generate that core (the LoAS demo configuration unless
``-p`` says otherwise), run the samples through the float reference of the graph, the integer
golden model of the mapping and the RTL under Verilator (cocotb testcase ``deploy``), check the
RTL equals the golden model output for output, and write the directory: ``outputs.npz``,
``program.npz`` (the mapped network), ``report.json`` and ``report.md``. The directory is written
whole or not at all.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from .generate import build_root, generate
from .params import SnnforgeError
from .registry import get_generator

__all__ = ["CORES", "run_deploy", "run_on_rtl", "load_data", "write_dir", "first_difference"]

#: Cores with a NIR mapping.
CORES = ("loas",)


def load_data(data, labels, input_shape):
    """``(spikes [N, T, *input_shape] uint8, labels [N] int64 or None)`` from ``.npy`` paths or
    arrays; raises :class:`SnnforgeError` naming the file and what it must hold."""
    def load(value, what):
        if isinstance(value, (str, Path)):
            path = Path(value)
            if not path.is_file():
                raise SnnforgeError(f"{what} {path}: no such file")
            try:
                return np.load(path, allow_pickle=False)
            except Exception as error:
                raise SnnforgeError(f"{what} {path}: not a readable .npy file ({error})") from None
        return np.asarray(value)

    x = load(data, "--data")
    want = ["N", "T", *map(str, input_shape)]
    if x.ndim != 2 + len(input_shape) or tuple(x.shape[2:]) != tuple(input_shape):
        raise SnnforgeError(f"--data must have shape [{', '.join(want)}] (the graph's input), "
                            f"not {list(x.shape)}")
    if not (np.issubdtype(x.dtype, np.number) or x.dtype == bool) or x.size == 0 or \
            not np.all((x == 0) | (x == 1)):
        raise SnnforgeError("--data must hold binary spike trains (0/1)")
    y = None
    if labels is not None:
        y = load(labels, "--labels")
        if y.shape != (x.shape[0],) or not np.issubdtype(y.dtype, np.integer) or \
                (y.size and y.min() < 0):
            raise SnnforgeError(f"--labels must be {x.shape[0]} non-negative integer classes "
                                f"[N], not {list(y.shape)} {y.dtype}")
        y = y.astype(np.int64)
    return x.astype(np.uint8), y


def first_difference(name, got, want) -> str:
    bad = np.argwhere(got != want)
    index = tuple(bad[0].tolist())
    return (f"{name}: {len(bad)} of {want.size} differ, first at {list(index)}: golden "
            f"{want[index]}, RTL {got[index]}")


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


def write_dir(outdir, files: dict) -> None:
    """Write ``outdir`` whole or not at all: each ``files[name](path)`` writes one file into a
    staging directory beside it, which then replaces ``outdir``."""
    outdir = Path(outdir)
    outdir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{outdir.name}.", dir=outdir.parent))
    try:
        for name, write in files.items():
            write(staging / name)
        if outdir.exists():
            shutil.rmtree(outdir)
        staging.rename(outdir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def run_on_rtl(console, design, testcase: str, inputs: dict, status: str):
    """Run the cocotb ``testcase`` of ``design``'s bench under Verilator: ``inputs`` maps each
    option to ``(file name, write(path))``; the testcase writes ``options["out_file"]``.
    Returns its arrays and its ``counter_*`` values (without the prefix)."""
    from .sim.runner import run_bench
    work = build_root() / "deploy" / f"{design.key}-{testcase}-{time.monotonic_ns()}"
    work.mkdir(parents=True)
    options = {"out_file": str(work / "out.npz")}
    for option, (name, write) in inputs.items():
        write(work / name)
        options[option] = str(work / name)
    with console.status(status + " ..."):
        bench = run_bench(design.generator.name, design=design, testcase=testcase,
                          options=options)
    if not bench.ok:
        raise SystemExit(f"snnforge deploy: the RTL run failed:\n{bench.summary()}")
    with np.load(work / "out.npz") as found:
        out = dict(found)
    return out, {k[len("counter_"):]: int(v) for k, v in out.items() if k.startswith("counter_")}


def run_deploy(console, model, *, data, labels=None, outdir, core: str = "loas",
               overrides: dict | None = None, dt: float = 1e-4) -> dict:
    """Deploy ``model`` (a ``.nir`` file); returns the report (also written to ``outdir``)."""
    from .golden.nir import float_forward, read_chain
    from .hw.loas.deploy import forward, golden_segment, map_chain, predictions
    from .golden.loas.energy import energy as loas_energy

    if core not in CORES:
        raise SnnforgeError(f"--core {core!r} has no NIR mapping; cores: {', '.join(CORES)}")
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

    import torch
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
