"""The DT-SNN spiking ViT's flows: ``snnforge train dtsnn`` (float training with dynamic time
steps, a checkpoint and its integer export) and its deployment on the LoAS RTL (``snnforge deploy
CHECKPOINT.pt``: the float model, the integer reference, LoAS's golden model and the RTL; with
``--compare-unmasked`` the same network with every step open, side by side)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np

from .deploy import first_difference, load_data, run_on_rtl, write_dir
from .generate import generate
from .params import SnnforgeError
from .registry import get_generator

__all__ = ["train", "deploy", "load_checkpoint", "token_data"]


def token_data(T: int, split: str = "test", seed: int = 0):
    """``(tokens [N, T, 16, 20] uint8, labels [N])`` of the digits split: ``--data``/``--labels``
    of a DT-SNN deployment."""
    from .golden.common.digits import load_digits_split
    from .golden.dtsnn.model import tokens
    x_train, y_train, x_test, y_test = load_digits_split(seed)
    images, labels = (x_train, y_train) if split == "train" else (x_test, y_test)
    return tokens(images, T).permute(1, 0, 2, 3).contiguous().numpy(), labels.numpy()


def train(console, *, outdir, epochs: int = 30, lam: float = 2e-4, fixed_t: int | None = None,
          sparsity: float = 0.5, seed: int = 0, **shape) -> dict:
    """Train the ViT (``shape``: ``golden.dtsnn.model.ViTShape`` fields) with rich progress;
    writes ``dtsnn.pt`` (checkpoint), ``dtsnn_int.npz`` (its integer export) and
    ``report.json`` to ``outdir``. Returns the report."""
    import torch
    from rich.progress import Progress
    from .golden.dtsnn.integer import export
    from .golden.dtsnn.model import GATED_LAYERS, ViTShape, train_dtsnn
    try:
        vit = ViTShape(**shape)
    except ValueError as error:
        raise SnnforgeError(f"snnforge train dtsnn: {error}") from None
    for name, value, ok in (("epochs", epochs, 1 <= epochs <= 1000),
                            ("lam", lam, 0 <= lam < 1), ("sparsity", sparsity, 0 <= sparsity < 1),
                            ("fixed_t", fixed_t, fixed_t is None or 1 <= fixed_t <= vit.tmax)):
        if not ok:
            raise SnnforgeError(f"snnforge train dtsnn: {name}={value} is out of range")
    with Progress(console=console, transient=True) as bar:
        task = bar.add_task("training the DT-SNN ViT", total=epochs)
        model, report = train_dtsnn(vit, epochs=epochs, lam=lam, fixed_t=fixed_t,
                                    sparsity=sparsity, seed=seed,
                                    progress=lambda epoch, loss: bar.update(
                                        task, advance=1, description=f"epoch {epoch + 1}: "
                                                                     f"loss {loss:.3f}"))
    net = export(model)
    report = {**report, "shape": dataclasses.asdict(vit), "epochs": epochs,
              "int8_sparsity": net.sparsity(),
              "layer_masks": dict(zip(GATED_LAYERS(vit), report["masks"]))}
    checkpoint = {"shape": dataclasses.asdict(vit), "state": model.state_dict(),
                  "frozen": model.frozen, "report": report}
    write_dir(outdir, {"dtsnn.pt": lambda path: torch.save(checkpoint, path),
                       "dtsnn_int.npz": net.save,
                       "report.json": lambda path: path.write_text(json.dumps(report, indent=2)
                                                                   + "\n")})
    console.print(f"test accuracy {100 * report['test_accuracy']:.1f} % (float), average time "
                  f"steps {report['t_eff']:.2f} of {vit.tmax}, int8 weight sparsity "
                  f"{net.sparsity():.1%} -> {outdir}")
    return report


def load_checkpoint(path):
    """The float model of a ``dtsnn.pt``; raises SnnforgeError if it is not one."""
    import torch
    from .golden.dtsnn.model import SpikingViT, ViTShape
    try:
        data = torch.load(path, weights_only=True)
        model = SpikingViT(ViTShape(**data["shape"]))
        model.load_state_dict(data["state"])
    except Exception as error:      # torch and the dataclass raise many types on a bad file
        raise SnnforgeError(f"{path}: not a DT-SNN checkpoint of `snnforge train dtsnn` "
                            f"({type(error).__name__}: {error})") from None
    model.frozen = data.get("frozen")
    return model.eval()


def deploy(console, checkpoint, *, data, labels=None, outdir, overrides: dict | None = None,
           compare_unmasked: bool = False) -> dict:
    """Deploy a DT-SNN checkpoint on the LoAS RTL; returns the report (also in ``outdir``)."""
    import asyncio
    import torch
    from .golden.dtsnn.integer import export, int_forward, reference_linear, reference_matmul
    from .golden.loas.energy import energy as loas_energy
    from .hw.loas.deploy import golden_segment, predictions
    from .hw.loas.dtsnn import HOST_PATH, loas_ops
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
    from .golden.dtsnn.model import GATED_LAYERS
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
        "report.json": lambda path: path.write_text(json.dumps(report, indent=2) + "\n")})
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
