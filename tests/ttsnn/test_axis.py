"""G2's 3x1 and G3's 1x3 convolutions (line-buffer window + engine) in Amaranth's simulator
against the golden ``kh_conv`` / ``kw_conv`` and ``fit``: maps of every shape class (one
position, one row, one column, general), several maps back to back, extreme and random values,
crossed idle/back-pressure patterns."""

import random

import pytest
import torch

from snnforge.golden.common.lif import signed_range
from snnforge.golden.ttsnn.fixed import fit
from snnforge.golden.ttsnn.model import kh_conv, kw_conv
from snnforge.hw.ttsnn.window import AxisConv, AxisWindow
from snnforge.sim.amaranth_sim import simulate_streams
from snnforge.sim.cocotb_streams import Scoreboard
from snnforge.sim.payload import pack, unpack

SHAPES = [(1, 1), (1, 5), (4, 1), (3, 4)]       # (height, width) of the maps, max 4 x 5


def golden(axis, maps, g, shift, out_width, fitted=True):
    conv = kh_conv if axis == "h" else kw_conv
    beats = []
    for a in maps:                                   # a: [c_in, H, W]
        sums = conv(a, g)
        out = fit(sums, shift, out_width) if fitted else sums
        beats += [out[:, h, w].tolist() for h in range(a.shape[1]) for w in range(a.shape[2])]
    return beats


def run(dut, maps, g, shift, *, size, seed, idle, stall):
    loads = [pack(dut.load.payload.shape(), {"index": dut.weight_index(o, i, k),
                                             "value": int(g[o, i, k])})
             for o in range(dut.c_out) for i in range(dut.c_in) for k in range(3)]
    random.Random(seed).shuffle(loads)
    layout = dut.i.payload.shape()
    beats = [pack(layout, a[:, h, w].tolist()) for a in maps
             for h in range(a.shape[1]) for w in range(a.shape[2])]
    out, _ = simulate_streams(dut, preload={"load": loads}, feeds={"i": beats},
                              drains={"o": len(beats)},
                              setup={"shift": shift, "height": size[0], "width": size[1]},
                              seed=seed, idle=idle, stall=stall)
    return [unpack(dut.o.payload.shape(), beat) for beat in out["o"]]


@pytest.mark.parametrize("axis", ["h", "w"])
@pytest.mark.parametrize("size", SHAPES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_axis_conv_matches_golden(axis, size):
    c_in, c_out, w_width, in_width, out_width = 3, 4, 6, 8, 10
    rng = random.Random(hash((axis, size)) % 1000)
    lo, hi = signed_range(in_width)
    wlo, whi = signed_range(w_width)
    H, W = size
    maps = [torch.full((c_in, H, W), hi), torch.full((c_in, H, W), lo),
            torch.randint(lo, hi + 1, (c_in, H, W), generator=torch.Generator().manual_seed(H * W))]
    for k, (g, shift) in enumerate([(torch.full((c_out, c_in, 3), whi), 0),
                                    (torch.randint(wlo, whi + 1, (c_out, c_in, 3)), 3),
                                    (torch.full((c_out, c_in, 3), wlo), 1)]):
        idle, stall = [("none", "none"), ("random:0.4", "random:0.5"),
                       ("periodic:110", "burst:4:0.3")][k]
        dut = AxisConv(c_in=c_in, c_out=c_out, lanes=2, axis=axis, max_width=5, max_height=4,
                       w_width=w_width, in_width=in_width, out_width=out_width)
        got = run(dut, maps, g, shift, size=size, seed=rng.randint(0, 99), idle=idle,
                  stall=stall)
        Scoreboard(f"{axis} {H}x{W} weights {k} ({idle}/{stall})").compare(
            golden(axis, maps, g, shift, out_width), got)


def test_axis_conv_exact_sums():
    """``fit=False``: the exact sums (PTT adds G2's and G3's before fitting)."""
    g = torch.tensor([[[127, -128, 5], [1, 2, 3]], [[-7, 0, 9], [100, -100, 50]]])
    maps = [torch.tensor([[[32767, -32768, 5], [0, 1, -1]], [[-32768, 32767, 7], [3, 2, 1]]])]
    dut = AxisConv(c_in=2, c_out=2, lanes=1, axis="h", max_width=3, max_height=2, fit=False)
    got = run(dut, maps, g, 0, size=(2, 3), seed=3, idle="random:0.3", stall="random:0.3")
    Scoreboard("exact sums").compare(golden("h", maps, g, 0, 16, fitted=False), got)


def test_the_comparison_can_fail():
    """The golden taps of the other axis are caught, with the beat and the field."""
    g = torch.arange(2 * 2 * 3).reshape(2, 2, 3) - 6
    maps = [torch.arange(2 * 3 * 3).reshape(2, 3, 3) - 9]
    dut = AxisConv(c_in=2, c_out=2, lanes=2, axis="w", max_width=3, max_height=3)
    got = run(dut, maps, g, 0, size=(3, 3), seed=1, idle="none", stall="none")
    with pytest.raises(AssertionError, match=r"beats differ; first at beat \d+:\n  \[\d\]"):
        Scoreboard("self-test").compare(golden("h", maps, g, 0, 16), got)


@pytest.mark.parametrize("kwargs, name", [
    ({"axis": "x"}, "axis"), ({"max_width": 0}, "max_width"), ({"c_in": True}, "c_in")])
def test_window_bad_parameters(kwargs, name):
    with pytest.raises(ValueError, match=name):
        AxisWindow(**{"c_in": 2, "shape": 8, "axis": "h", "max_width": 4, "max_height": 4,
                      **kwargs})
