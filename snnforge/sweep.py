"""``snnforge sweep``: a design-space sweep of one generator on dask.distributed.

Every point of the cartesian product of the ``-p NAME=V1,V2,...`` values is generated,
synthesized (and placed) for one target and, with ``layers``, run on workload layers under
Verilator for the cycle counts of the RTL. Each point runs as a task on a dask cluster (a
``LocalCluster`` on loopback, or any scheduler), in a subprocess of its worker, so that a crash
or a timeout fails that point alone; its output is its log.

Results are cached by design hash: synthesis in ``build/synth/<key>-<target>/synth.json`` (shared
with ``snnforge synth``), cycles in ``build/sweep/cycles/<key>/``; a rerun computes only what is
missing. The points not dominated on (cells, time per layer -- or 1/Fmax without layers) form
the Pareto front, written as markdown, JSON and a plot.
"""

from __future__ import annotations

import importlib
import itertools
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from .generate import build_root, generate, source_fingerprint
from .params import SnnforgeError, parse_assignments
from .registry import generators, get_generator
from .synth.flow import TARGETS, synthesize

__all__ = ["Sweep", "plan_sweep", "run_sweep", "pareto_front"]

#: The most of a point's log kept in its record.
LOG_TAIL = 20000


@dataclass(frozen=True)
class Sweep:
    """A validated sweep: ``points`` are full parameter sets, ``swept`` their varying values as
    given (one dict per point), ``fixed`` the single values given; ``layers`` run by the module
    ``layers_module`` (see :attr:`Generator.sweep_layers <snnforge.generator.Generator>`)."""

    name: str
    target: str
    points: list
    swept: list
    fixed: dict
    layers: tuple = ()
    layers_module: str | None = None
    place: bool = True
    freq_mhz: float = 100.0
    seed: int = 1
    timeout_s: float | None = None
    command: str = ""
    varying: list = field(default_factory=list)


def plan_sweep(name, assignments, *, target="ecp5-85k", layers=(), layers_module=None,
               place=True, freq_mhz=100.0, seed=1, timeout_s=None) -> Sweep:
    """Expand ``-p`` texts (``"pes=2,4"``) into points and validate each point's parameters,
    the target and the layers (:class:`SnnforgeError` naming the first problem). The layers
    are the generator's ``sweep_layers`` unless ``layers_module`` names another module of
    that form (importable on the workers too)."""
    gen = get_generator(name)
    if target not in TARGETS:
        raise SnnforgeError(f"unknown target {target!r}; valid targets: {', '.join(TARGETS)}")
    values = {}
    for item in assignments:
        (key, text), = parse_assignments([item]).items()
        if key in values:
            raise SnnforgeError(f"-p {key} is given twice; give its values once, "
                                f"comma-separated")
        values[key] = [v.strip() for v in text.split(",")]
        if not all(values[key]):
            raise SnnforgeError(f"-p {item!r}: an empty value (expected {key}=V1,V2,...)")
    layers, layers_module = tuple(layers), layers_module or gen.sweep_layers
    if layers:
        if layers_module is None:
            named = [g.name for g in generators().values() if g.sweep_layers]
            raise SnnforgeError(f"--layers: {name} has no workload layers; generators with "
                                f"them: {', '.join(named) or 'none'}")
        known = importlib.import_module(layers_module).LAYERS
        for layer in layers:
            if layer not in known:
                raise SnnforgeError(f"--layers: unknown layer {layer!r}; layers: "
                                    f"{', '.join(known)}")
    varying = [k for k, v in values.items() if len(v) > 1]
    points, swept, seen = [], [], set()
    for combo in itertools.product(*values.values()):
        given = dict(zip(values, combo))
        resolved = gen.configure(given).values()
        frozen = tuple(resolved.items())
        if frozen not in seen:
            seen.add(frozen)
            points.append(resolved)
            swept.append({k: given[k] for k in varying})
    command = " ".join(["snnforge sweep", name, *(f"-p {k}={','.join(v)}" for k, v in
                                                  values.items()), "--target", target]
                       + (["--layers", ",".join(layers)] if layers else [])
                       + ([] if place else ["--no-place"])
                       + ([f"--freq {freq_mhz:g}"] if freq_mhz != 100.0 else [])
                       + ([f"--seed {seed}"] if seed != 1 else []))
    return Sweep(name, target, points, swept, {k: v[0] for k, v in values.items()
                                               if len(v) == 1}, layers, layers_module, place,
                 freq_mhz, seed, timeout_s, command, varying)


