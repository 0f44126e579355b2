"""``snnforge deploy``: a trained network mapped onto a core and run on its RTL -- the generic
part. A family offers a deployment flow by naming a module in its generator's ``deployer``
(``deploy_nir`` for NIR graphs, ``deploy_checkpoint`` for its own checkpoint format, ``demo``
for ``make demo``); this module dispatches to it and gives the flows their shared pieces: the
data files, a testcase run on the RTL, the first difference, and a directory written whole or not
at all.
"""

from __future__ import annotations

import importlib
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from .generate import build_root
from .params import SnnforgeError
from .registry import generators, get_generator

__all__ = ["deployers", "deploy", "run_on_rtl", "load_data", "write_dir", "first_difference"]


def deployers() -> dict:
    """Generators with a deployment flow: name -> its module (imported on use)."""
    return {name: gen.deployer for name, gen in generators().items() if gen.deployer}


def deploy(console, model, *, core: str | None = None, **options) -> dict:
    """Deploy ``model`` with ``core``'s flow (the first core with one by default): a ``.pt``
    is the family's own checkpoint (``deploy_checkpoint``), anything else a NIR graph
    (``deploy_nir``). Returns the report."""
    flows = deployers()
    core = core or next(iter(flows), None)
    if core not in flows:
        get_generator(core)      # an unknown name lists the generators
        raise SnnforgeError(f"--core {core!r} has no deployment flow; cores: "
                            f"{', '.join(flows) or 'none'}")
    module = importlib.import_module(flows[core])
    compare = options.pop("compare_unmasked", False)
    dt = options.pop("dt", 1e-4)
    if str(model).endswith(".pt"):
        if not hasattr(module, "deploy_checkpoint"):
            raise SnnforgeError(f"--core {core} deploys NIR graphs, not checkpoints (.pt)")
        return module.deploy_checkpoint(console, model, compare_unmasked=compare, **options)
    if compare:
        raise SnnforgeError("--compare-unmasked applies to checkpoints with time-step masks "
                            "(MODEL.pt); a NIR graph has none")
    return module.deploy_nir(console, model, dt=dt, **options)


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
