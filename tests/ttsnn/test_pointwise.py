"""The 1x1-convolution engine (G1 on spikes, G4 on activations) in Amaranth's simulator against
the fixed-point golden model: structured and random positions, weights and shifts, crossed
idle/back-pressure patterns, every output beat compared."""

import random

import pytest
import torch

from snnforge.golden.common.lif import signed_range
from snnforge.golden.ttsnn.fixed import fit
from snnforge.hw.ttsnn.pointwise import AltConv, PointwiseConv
from snnforge.sim.amaranth_sim import simulate_streams
from snnforge.sim.cocotb_streams import Scoreboard
from snnforge.sim.payload import pack, unpack

#: (c_in, c_out, lanes, spike_input, w_width, in_width, out_width, ways)
CONFIGS = [
    (8, 4, 2, True, 8, 16, 16, 1),    # G1: Cin -> r (in_width unused)
    (5, 7, 3, True, 4, 16, 6, 1),     # lanes not dividing c_out, narrow output (saturates)
    (4, 6, 6, False, 8, 16, 16, 1),   # G4: r -> Cout, every lane at once
    (3, 5, 1, False, 6, 7, 8, 1),     # one lane, narrow everything
    (1, 3, 1, False, 6, 12, 12, 1),   # one input: each row is a group's last (G4 at r = 1)
    (1, 5, 2, True, 8, 16, 16, 1),    # ... and G1 of one input channel
    (8, 4, 2, True, 8, 16, 16, 4),    # four inputs a lane per cycle (two chunks)
    (7, 5, 2, False, 6, 10, 12, 3),   # ways not dividing c_in: the last chunk padded
    (5, 3, 3, False, 8, 16, 16, 5),   # a whole position's inputs in one row
]
PATTERNS = [("none", "none"), ("random:0.4", "random:0.4"), ("periodic:1110", "burst:3:0.2")]


def golden(g, acts, shift, out_width):
    """``fit(G @ a, shift, out_width)`` per position, with the golden model's own ``fit``."""
    return fit(torch.as_tensor(acts, dtype=torch.int64) @ g.T, shift, out_width).tolist()


def positions(rng, n, c_in, spike, in_width):
    lo, hi = (0, 1) if spike else signed_range(in_width)
    structured = [[lo] * c_in, [hi] * c_in, [0] * c_in]
    if not spike:
        structured.append([lo if k % 2 else hi for k in range(c_in)])
    return structured + [[rng.randint(lo, hi) for _ in range(c_in)] for _ in range(n)]


def weight_sets(rng, c_in, c_out, w_width):
    lo, hi = signed_range(w_width)
    yield torch.full((c_out, c_in), hi, dtype=torch.int64)
    yield torch.full((c_out, c_in), lo, dtype=torch.int64)
    yield torch.tensor([[rng.randint(lo, hi) for _ in range(c_in)] for _ in range(c_out)])


def run(dut, g, acts, shift, *, seed, idle, stall):
    load_layout = dut.load.payload.shape()
    loads = [pack(load_layout, {"index": o * dut.c_in + i, "value": int(g[o, i])})
             for o in range(dut.c_out) for i in range(dut.c_in)]
    random.Random(seed).shuffle(loads)
    in_layout, out_layout = dut.i.payload.shape(), dut.o.payload.shape()
    out, cycles = simulate_streams(
        dut, preload={"load": loads}, feeds={"i": [pack(in_layout, a) for a in acts]},
        drains={"o": len(acts)}, setup={"shift": shift}, seed=seed, idle=idle, stall=stall)
    return [unpack(out_layout, beat) for beat in out["o"]], cycles


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: "x".join(map(str, c)))
def test_pointwise_matches_golden(config):
    c_in, c_out, lanes, spike, w_width, in_width, out_width, ways = config
    rng = random.Random(c_in * 31 + c_out)
    for k, g in enumerate(weight_sets(rng, c_in, c_out, w_width)):
        for shift in (0, 1, 3, 31):
            idle, stall = PATTERNS[(k + shift) % len(PATTERNS)]
            acts = positions(rng, 12, c_in, spike, in_width)
            dut = PointwiseConv(c_in=c_in, c_out=c_out, lanes=lanes, ways=ways, w_width=w_width,
                                spike_input=spike, in_width=in_width, out_width=out_width)
            got, _ = run(dut, g, acts, shift, seed=k + shift, idle=idle, stall=stall)
            Scoreboard(f"{config} weights {k} shift {shift} ({idle}/{stall})").compare(
                golden(g, acts, shift, out_width), got, context=lambda i: f"position {acts[i]}")


def test_the_comparison_can_fail():
    """A golden model off by one shift step is caught, with the beat and the field."""
    dut = PointwiseConv(c_in=4, c_out=3, lanes=2, spike_input=False, in_width=8)
    g = torch.tensor([[3, -2, 1, 7], [0, 5, -8, 2], [-1, -1, 4, 6]])
    acts = [[100, -50, 25, 3], [1, 2, 3, 4]]
    got, _ = run(dut, g, acts, 1, seed=1, idle="none", stall="none")
    with pytest.raises(AssertionError, match=r"beats differ; first at beat 0:\n  \[0\]"):
        Scoreboard("self-test").compare(golden(g, acts, 2, 16), got)