# -- one point: in a subprocess of a worker -------------------------------------------------

def _cached_synth(path: Path, design, spec) -> dict | None:
    """The synthesis result kept at ``path`` if it holds this Verilog, target and nextpnr
    settings (the flow is deterministic); a failed place and route is tried again."""
    if not path.exists():
        return None
    kept = json.loads(path.read_text())
    if (kept.get("verilog_sha256"), kept.get("target")) != (design.sha256, spec["target"]):
        return None
    if not spec["place"]:
        return kept
    same = (kept.get("seed"), kept.get("constraint_mhz")) == (spec["seed"], spec["freq_mhz"])
    return kept if "fmax_mhz" in kept and "pnr_error" not in kept and same else None


def _write_whole(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    partial.write_text(json.dumps(data, indent=2, default=str) + "\n")
    partial.replace(path)


def compute_point(spec: dict) -> dict:
    """Generate, synthesize and run one point, reusing what the build directory holds;
    ``computed`` lists the steps that ran here."""
    if source_fingerprint() != spec["sources"]:
        raise SnnforgeError("the generator sources (or Amaranth) changed since the sweep "
                            "started; run the sweep again")
    design = generate(spec["name"], spec["params"])
    print(f"{design.key}: {spec['target']}", flush=True)
    record = {"key": design.key, "verilog_sha256": design.sha256, "computed": []}
    synth_dir = build_root() / "synth" / f"{design.key}-{spec['target']}"
    synth = _cached_synth(synth_dir / "synth.json", design, spec)
    if synth is None:
        synth = synthesize(design, spec["target"], synth_dir, freq_mhz=spec["freq_mhz"],
                           seed=spec["seed"], place=spec["place"],
                           progress=lambda text: print(text, flush=True))
        record["computed"].append("synth")
    if not spec["place"]:
        synth = {k: v for k, v in synth.items() if k not in ("fmax_mhz", "logic_cells",
                                                               "pnr_error")}
    record["synth"] = {k: v for k, v in synth.items() if k not in ("cells_by_type", "params")}
    record["synth_dir"] = str(synth_dir)
    print(f"cells {synth['cells']}, logic cells {synth.get('logic_cells')}, "
          f"Fmax {synth.get('fmax_mhz')} MHz", flush=True)
    if "pnr_error" in synth:
        print(f"place and route failed:\n{synth['pnr_error']}", flush=True)
        record["error"] = f"place and route failed (log: {synth_dir / 'nextpnr.log'})"
        return record
    record["layers"] = {}
    for layer in spec["layers"]:
        path = (build_root() / "sweep" / "cycles" / design.key
                / f"{layer}-{source_fingerprint()[:12]}.json")
        if path.exists():
            result = json.loads(path.read_text())
        else:
            print(f"{layer}: on the RTL under Verilator", flush=True)
            result = importlib.import_module(spec["layers_module"]).run_layer(design, layer)
            _write_whole(path, result)
            record["computed"].append(f"layer:{layer}")
        print(f"{layer}: {result['cycles']:,} cycles", flush=True)
        record["layers"][layer] = result
    return record


def _kill_tree(proc: subprocess.Popen) -> None:
    import psutil
    try:
        children = psutil.Process(proc.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        children = []
    for child in children:
        child.kill()
    proc.kill()
    proc.wait()


def run_point(spec: dict) -> dict:
    """The dask task of one point: :func:`compute_point` in a subprocess (its output is the
    point's log), killed with its children after ``timeout_s``."""
    start = time.monotonic()
    # The point's process imports what its worker can (a layers module beside a script).
    env = {**os.environ, "SNNFORGE_BUILD": spec["build"],
           "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    with tempfile.TemporaryDirectory(prefix="snnforge-sweep-") as tmp:
        spec_file, result_file, log_file = (Path(tmp) / n for n in ("spec.json", "result.json",
                                                                    "point.log"))
        spec_file.write_text(json.dumps(spec))
        with open(log_file, "w") as log:
            proc = subprocess.Popen([sys.executable, "-m", "snnforge.sweep", str(spec_file),
                                     str(result_file)], stdout=log, stderr=subprocess.STDOUT,
                                    env=env)
            try:
                proc.wait(timeout=spec["timeout_s"])
                timed_out = False
            except subprocess.TimeoutExpired:
                _kill_tree(proc)
                timed_out = True
        text = log_file.read_text(errors="replace")
        record = (json.loads(result_file.read_text()) if result_file.exists()
                  else {"computed": []})
    record["log_tail"] = text[-LOG_TAIL:]
    record["seconds"] = round(time.monotonic() - start, 1)
    if timed_out:
        record["log_tail"] += f"\n[snnforge sweep: killed after {spec['timeout_s']} s]\n"
        record["status"], record["error"] = "timeout", f"timed out after {spec['timeout_s']} s"
    elif proc.returncode != 0:
        lines = [line for line in text.splitlines() if line.strip()]
        record["status"] = "failed"
        record["error"] = lines[-1] if lines else f"exit status {proc.returncode}"
    else:
        record["status"] = "failed" if "error" in record else "ok"
    return record


# -- the sweep: cluster, progress, Pareto, outputs ------------------------------------------

def pareto_front(values: list) -> list[bool]:
    """For each tuple of objectives (lower is better; None: not a candidate), whether no other
    tuple dominates it (no worse in every objective, better in one)."""
    def dominates(a, b):
        return all(x <= y for x, y in zip(a, b)) and any(x < y for x, y in zip(a, b))
    candidates = [v for v in values if v is not None]
    return [v is not None and not any(dominates(o, v) for o in candidates) for v in values]


def _objectives(sweep: Sweep, record: dict):
    """(cells, time) of an ``ok`` point: time per layer in us (mean cycles / Fmax), cycles
    without Fmax, 1/Fmax in ns without layers; (cells,) with neither."""
    if record["status"] != "ok":
        return None
    synth = record["synth"]
    cells = synth["logic_cells"][0] if sweep.place else synth["cells"]["lut4"]
    fmax = synth.get("fmax_mhz") if sweep.place else None
    if sweep.place and not fmax:
        return None
    cycles = [record["layers"][layer]["cycles"] for layer in sweep.layers]
    if cycles:
        mean = sum(cycles) / len(cycles)
        return (cells, mean / fmax) if fmax else (cells, mean)
    return (cells, 1e3 / fmax) if fmax else (cells,)


def _connect(scheduler, workers):
    """A dask client: on ``scheduler``, or on a new loopback ``LocalCluster`` of ``workers``
    single-threaded processes (its cluster returned too, to be closed)."""
    from distributed import Client, LocalCluster
    if scheduler is None:
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                               host="127.0.0.1", dashboard_address=None)
        return Client(cluster), cluster
    from distributed.comm import registry
    from distributed.comm.addressing import parse_address, parse_host_port
    try:
        scheme, location = parse_address(scheduler)
        if scheme not in registry.backends or scheme == "inproc":
            raise ValueError(f"unknown scheme {scheme!r}")
        port = parse_host_port(location)[1]
        if not 0 < port < 65536:
            raise ValueError(f"port {port} out of range")
    except ValueError as error:
        raise SnnforgeError(f"--scheduler {scheduler!r}: not a scheduler address ({error}); "
                            f"expected [tcp://]HOST:PORT") from None
    try:
        return Client(scheduler, timeout="10s"), None
    except (OSError, TimeoutError) as error:
        raise SnnforgeError(f"--scheduler {scheduler}: cannot reach the scheduler "
                            f"({error})") from None


def run_sweep(console, sweep: Sweep, outdir, *, workers=1, scheduler=None,
              stem="sweep") -> dict:
    """Run every point of ``sweep`` on the cluster (progress on ``console``), then write
    ``outdir/{stem}.md``, ``.json`` and ``.png`` and failed points' logs; returns the JSON."""
    from distributed import as_completed
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    client, cluster = _connect(scheduler, workers)
    where = scheduler or f"a local cluster of {workers} worker{'s' * (workers > 1)}"
    console.print(f"{len(sweep.points)} point{'s' * (len(sweep.points) > 1)} of {sweep.name} "
                  f"on {sweep.target}, run by {where}")
    specs = [{"name": sweep.name, "params": params, "target": sweep.target,
              "place": sweep.place, "freq_mhz": sweep.freq_mhz, "seed": sweep.seed,
              "layers": list(sweep.layers), "layers_module": sweep.layers_module,
              "timeout_s": sweep.timeout_s,
              "build": str(build_root()), "sources": source_fingerprint()}
             for params in sweep.points]
    labels = [" ".join(f"{k}={v}" for k, v in swept.items()) or sweep.name
              for swept in sweep.swept]
    records = [None] * len(specs)
    start = time.monotonic()
    try:
        futures = [client.submit(run_point, spec, pure=False) for spec in specs]
        index = {f.key: i for i, f in enumerate(futures)}
        columns = ("{task.description}", BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        with Progress(*columns, console=console, transient=True) as progress:
            task = progress.add_task(f"sweep {sweep.name} on {sweep.target}", total=len(specs))
            for future in as_completed(futures):
                i = index[future.key]
                try:
                    records[i] = future.result()
                except Exception as error:    # the task itself (or its worker) failed
                    records[i] = {"status": "failed", "error": f"{type(error).__name__}: "
                                  f"{error}", "log_tail": "", "computed": []}
                progress.advance(task)
                progress.console.print(f"  {labels[i]}: {_line(sweep, records[i])}")
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
    return _summary(sweep, specs, labels, records, time.monotonic() - start, outdir, stem)


def _line(sweep: Sweep, record: dict) -> str:
    from rich.markup import escape
    if record["status"] != "ok":
        return f"[red]{record['status']}[/red]: {escape(record['error'])}"
    synth = record["synth"]
    parts = [f"logic cells {synth['logic_cells'][0]:,}" if sweep.place
             else f"LUT4 {synth['cells']['lut4']:,}"]
    if sweep.place:
        parts.append(f"Fmax {synth['fmax_mhz']} MHz")
    parts += [f"{layer} {record['layers'][layer]['cycles']:,} cycles" for layer in sweep.layers]
    computed = record["computed"]
    return ", ".join(parts) + (f" (computed: {', '.join(computed)})" if computed
                               else " (cached)")


def _summary(sweep, specs, labels, records, seconds, outdir, stem) -> dict:
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    objectives = [_objectives(sweep, r) for r in records]
    front = pareto_front(objectives)
    points = []
    for spec, swept, label, record, obj, best in zip(specs, sweep.swept, labels, records,
                                                      objectives, front):
        point = {"label": label, "swept": swept, "params": spec["params"], **record,
                 "objectives": obj, "pareto": best}
        if record["status"] != "ok":
            log = outdir / f"{stem}_logs" / f"{label.replace(' ', '_').replace('=', '')}.log"
            log.parent.mkdir(exist_ok=True)
            log.write_text(record["log_tail"])
            point["log"] = str(log)
        points.append(point)
    if sweep.layers:
        second = "time per layer (us)" if sweep.place else "cycles per layer"
    else:
        second = "1/Fmax (ns)" if sweep.place else None
    summary = {"generator": sweep.name, "target": sweep.target, "command": sweep.command,
               "fixed": sweep.fixed, "varying": sweep.varying, "layers": list(sweep.layers),
               "layers_module": sweep.layers_module,
               "place": sweep.place, "freq_mhz": sweep.freq_mhz, "seed": sweep.seed,
               "objectives": ["logic cells" if sweep.place else "LUT4"] + ([second] if second
                                                                             else []),
               "seconds": round(seconds, 1), "points": points}
    paths = [outdir / f"{stem}.{ext}" for ext in ("md", "json", "png")]
    paths[0].write_text(markdown(summary) + "\n")
    for point in points:
        point.pop("log_tail")
    paths[1].write_text(json.dumps(summary, indent=2, default=str) + "\n")
    plot(summary, paths[2])
    summary["files"] = [str(p) for p in paths]
    return summary


def markdown(summary: dict) -> str:
    """The sweep as a markdown table, Pareto points marked, failed points listed."""
    ok = [p for p in summary["points"] if p["status"] == "ok"]
    failed = [p for p in summary["points"] if p["status"] != "ok"]
    n = len(summary["points"])
    cached = sum("key" in p and not p["computed"] for p in summary["points"])
    fixed = ", ".join(f"{k}={v}" for k, v in summary["fixed"].items()) or "none"
    objectives = " and ".join(summary["objectives"])
    lines = [f"`{summary['command']}`: {n} point{'s' * (n > 1)} ({len(ok)} ok, {len(failed)} "
             f"failed; {cached} wholly from the cache) in {summary['seconds']:.0f} s. Fixed: "
             f"{fixed}. Pareto front (*) on {objectives}.", ""]
    varying, layers, place = summary["varying"], summary["layers"], summary["place"]
    header = varying + (["logic cells", "BRAM", "Fmax MHz"] if place else ["LUT4", "BRAM"])
    header += [f"{layer} cycles" for layer in layers]
    if layers and place:
        header.append("time/layer us")
    header.append("Pareto")
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] if ok else \
        ["No point succeeded."]
    for p in sorted(ok, key=lambda p: p["objectives"] or ()):
        synth = p["synth"]
        row = [str(p["swept"][k]) for k in varying]
        if place:
            used, available = synth["logic_cells"]
            row += [f"{used:,} ({used / available:.0%})", str(synth["cells"].get("bram", 0)),
                    str(synth.get("fmax_mhz"))]
        else:
            row += [f"{synth['cells']['lut4']:,}", str(synth["cells"].get("bram", 0))]
        row += [_cycles_text(p["layers"][layer]) for layer in layers]
        if layers and place:
            row.append(f"{p['objectives'][1]:,.1f}" if p["objectives"] else "-")
        row.append("*" if p["pareto"] else "")
        lines.append("| " + " | ".join(row) + " |")
    if ok and layers:
        lines += ["", f"Layers by `{summary['layers_module']}`; cycles per layer: end to end, "
                  f"as the RTL counts them (loads and stores included)"
                  + ("; in parentheses those of the computation alone."
                     if "compute_cycles" in ok[0]["layers"][layers[0]] else ".")]
    if failed:
        lines += ["", "Failed points:", "", "| point | status | error | log |", "|---|---|---|---|"]
        lines += [f"| {p['label']} | {p['status']} | {p['error'].replace('|', '/')} | "
                  f"{p['log']} |" for p in failed]
    return "\n".join(lines)


def _cycles_text(result: dict) -> str:
    compute = result.get("compute_cycles")
    return f"{result['cycles']:,}" + (f" ({compute:,})" if compute is not None else "")


def plot(summary: dict, path: Path) -> None:
    """Cells against the second objective (or the points, with one objective), the Pareto
    front highlighted."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = [p for p in summary["points"] if p["objectives"] is not None]
    two = len(summary["objectives"]) == 2
    xs = [p["objectives"][0] for p in ok]
    ys = [p["objectives"][1] if two else i for i, p in enumerate(ok)]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.scatter(xs, ys, color="tab:blue", label="points")
    front = sorted((x, y, p["label"]) for x, y, p in zip(xs, ys, ok) if p["pareto"])
    if front:
        ax.plot([f[0] for f in front], [f[1] for f in front], "o-" if two else "o",
                color="tab:red", label="Pareto front", drawstyle="steps-post")
        for x, y, label in front:
            ax.annotate(label, (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7)
    ax.set_xlabel(summary["objectives"][0])
    if two:
        ax.set_ylabel(summary["objectives"][1])
    else:
        ax.set_yticks(ys, [p["label"] for p in ok], fontsize=7)
    ax.set_title(f"{summary['generator']} on {summary['target']}")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    # A point's subprocess (run_point): SPEC.json RESULT.json.
    spec_path, result_path = sys.argv[1:3]
    _write_whole(Path(result_path), compute_point(json.loads(Path(spec_path).read_text())))
