"""Lint of generated Verilog: Verilator ``--lint-only -Wall``.

One waiver list, each entry with its reason. Everything else -Wall reports is an error; in
particular inferred latches (LATCH), multiple drivers (MULTIDRIVEN) and combinational loops
(UNOPTFLAT) are never waived.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass, field

from .tools import verilator_env

__all__ = ["WAIVERS", "LintResult", "lint_verilog"]

#: What Amaranth's Verilog output always carries, and why it is harmless.
WAIVERS = {
    "WIDTHEXPAND": "Amaranth extends operands implicitly (Python integer semantics); the "
                   "extension is intended and sign-correct",
    "WIDTHTRUNC": "assignments to narrower signals truncate by Amaranth's defined semantics",
    "PROCASSINIT": "Amaranth gives every register its reset value as a Verilog initial value",
    "UNUSEDSIGNAL": "Amaranth keeps named alias wires of flattened hierarchy and struct fields "
                    "(e.g. `i__payload.current`) for debugging; they drive nothing",
    "CASEINCOMPLETE": "Amaranth emits case statements after a default assignment, so cases "
                      "without a branch keep the default",
    "DECLFILENAME": "all submodules of a design are written into one file named after the top",
}

_WARNING = re.compile(r"^%(Warning|Error)(?:-([A-Z0-9_]+))?: (.*)$")


@dataclass
class LintResult:
    top: str
    issues: list = field(default_factory=list)      # (rule, message) not waived
    waived: dict = field(default_factory=dict)      # rule -> count

    @property
    def ok(self) -> bool:
        return not self.issues

    def summary(self) -> str:
        waived = ", ".join(f"{rule} x{n}" for rule, n in sorted(self.waived.items())) or "none"
        if self.ok:
            return f"{self.top}: lint clean (waived: {waived})"
        lines = [f"{self.top}: {len(self.issues)} lint issue(s) (waived: {waived})"]
        lines += [f"  {rule}: {message}" for rule, message in self.issues]
        return "\n".join(lines)


def lint_verilog(verilog_path, top: str) -> LintResult:
    verilator_env()
    result = LintResult(top)
    proc = subprocess.run(["verilator", "--lint-only", "-Wall", "--top-module", top, str(verilog_path)],
                          capture_output=True, text=True)
    for line in proc.stderr.splitlines():
        match = _WARNING.match(line)
        if not match:
            continue
        kind, rule, message = match.groups()
        if kind == "Warning" and rule in WAIVERS:
            result.waived[rule] = result.waived.get(rule, 0) + 1
        elif not message.startswith("Exiting due to"):
            result.issues.append((rule or kind, message))
    if proc.returncode != 0 and not result.issues and not result.waived:
        result.issues.append(("verilator", proc.stderr.strip()[-500:]))
    return result

