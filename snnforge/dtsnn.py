"""The DT-SNN spiking ViT's training flow, ``snnforge train dtsnn`` (float training with dynamic
time steps, a checkpoint and its integer export), and the checkpoint and data formats that
``snnforge deploy CHECKPOINT.pt`` reads (a core's ``deploy_checkpoint`` runs it)."""

from __future__ import annotations

import dataclasses
import json

from .deploy import write_dir
from .params import SnnforgeError

__all__ = ["train", "load_checkpoint", "token_data"]


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
