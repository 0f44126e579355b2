#!/usr/bin/env python3
"""On-chip memories of a generated design: every memory array of its Verilog (depth x width),
the total bits, and the FPGA block RAM they would need -- for configurations too large for
synthesis (a paper-scale preset).

    .venv/bin/python bench/memory_inventory.py ttsnn -p preset=paper-s1

Writes ``build/bench/memory-<design key>.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import re
import sys

from snnforge.generate import build_root, generate
from snnforge.params import parse_assignments

#: ECP5-85k: 208 DP16KD blocks of 18 kbit.
ECP5_85K_BRAM_BITS = 208 * 18 * 1024
DECL = re.compile(r"^\s*reg \[(\d+):0\] (\S+) \[(\d+):0\];", re.M)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("name")
    ap.add_argument("-p", "--param", dest="params", action="append", default=[])
    args = ap.parse_args(argv)
    design = generate(args.name, parse_assignments(args.params))
    rows = sorted(({"memory": name, "depth": int(depth) + 1, "width": int(msb) + 1,
                    "bits": (int(depth) + 1) * (int(msb) + 1)}
                   for msb, name, depth in DECL.findall(design.verilog)),
                  key=lambda r: -r["bits"])
    total = sum(r["bits"] for r in rows)
    outdir = build_root() / "bench"
    outdir.mkdir(parents=True, exist_ok=True)
    command = "python bench/memory_inventory.py " + " ".join(
        argv if argv is not None else sys.argv[1:])
    md = [f"Measured with `{command}`: {design.key}, {len(rows)} memories, {total:,} bits "
          f"({total / ECP5_85K_BRAM_BITS:.1f}x the block RAM of an ECP5-85k).", "",
          "| memory | depth | width | bits |", "|---|---|---|---|"]
    md += [f"| {r['memory']} | {r['depth']:,} | {r['width']} | {r['bits']:,} |" for r in rows]
    stem = f"memory-{design.key}"
    (outdir / f"{stem}.md").write_text("\n".join(md) + "\n")
    (outdir / f"{stem}.json").write_text(json.dumps(
        {"command": command, "design": design.key, "params": design.params, "total_bits": total,
         "ecp5_85k_bram_bits": ECP5_85K_BRAM_BITS, "memories": rows}, indent=2) + "\n")
    print("\n".join(md[:1] + md[2:12]))


if __name__ == "__main__":
    main()