#: (main c_in, c_out, fit; alt c_in, c_out, spike_input, out_width; lanes, ways)
ALT_CONFIGS = [
    (6, 2, False, 5, 2, True, 7, 1, 2),     # G3's engine doing G1's work (exact sums beside)
    (6, 3, False, 2, 5, False, 9, 2, 4),    # G2's engine doing G4's (more groups, fewer chunks)
    (3, 2, True, 9, 1, True, 6, 1, 1),      # alt with more chunks than the engine's
]


@pytest.mark.parametrize("config", ALT_CONFIGS, ids=lambda c: "x".join(map(str, c)))
def test_pointwise_alt_positions_interleave(config):
    """An engine with a second convolution (``alt``): positions offered on ``i`` and on
    ``alt_i`` at once (``i`` first), weights loaded on both ports at once, back-pressure on
    both outputs -- every beat of each equal to its own golden convolution."""
    c_in, c_out, fitted, a_in, a_out, a_spike, a_width, lanes, ways = config
    rng = random.Random(sum(config))
    dut = PointwiseConv(c_in=c_in, c_out=c_out, lanes=lanes, ways=ways, w_width=6,
                        spike_input=False, in_width=7, out_width=10, fit=fitted,
                        alt=AltConv(c_in=a_in, c_out=a_out, spike_input=a_spike,
                                    out_width=a_width))
    lo, hi = signed_range(6)
    g = torch.tensor([[rng.randint(lo, hi) for _ in range(c_in)] for _ in range(c_out)])
    a = torch.tensor([[rng.randint(lo, hi) for _ in range(a_in)] for _ in range(a_out)])
    acts = positions(rng, 10, c_in, False, 7)
    alt_acts = positions(rng, 10, a_in, a_spike, 7)
    loads = {name: [pack(getattr(dut, name).payload.shape(),
                         {"index": o * w.shape[1] + i, "value": int(w[o, i])})
                    for o in range(w.shape[0]) for i in range(w.shape[1])]
             for name, w in (("load", g), ("alt_load", a))}
    out, _ = simulate_streams(
        dut, preload=loads,
        feeds={"i": [pack(dut.i.payload.shape(), v) for v in acts],
               "alt_i": [pack(dut.alt_i.payload.shape(), v) for v in alt_acts]},
        drains={"o": len(acts), "alt_o": len(alt_acts)}, setup={"shift": 2, "alt_shift": 1},
        seed=len(acts), idle="random:0.3", stall="random:0.4")
    want = (golden(g, acts, 2, 10) if fitted
            else (torch.as_tensor(acts) @ g.T).tolist())
    Scoreboard(f"{config} engine").compare(
        want, [unpack(dut.o.payload.shape(), b) for b in out["o"]])
    Scoreboard(f"{config} alt").compare(
        golden(a, alt_acts, 1, a_width),
        [unpack(dut.alt_o.payload.shape(), b) for b in out["alt_o"]])
    assert dut.alt_cycles_per_position == -(-a_out // lanes) * -(-a_in // ways) + max(
        0, 3 - -(-a_in // ways))


@pytest.mark.parametrize("c_in, ways, rows", [(6, 1, 2 * 6), (2, 1, 2 * 2 + 1), (1, 1, 2 + 2),
                                              (12, 2, 2 * 6), (12, 4, 2 * 3), (12, 6, 2 * 2 + 1)])
def test_pointwise_throughput(c_in, ways, rows):
    """Back to back, a position per MAC row count (the next taken with the last row); with
    fewer than 3 chunks the next position's first group waits for the previous fit."""
    dut = PointwiseConv(c_in=c_in, c_out=8, lanes=4, ways=ways, spike_input=True)
    n = 10
    _, cycles = run(dut, torch.ones(8, c_in, dtype=torch.int64), [[1] * c_in] * n, 0, seed=0,
                    idle="none", stall="none")
    assert dut.cycles_per_position == rows
    # After the weights (one beat per cycle), one position per cycles_per_position.
    assert n * rows <= cycles - 8 * c_in <= n * rows + 6


@pytest.mark.parametrize("kwargs, name", [
    ({"c_in": 0}, "c_in"), ({"c_out": 2.5}, "c_out"), ({"lanes": 5}, "lanes"),
    ({"w_width": 1}, "w_width"), ({"spike_input": 1}, "spike_input"),
    ({"out_width": True}, "out_width"), ({"ways": 0}, "ways"), ({"ways": 5}, "ways"),
    ({"alt": (2, 2, True, 8)}, "alt must be an AltConv"),
    ({"alt": AltConv(2, 2, True, 8)}, "multi-bit"),
    ({"alt": AltConv(0, 2, False, 8), "spike_input": False}, "alt.c_in"),
    ({"alt": AltConv(2, 2, False, 1), "spike_input": False}, "alt.out_width")])
def test_pointwise_bad_parameters(kwargs, name):
    with pytest.raises(ValueError, match=name):
        PointwiseConv(**{"c_in": 4, "c_out": 4, "lanes": 2, **kwargs})
