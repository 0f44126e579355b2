"""Lint of every generator's Verilog, and proof that the lint can fail."""

import pytest

from snnforge.generate import generate
from snnforge.registry import generators
from snnforge.lint import WAIVERS, lint_verilog


@pytest.mark.parametrize("name", sorted(generators()))
def test_generator_verilog_is_lint_clean(name, tmp_path):
    design = generate(name, generators()[name].demo_params)
    vpath, _ = design.write(tmp_path)
    result = lint_verilog(vpath, design.top)
    assert result.ok, result.summary()
    assert set(result.waived) <= set(WAIVERS)


def test_loas_block_ram_queues_are_lint_clean(tmp_path):
    design = generate("loas", {**generators()["loas"].demo_params, "group_ram": "block",
                               "fiber_ram": "block", "word_ram": "block"})
    vpath, _ = design.write(tmp_path)
    result = lint_verilog(vpath, design.top)
    assert result.ok, result.summary()


def test_lint_reports_loop_latch_and_multiple_drivers(tmp_path):
    bad = tmp_path / "bad.v"
    bad.write_text("""
module bad(input a, input en, output y, output z, output reg q);
  wire x;
  assign x = ~(x & a);
  assign y = x;
  assign z = a;
  assign z = ~a;
  always @* if (en) q = a;
endmodule
""")
    result = lint_verilog(bad, "bad")
    assert not result.ok
    rules = {rule for rule, _ in result.issues}
    assert {"UNOPTFLAT", "MULTIDRIVEN", "LATCH"} <= rules, result.summary()
