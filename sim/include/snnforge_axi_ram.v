// An AXI4 memory for the Verilator benches of snnforge (sim/runner.py puts it behind a core's
// m_axi): INCR bursts, byte strobes, a read latency, back-pressure on every channel with the
// probability stall/256 per cycle (a 32-bit xorshift; ready may drop at any time, valid stays up
// until the transfer), up to 8 bursts queued per direction, DECERR past the end. Backdoor: a
// pulse on bd_load reads snnforge_bd_in.hex into the memory ($readmemh, '@' lines place words);
// a pulse on bd_dump writes words bd_lo..bd_hi to snnforge_bd_out.hex.
module snnforge_axi_ram #(
  parameter DATA_WIDTH = 128,
  parameter ADDR_WIDTH = 32,
  parameter SIZE_LOG2 = 24,
  parameter ID_WIDTH = 1
) (
  input clk, input rst,
  input [7:0] stall, input [7:0] latency,
  input bd_load, input bd_dump, input [31:0] bd_lo, input [31:0] bd_hi,
  input [ID_WIDTH-1:0] awid, input [ADDR_WIDTH-1:0] awaddr, input [7:0] awlen,
  input [2:0] awsize, input [1:0] awburst, input awvalid, output awready,
  input [DATA_WIDTH-1:0] wdata, input [DATA_WIDTH/8-1:0] wstrb, input wlast, input wvalid,
  output wready,
  output [ID_WIDTH-1:0] bid, output [1:0] bresp, output reg bvalid, input bready,
  input [ID_WIDTH-1:0] arid, input [ADDR_WIDTH-1:0] araddr, input [7:0] arlen,
  input [2:0] arsize, input [1:0] arburst, input arvalid, output arready,
  output [ID_WIDTH-1:0] rid, output [DATA_WIDTH-1:0] rdata, output [1:0] rresp, output rlast,
  output reg rvalid, input rready
);
  localparam BYTES = DATA_WIDTH / 8;
  localparam SHIFT = $clog2(BYTES);
  localparam WORDS = (1 << SIZE_LOG2) / BYTES;
  reg [DATA_WIDTH-1:0] mem [0:WORDS-1];

  always @(posedge clk) begin
    if (bd_load) $readmemh("snnforge_bd_in.hex", mem);
    if (bd_dump) $writememh("snnforge_bd_out.hex", mem, bd_lo, bd_hi);
  end

  reg [31:0] lfsr = 32'h1234567;
  always @(posedge clk) lfsr <= lfsr ^ (lfsr << 13) ^ (lfsr >> 17) ^ (lfsr << 5);
  wire [31:0] mix = lfsr ^ (lfsr >> 11);
  wire go_ar = mix[7:0] >= stall, go_r = mix[15:8] >= stall, go_aw = mix[23:16] >= stall;
  wire go_w = mix[31:24] >= stall, go_b = lfsr[7:0] >= stall;
  reg [31:0] now = 0;
  always @(posedge clk) now <= now + 1;

  // -- reads --------------------------------------------------------------------------------
  reg [ADDR_WIDTH-1:0] ar_addr [0:7];
  reg [7:0] ar_len [0:7];
  reg [31:0] ar_due [0:7];
  reg [2:0] ar_wp = 0, ar_rp = 0;
  reg [3:0] ar_n = 0;
  assign arready = (ar_n != 8) & go_ar;
  wire ar_take = arvalid & arready;
  reg r_busy = 0;
  reg [ADDR_WIDTH-1:0] r_addr;
  reg [7:0] r_left;
  wire r_done = rvalid & rready;
  wire r_free = ~r_busy | (r_done & (r_left == 0));      // the next burst may start
  wire r_start = r_free & (ar_n != 0) & (ar_due[ar_rp] <= now);
  wire [ADDR_WIDTH-1:0] r_word = r_addr >> SHIFT;
  wire r_out = r_addr >= (1 << SIZE_LOG2);
  assign rdata = r_out ? 0 : mem[r_word[SIZE_LOG2-SHIFT-1:0]];
  assign rresp = r_out ? 2'd3 : 2'd0;
  assign rlast = r_left == 0;
  assign rid = 0;
  always @(posedge clk) begin
    if (rst) begin
      ar_wp <= 0; ar_rp <= 0; ar_n <= 0; r_busy <= 0; rvalid <= 0;
    end else begin
      if (ar_take) begin
        ar_addr[ar_wp] <= araddr; ar_len[ar_wp] <= arlen; ar_due[ar_wp] <= now + latency;
        ar_wp <= ar_wp + 1;
      end
      ar_n <= ar_n + ar_take - r_start;
      // A beat every cycle the channel goes; a burst right after the last one.
      if (r_start) begin
        r_busy <= 1; r_addr <= ar_addr[ar_rp]; r_left <= ar_len[ar_rp]; ar_rp <= ar_rp + 1;
        rvalid <= go_r;
      end else if (r_done) begin
        r_addr <= r_addr + BYTES;
        r_left <= r_left - 1;
        if (r_left == 0) begin
          r_busy <= 0; rvalid <= 0;
        end else begin
          rvalid <= go_r;
        end
      end else if (r_busy & ~rvalid & go_r) begin
        rvalid <= 1;
      end
    end
  end

  // -- writes -------------------------------------------------------------------------------
  reg [ADDR_WIDTH-1:0] aw_addr [0:7];
  reg [2:0] aw_wp = 0, aw_rp = 0;
  reg [3:0] aw_n = 0;
  assign awready = (aw_n != 8) & go_aw;
  wire aw_take = awvalid & awready;
  reg [ADDR_WIDTH-1:0] w_addr;
  reg w_busy = 0, w_err = 0;
  wire w_start = ~w_busy & (aw_n != 0);
  assign wready = w_busy & go_w;
  wire w_take = wvalid & wready;
  wire w_out = w_addr >= (1 << SIZE_LOG2);
  wire [ADDR_WIDTH-1:0] w_word = w_addr >> SHIFT;
  reg [1:0] b_queue [0:7];
  reg [2:0] b_wp = 0, b_rp = 0;
  reg [3:0] b_n = 0;
  assign bresp = b_queue[b_rp];
  assign bid = 0;
  wire b_push = w_take & wlast;
  wire b_pop = bvalid & bready;
  integer k;
  always @(posedge clk) begin
    if (rst) begin
      aw_wp <= 0; aw_rp <= 0; aw_n <= 0; w_busy <= 0; b_wp <= 0; b_rp <= 0; b_n <= 0;
      bvalid <= 0;
    end else begin
      if (aw_take) begin
        aw_addr[aw_wp] <= awaddr; aw_wp <= aw_wp + 1;
      end
      aw_n <= aw_n + aw_take - w_start;
      if (w_start) begin
        w_busy <= 1; w_addr <= aw_addr[aw_rp]; aw_rp <= aw_rp + 1; w_err <= 0;
      end
      if (w_take) begin
        if (!w_out)
          for (k = 0; k < BYTES; k = k + 1)
            if (wstrb[k]) mem[w_word[SIZE_LOG2-SHIFT-1:0]][8*k +: 8] <= wdata[8*k +: 8];
        w_addr <= w_addr + BYTES;
        if (wlast) w_busy <= 0;
        if (b_push) begin
          b_queue[b_wp] <= (w_out | w_err) ? 2'd3 : 2'd0; b_wp <= b_wp + 1;
        end else if (w_out) w_err <= 1;
      end
      b_n <= b_n + b_push - b_pop;
      if (b_pop) begin
        bvalid <= 0; b_rp <= b_rp + 1;
      end else if (~bvalid & (b_n != 0) & go_b) begin
        bvalid <= 1;
      end
    end
  end
endmodule
