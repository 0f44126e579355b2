#!/usr/bin/env python3
"""Write a synthetic Table II layer as the ``.npy`` files ``snnforge run loas`` reads.

    .venv/bin/python bench/make_layer.py R-L19 -o build/layers     # K=4608, N=256, M=16
    .venv/bin/snnforge run loas --spikes build/layers/R-L19.spikes.npy \\
        --weights build/layers/R-L19.weights.npy -o build/layers/R-L19.out.npz

Spikes ``[T, M, K]`` (uint8) and weights ``[K, N]`` (int8) with the paper's spike, silent-neuron
and weight sparsities (``golden.workloads.synthetic_layer``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from snnforge.golden.loas.workloads import TABLE_II, synthetic_layer


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("layer", choices=list(TABLE_II))
    ap.add_argument("-T", type=int, default=4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--shape", default=None, metavar="MxKxN", help="override the layer shape")
    ap.add_argument("-o", "--out", default="build/layers", help="output directory")
    args = ap.parse_args(argv)
    shape = tuple(int(v) for v in args.shape.split("x")) if args.shape else None
    x, w = synthetic_layer(args.layer, T=args.T, seed=args.seed, shape=shape)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    np.save(out / f"{args.layer}.spikes.npy", x.numpy().astype(np.uint8))
    np.save(out / f"{args.layer}.weights.npy", w.numpy().astype(np.int8))
    T, M, K = x.shape
    print(f"{args.layer}: T={T} M={M} K={K} N={w.shape[1]} -> {out}/{args.layer}.{{spikes,weights}}.npy")


if __name__ == "__main__":
    main()
