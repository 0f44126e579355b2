"""The digits network trained with the fixed-point TT layer, by the golden model and (--on-rtl)
by the generated RTL under Verilator; the two trainings' weights compared bit for bit, test
accuracies beside float training.

``snnforge train ttsnn`` runs :func:`run_training`; the RTL side is the cocotb run of
:mod:`.train`. Per step the RTL runs two layer jobs (forward; forward + backward + SGD on chip).
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import numpy as np
import torch
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from ...generate import build_root, generate
from ...golden.ttsnn.digits import train_digits
from ...golden.ttsnn.train import TTTrainParams, evaluate_fixed, train_golden
from ...results import save_result
from ..runner import run_bench

__all__ = ["TRAIN_PARAMS", "core_params", "compare_weights", "run_training"]

TRAIN_PARAMS = TTTrainParams


def core_params(p: TTTrainParams) -> dict:
    """The TT-SNN core the network's TT layer runs on (8x8 digit maps)."""
    lanes = min(2, p.rank)
    return {"c_in": p.channels, "c_out": p.channels, "rank": p.rank, "T": p.T,
            "max_width": 8, "max_height": 8, "lanes_g1": lanes, "lanes_g2": lanes,
            "lanes_g3": lanes, "lanes_g4": min(2, p.channels)}


def compare_weights(golden: dict, rtl: dict) -> list[str]:
    """Every trained tensor that differs, with its first differing element (empty: equal bit
    for bit)."""
    problems = []
    for name, want in golden.items():
        got = torch.as_tensor(rtl[name])
        if got.shape != want.shape or got.dtype != want.dtype:
            problems.append(f"{name}: {got.dtype}{list(got.shape)} from the RTL, "
                            f"{want.dtype}{list(want.shape)} from the golden training")
        elif not torch.equal(got, want):
            where = tuple(int(i) for i in (got != want).nonzero()[0])
            problems.append(f"{name}{list(where)}: RTL {got[where].item()!r}, golden "
                            f"{want[where].item()!r} ({int((got != want).sum())} differ)")
    return problems


def _progress(console, label):
    return Progress(TextColumn(label), BarColumn(), MofNCompleteColumn(),
                    TextColumn("{task.fields[loss]}"), TimeElapsedColumn(), console=console,
                    transient=True)


def _train_rtl(console, p: TTTrainParams, design, work: Path):
    """The training on the RTL (a cocotb run in a thread), its progress read from the run's
    progress file."""
    progress_file, result_file = work / "progress.txt", work / "trained.npz"
    progress_file.touch()
    outcome = {}
    thread = threading.Thread(target=lambda: outcome.update(bench=run_bench(
        "ttsnn", design=design, bench="snnforge.sim.ttsnn.train", testcase="train_on_rtl",
        options={"train": p.values(), "result_file": str(result_file),
                 "progress_file": str(progress_file)})))
    with _progress(console, "training on the RTL") as bar:
        task = bar.add_task("rtl", total=p.steps, loss="(Verilator build)")
        thread.start()
        while thread.is_alive():
            thread.join(0.5)
            lines = progress_file.read_text().split()
            if len(lines) >= 2:
                bar.update(task, completed=int(lines[-2]), loss=f"loss {float(lines[-1]):.3f}")
    bench = outcome["bench"]
    if not bench.ok:
        raise SystemExit(f"snnforge train: the RTL run failed:\n{bench.summary()}")
    with np.load(result_file) as data:
        files = dict(data)
    counters = {k[len("counter_"):]: int(v) for k, v in files.items() if k.startswith("counter_")}
    return files, counters, bench


def run_training(console, p: TTTrainParams, *, on_rtl: bool = False, float_epochs: int = 30,
                 outfile=None) -> dict:
    """Golden fixed-point training of ``p``; with ``on_rtl`` the same on the RTL, the weights
    compared (a difference raises ``SystemExit`` naming the first differing value); float
    training of ``float_epochs`` epochs (0: none) for comparison. Returns the summary (also
    written to ``outfile``, JSON, whole or not at all)."""
    start = time.monotonic()
    with _progress(console, "golden fixed-point training") as bar:
        task = bar.add_task("golden", total=p.steps, loss="")
        golden = train_golden(p, progress=lambda step, loss: bar.update(
            task, completed=step, loss=f"loss {loss:.3f}"))
    summary = {"params": p.values(),
               "golden": {"accuracy": evaluate_fixed(golden.net),
                          "final_loss": float(np.mean(golden.losses[-50:])),
                          "seconds": round(time.monotonic() - start, 1)}}
    console.print(f"golden fixed-point training, {p.steps} steps: test accuracy "
                  f"{summary['golden']['accuracy']:.1%}")
    design = None
    if on_rtl:
        design = generate("ttsnn", core_params(p))
        work = build_root() / "train" / f"{design.key}-{time.monotonic_ns()}"
        work.mkdir(parents=True)
        files, counters, bench = _train_rtl(console, p, design, work)
        problems = compare_weights(golden.weights(), files)
        losses_equal = np.array_equal(files["losses"], np.array(golden.losses))
        if not losses_equal:
            step = int(np.argmax(files["losses"] != np.array(golden.losses)))
            problems.append(f"loss of step {step + 1}: RTL {files['losses'][step]!r}, golden "
                            f"{golden.losses[step]!r}")
        summary["rtl"] = {"weights_equal": not problems, "losses_equal": losses_equal,
                          "accuracy": summary["golden"]["accuracy"] if not problems else None,
                          "counters": counters, "jobs": bench.stats.get("jobs"),
                          "wall_seconds": bench.stats.get("wall_seconds")}
        if problems:
            raise SystemExit("snnforge train: the RTL training differs from the golden "
                             "training:\n  " + "\n  ".join(problems))
        console.print(f"trained on the RTL, {p.steps} steps: weights equal the golden "
                      f"training's bit for bit (cores, stem, FC); test accuracy "
                      f"{summary['rtl']['accuracy']:.1%}")
        console.print(f"  RTL: {bench.stats.get('jobs')} jobs, core busy {counters['busy']:,} "
                      f"cycles, backward {counters['backward_cycles']:,}, end-to-end "
                      f"{counters['total_cycles']:,} cycles, in "
                      f"{bench.stats['wall_seconds']:.0f} s")
    if float_epochs:
        with console.status(f"float training, {float_epochs} epochs ..."):
            result = train_digits(p.mode, T=p.T, channels=p.channels, rank=p.rank,
                                  epochs=float_epochs, seed=p.seed)
        summary["float"] = {"accuracy": result.accuracy, "epochs": float_epochs}
        console.print(f"float training (Adam, batches of 64), {float_epochs} epochs: test "
                      f"accuracy {result.accuracy:.1%}")
    if design is not None:
        save_result("train", design, summary)
    if outfile is not None:
        outfile = Path(outfile)
        outfile.parent.mkdir(parents=True, exist_ok=True)
        partial = outfile.with_name(outfile.name + ".partial")
        partial.write_text(json.dumps(summary, indent=2) + "\n")
        partial.replace(outfile)
        console.print(f"  -> {outfile}")
    return summary
