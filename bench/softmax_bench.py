#!/usr/bin/env python3
"""The attention unit's integer softmax against float: the error of a probability at several
precisions and score scales.

    .venv/bin/python bench/softmax_bench.py

For each precision (``frac_bits`` F of the base-2 exponent, ``lut_bits`` P of the exp2 table,
``prob_bits`` A of a probability) and each score scale, ``golden.trex.attention.softmax_error``
draws random int8 heads (16 tokens, d = 8), runs the integer softmax (exactly what the RTL unit
computes) and float ``softmax(s * scale)``, and reports the largest and the mean absolute error
of a probability. Writes ``build/bench/softmax_bench.{json,md}``.
"""

from __future__ import annotations

import json
import math
import sys

from snnforge.generate import build_root
from snnforge.golden.trex.attention import softmax_error
from snnforge.golden.trex.params import AttentionParams

PRECISIONS = ((4, 8, 8), (2, 6, 6), (3, 8, 8), (6, 10, 10))
SCALES = {"1/(128 sqrt d)": 1 / (128 * math.sqrt(8)), "8/(128^2)": 8 / 128 ** 2,
          "1/1000": 1e-3}


def main(argv=None):
    outdir = build_root() / "bench"
    outdir.mkdir(parents=True, exist_ok=True)
    rows = []
    for F, P, A in PRECISIONS:
        p = AttentionParams(max_tokens=16, d_head=8, frac_bits=F, lut_bits=P, prob_bits=A)
        for name, scale in SCALES.items():
            err = softmax_error(p, scale, trials=100)
            rows.append({"frac_bits": F, "lut_bits": P, "prob_bits": A, "scale": name, **err})
            print(f"F={F} P={P} A={A} scale {name}: max {err['max_abs_error']:.4f}, mean "
                  f"{err['mean_abs_error']:.5f}", flush=True)
    command = "python bench/softmax_bench.py " + " ".join(argv if argv is not None else sys.argv[1:])
    md = [f"Measured with `{command}`: 100 random int8 heads (16 tokens, d = 8) per row; the "
          "absolute error of a probability, integer softmax (the RTL's) against float.", "",
          "| F | P | A | score scale | max error | mean error |", "|---|---|---|---|---|---|"]
    md += [f"| {r['frac_bits']} | {r['lut_bits']} | {r['prob_bits']} | {r['scale']} | "
           f"{r['max_abs_error']:.4f} | {r['mean_abs_error']:.5f} |" for r in rows]
    (outdir / "softmax_bench.md").write_text("\n".join(md) + "\n")
    (outdir / "softmax_bench.json").write_text(json.dumps({"command": command, "rows": rows},
                                                          indent=2) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
