"""``snnforge run loas``: one layer on the generated RTL under Verilator."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from .params import SnnforgeError

__all__ = ["run_layer_cli", "parse_lif"]

RUNNABLE = ("loas",)


def parse_lif(text: str) -> tuple[dict, dict]:
    """``threshold=64,leak=shift:2,reset=soft`` -> (generator parameters, register values).

    Structure (leak kind, reset kind) is hardware: it becomes generator parameters; amounts
    (threshold, leak shift or factor) are register values.
    """
    params, regs = {}, {"threshold": 64, "leak_amount": None}
    for item in filter(None, (part.strip() for part in (text or "").split(","))):
        key, sep, value = item.partition("=")
        if not sep:
            raise SnnforgeError(f"--lif {item!r}: expected key=value (threshold, leak, reset)")
        key, value = key.strip(), value.strip()
        if key == "threshold":
            try:
                regs["threshold"] = int(value, 0)
            except ValueError:
                raise SnnforgeError(f"--lif threshold={value!r} is not an integer") from None
        elif key == "leak":
            kind, _, amount = value.partition(":")
            if kind not in ("none", "shift", "mul"):
                raise SnnforgeError(f"--lif leak={value!r}: use none, shift:K or mul:BETA")
            params["leak"] = kind
            if amount:
                try:
                    regs["leak_amount"] = int(amount, 0)
                except ValueError:
                    raise SnnforgeError(f"--lif leak={value!r}: amount is not an integer") from None
        elif key == "reset":
            if value not in ("hard", "soft"):
                raise SnnforgeError(f"--lif reset={value!r} is not one of hard, soft")
            params["reset"] = value
        else:
            raise SnnforgeError(f"--lif {key!r} is not one of threshold, leak, reset")
    return params, regs


def _load_array(path, what):
    path = Path(path)
    if not path.exists():
        raise SnnforgeError(f"--{what} {path}: no such file")
    try:
        return np.load(path, allow_pickle=False)
    except Exception as error:  # malformed file
        raise SnnforgeError(f"--{what} {path}: not a readable .npy file ({error})") from None


def run_layer_cli(console, name, overrides, *, spikes, weights, lif, tmask, strong, sequential,
                  outfile):
    from .generate import generate
    from .generators import loas_config_from
    from .loas_driver import validate_layer
    from .results import save_result
    from .sim.runner import run_bench

    if name not in RUNNABLE:
        raise SnnforgeError(f"snnforge run: {name!r} cannot run layers; runnable generators: "
                            f"{', '.join(RUNNABLE)}")
    x = _load_array(spikes, "spikes")
    w = _load_array(weights, "weights")
    lif_params, regs = parse_lif(lif)
    overrides = dict(overrides)
    if "T" not in overrides and x.ndim == 3:
        overrides["T"] = x.shape[0]            # the core is built for the layer's T
    overrides.update(lif_params)
    design = generate(name, overrides)
    cfg = loas_config_from(design.params)
    xs, ws = validate_layer(torch.from_numpy(np.asarray(x)), torch.from_numpy(np.asarray(w)), cfg.T)
    full = (1 << cfg.T) - 1
    try:
        mask = full if tmask is None else int(str(tmask), 0)
    except ValueError:
        raise SnnforgeError(f"--tmask {tmask!r} is not an integer") from None
    if not 0 <= mask <= full:
        raise SnnforgeError(f"--tmask {tmask} does not fit T={cfg.T} bits (0..{full})")
    lifp = cfg.lif
    if not 0 <= regs["threshold"] <= (1 << lifp.threshold_bits) - 1:
        raise SnnforgeError(f"--lif threshold={regs['threshold']} is out of range "
                            f"0..{(1 << lifp.threshold_bits) - 1}")
    amount = regs["leak_amount"]
    if amount is None:
        amount = {"none": 0, "shift": 1, "mul": 1 << (lifp.leak_frac - 1)}[lifp.leak]
    limit = {"none": 1, "shift": 1 << lifp.shift_bits, "mul": 1 << lifp.leak_frac}[lifp.leak]
    if not 0 <= amount < limit:
        raise SnnforgeError(f"--lif leak amount {amount} is out of range 0..{limit - 1}")
    try:
        cfg.k_block(sequential)
    except ValueError as error:
        raise SnnforgeError(str(error)) from None

    from .generate import build_root
    work = build_root() / "run" / f"{design.key}-{time.monotonic_ns()}"
    work.mkdir(parents=True)
    layer_file, out_file = work / "layer.pt", work / "result.pt"
    torch.save({"spikes": xs.to(torch.uint8), "weights": ws, "threshold": regs["threshold"],
                "leak_amount": amount, "tmask": mask, "strong": strong, "sequential": sequential},
               layer_file)
    with console.status(f"{name}: Verilator build (once per configuration) and run ..."):
        result = run_bench(name, design.params, testcase="run_layer",
                           # No random idle/back-pressure on the host port: a run, not a test.
                           options={"layer_file": str(layer_file), "out_file": str(out_file),
                                    "idle": 0.0, "stall": 0.0})
    if not result.ok:
        raise SystemExit(f"snnforge run failed:\n{result.summary()}")
    out = torch.load(out_file, weights_only=True)
    counters = out["counters"]
    np.savez(outfile, spikes=out["spikes"].numpy(), membrane=out["membrane"].numpy(),
             **{f"counter_{k}": np.int64(v) for k, v in counters.items()})
    cycles = counters["cycles"]
    utilization = counters["matches"] / (cfg.pes * cycles) if cycles else 0.0
    rate = out["sim_cycles"] / out["wall_seconds"] if out["wall_seconds"] else 0.0
    save_result("run", design, {"shape": list(xs.shape) + [ws.shape[1]], "counters": counters,
                                "utilization": utilization, "sim_cycles": out["sim_cycles"],
                                "wall_seconds": out["wall_seconds"], "runs": len(out["runs"]),
                                "strong": strong, "sequential": sequential})
    T, M, K = xs.shape
    console.print(f"layer T={T} M={M} K={K} N={ws.shape[1]} ({len(out['runs'])} runs) -> {outfile}")
    console.print(f"  compute cycles {cycles:,}, matches {counters['matches']:,}, PE utilization "
                  f"{utilization:.1%} of {cfg.pes} PEs")
    console.print(f"  simulated {out['sim_cycles']:,} cycles (loading included) in "
                  f"{out['wall_seconds']:.1f} s = {rate:,.0f} cycles/s")
    return out
