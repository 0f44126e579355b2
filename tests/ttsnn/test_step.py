"""One TT step (G1 -> G2/G3 as the path says -> G4) in Amaranth's simulator against the currents
``y[t]`` of ``golden.ttsnn.fixed_forward``, every pipeline (STT, PTT, HTT with its late steps
bypassing G2 and G3), under idle/back-pressure patterns; and its oracles on the hardware. The
dense 3x3 path (the baseline) against ``fixed_dense_forward``."""

import random

import pytest
import torch

from snnforge.golden.common.lif import signed_range
from snnforge.golden.ttsnn.fixed import TTFixedParams, fixed_dense_forward, fixed_forward
from snnforge.golden.ttsnn.model import is_late
from snnforge.golden.ttsnn.tt import TTCores, composed_kernel
from snnforge.hw.ttsnn.step import CORES, DENSE, Path, TTStep
from snnforge.sim.amaranth_sim import simulate_streams
from snnforge.sim.cocotb_streams import Scoreboard
from snnforge.sim.payload import pack, unpack

CIN, RANK, COUT, H, W = 3, 2, 3, 3, 4


def random_cores(seed, w_width=6):
    lo, hi = signed_range(w_width)
    gen = torch.Generator().manual_seed(seed)
    draw = lambda *shape: torch.randint(lo, hi + 1, shape, generator=gen)
    return TTCores(draw(RANK, CIN), draw(RANK, RANK, 3), draw(RANK, RANK, 3), draw(COUT, RANK))


def loads_of(dut, cores):
    layout = dut.load.payload.shape()
    beats = []
    for name, engine, core in zip(CORES, (dut.g1, dut.g2, dut.g3, dut.g4),
                                  (cores.g1, cores.g2, cores.g3, cores.g4)):
        for index in torch.cartesian_prod(*[torch.arange(n) for n in core.shape]).tolist():
            index = index if isinstance(index, list) else [index]
            at = (engine.weight_index(*index) if core.dim() == 3
                  else index[0] * core.shape[1] + index[1])
            beats.append(pack(layout, {"core": CORES.index(name), "index": at,
                                       "value": int(core[tuple(index)])}))
    return beats


def path_of(p, t):
    if is_late(p.mode, t, p.htt_full):
        return Path.BYPASS
    return Path.STT if p.mode == "stt" else Path.PTT


def run_step(p, cores, spikes_t, t, *, seed, idle="random:0.3", stall="random:0.3",
             ways=(1, 1, 1, 1), lanes=(2, 1, 2, 3), pool=False):
    dut = TTStep(c_in=CIN, rank=RANK, c_out=COUT, max_width=W, max_height=H,
                 lanes=lanes, ways=ways, w_width=p.w_width, act_width=p.act_width,
                 y_width=p.y_width, pool=pool)
    layout = dut.i.payload.shape()
    beats = [pack(layout, spikes_t[:, h, w].tolist()) for h in range(H) for w in range(W)]
    out, cycles = simulate_streams(
        dut, preload={"load": loads_of(dut, cores)}, feeds={"i": beats}, drains={"o": len(beats)},
        setup={"path": path_of(p, t), "path_a3": path_of(p, t), "width": W, "height": H,
               "shift_o1": p.shift_o1, "shift_z2": p.shift_z2, "shift_z3": p.shift_z3,
               "shift_y": p.shift_y},
        seed=seed, idle=idle, stall=stall)
    return [unpack(dut.o.payload.shape(), b) for b in out["o"]], cycles


def positions(y):
    return [y[:, h, w].tolist() for h in range(H) for w in range(W)]


PARAMS = [
    TTFixedParams(T=2, mode="stt", w_width=6, act_width=12, y_width=14, shift_z2=2, shift_z3=3,
                  shift_y=4),
    TTFixedParams(T=2, mode="ptt", w_width=6, act_width=10, y_width=12, shift_o1=1, shift_z3=4,
                  shift_y=3),
    TTFixedParams(T=3, mode="htt", htt_full=1, w_width=6, act_width=16, y_width=16),
    TTFixedParams(T=1, mode="stt", w_width=6, act_width=6, y_width=6),      # saturating widths
]


@pytest.mark.parametrize("p", PARAMS, ids=lambda p: f"{p.mode}-T{p.T}-a{p.act_width}")
def test_step_matches_fixed_forward(p):
    rng = random.Random(p.T * 7 + p.act_width)
    cores = random_cores(p.act_width)
    spikes = (torch.rand(p.T, CIN, H, W, generator=torch.Generator().manual_seed(p.T)) < 0.5)
    spikes = spikes.to(torch.int64)
    spikes[0] = 1                                     # an all-ones map
    want = fixed_forward(spikes, cores, p).y
    for t in range(p.T):
        got, _ = run_step(p, cores, spikes[t], t, seed=rng.randint(0, 99))
        Scoreboard(f"{p.mode} step {t} ({path_of(p, t).name})").compare(positions(want[t]), got)


@pytest.mark.parametrize("mode", ["stt", "ptt"])
def test_step_with_ways_matches_fixed_forward(mode):
    """Engines adding several inputs a lane per cycle (G2/G3's chunks across the window's taps,
    the last one padded)."""
    p = TTFixedParams(T=1, mode=mode, w_width=6, act_width=12, y_width=14, shift_z3=2,
                      shift_y=3)
    cores = random_cores(11)
    spikes = (torch.rand(1, CIN, H, W, generator=torch.Generator().manual_seed(5)) < 0.5).long()
    got, _ = run_step(p, cores, spikes[0], 0, seed=3, ways=(2, 4, 6, 2))
    Scoreboard(f"{mode} with ways").compare(positions(fixed_forward(spikes, cores, p).y[0]), got)


def test_stt_step_is_the_composed_kernel_conv():
    """With every shift 0 and wide enough widths the STT step is exactly the 3x3 conv of the
    composed kernel (the golden oracle, on the RTL)."""
    p = TTFixedParams(T=1, mode="stt", w_width=6, act_width=24, y_width=32)
    cores = random_cores(5)
    spikes = (torch.rand(CIN, H, W, generator=torch.Generator().manual_seed(9)) < 0.6).long()
    got, _ = run_step(p, cores, spikes, 0, seed=4)
    kernel = composed_kernel(cores, "stt")
    want = torch.nn.functional.conv2d(spikes[None].double(), kernel.double(), padding=1)[0]
    Scoreboard("STT = composed 3x3 conv").compare(positions(want.round().long()), got)


def test_bypass_costs_no_g2_g3_cycles():
    """HTT's late steps skip G2 and G3: the step takes the cycles of G1 and G4 alone."""
    p = TTFixedParams(T=2, mode="htt", htt_full=1, w_width=6)
    cores = random_cores(1)
    spikes = torch.ones(CIN, H, W, dtype=torch.int64)
    _, full = run_step(p, cores, spikes, 0, seed=0, idle="none", stall="none")
    _, late = run_step(p, cores, spikes, 1, seed=0, idle="none", stall="none")
    assert late < full


@pytest.mark.parametrize("ways", [(1, 1, 1, 1), (2, 4, 5, 2)], ids=["ways1", "ways"])
def test_pooled_late_steps_match_and_are_faster(ways):
    """With ``pool`` a BYPASS step's positions alternate between G1 and G3's engine and its
    ``a3`` between G4 and G2's engine: the same currents (saturating, rounding shifts, an
    all-ones and a random map, back-pressure), in fewer cycles than without."""
    p = TTFixedParams(T=3, mode="htt", htt_full=1, w_width=6, act_width=7, y_width=9,
                      shift_o1=1, shift_y=2)
    cores = random_cores(8)
    spikes = (torch.rand(3, CIN, H, W, generator=torch.Generator().manual_seed(3)) < 0.5).long()
    spikes[1] = 1
    want = fixed_forward(spikes, cores, p).y
    for t in (1, 2):
        got, _ = run_step(p, cores, spikes[t], t, seed=t + 5, ways=ways, pool=True)
        Scoreboard(f"pooled late step {t}").compare(positions(want[t]), got)
    cycles = {pool: run_step(p, cores, spikes[1], 1, seed=0, idle="none", stall="none",
                             ways=ways, lanes=(1, 1, 1, 1), pool=pool)[1]
              for pool in (False, True)}
    assert cycles[True] < cycles[False], cycles


def test_the_comparison_can_fail():
    """Golden currents of the other pipeline are caught."""
    stt = TTFixedParams(T=1, mode="stt", w_width=6)
    cores = random_cores(2)
    spikes = torch.ones(1, CIN, H, W, dtype=torch.int64)
    got, _ = run_step(stt, cores, spikes[0], 0, seed=1)
    want = fixed_forward(spikes, cores, stt.replace(mode="ptt")).y[0]
    with pytest.raises(AssertionError, match="beats differ"):
        Scoreboard("self-test").compare(positions(want), got)


def test_step_bad_lanes():
    with pytest.raises(ValueError, match="lanes"):
        TTStep(c_in=2, rank=2, c_out=2, max_width=2, max_height=2, lanes=(1, 1))


def run_dense(p, w, spikes_t, *, seed, dense=True, ways=1, idle="random:0.3",
              stall="random:0.3"):
    """One map through the step's dense path (``dense``: a core with the dense engine)."""
    dut = TTStep(c_in=CIN, rank=RANK, c_out=COUT, max_width=W, max_height=H,
                 lanes=(2, 1, 2, 3), dense_lanes=2 if dense else 0, dense_ways=ways,
                 w_width=p.w_width,
                 act_width=p.act_width, y_width=p.y_width)
    layout = dut.load.payload.shape()
    loads = ([pack(layout, {"core": DENSE, "index": dut.dense.weight_index(o, i, kh, kw),
                            "value": int(w[o, i, kh, kw])})
              for o, i, kh, kw in torch.cartesian_prod(*[torch.arange(n) for n in w.shape])
              .tolist()] if dense else [])
    beats = [pack(dut.i.payload.shape(), spikes_t[:, h, x].tolist())
             for h in range(H) for x in range(W)]
    out, cycles = simulate_streams(
        dut, preload={"load": loads}, feeds={"i": beats}, drains={"o": len(beats)},
        setup={"path": Path.DENSE, "path_a3": Path.DENSE, "width": W, "height": H,
               "shift_y": p.shift_y},
        seed=seed, idle=idle, stall=stall)
    return [unpack(dut.o.payload.shape(), b) for b in out["o"]], cycles


@pytest.mark.parametrize("kind", ["random", "ones-max", "ones-min", "zeros"])
def test_dense_path_matches_fixed_dense_forward(kind):
    """The dense 3x3 engine (the baseline of TT's speedup): random and structured maps and
    weights, saturating currents, under idle/back-pressure."""
    p = TTFixedParams(T=1, w_width=6, y_width=9, shift_y=1)
    lo, hi = signed_range(p.w_width)
    gen = torch.Generator().manual_seed(len(kind))
    w = {"ones-max": torch.full((COUT, CIN, 3, 3), hi), "ones-min":
         torch.full((COUT, CIN, 3, 3), lo)}.get(kind, torch.randint(lo, hi + 1, (COUT, CIN, 3, 3),
                                                                     generator=gen))
    spikes = {"zeros": torch.zeros(1, CIN, H, W, dtype=torch.int64)}.get(
        kind, torch.ones(1, CIN, H, W, dtype=torch.int64) if kind.startswith("ones")
        else (torch.rand(1, CIN, H, W, generator=gen) < 0.5).long())
    want = fixed_dense_forward(spikes, w, p).y[0]
    if kind.startswith("ones"):
        assert want.abs().max() == 2 ** (p.y_width - 1) - (kind == "ones-max")   # saturated
    for ways in (1, 4):
        got, _ = run_dense(p, w, spikes[0], seed=len(kind), ways=ways)
        Scoreboard(f"dense {kind}, {ways} ways").compare(positions(want), got)


def test_dense_comparison_can_fail():
    """A golden kernel with kh and kw swapped (a tap-order bug) is caught."""
    p = TTFixedParams(T=1, w_width=6, y_width=16)
    gen = torch.Generator().manual_seed(3)
    w = torch.randint(-32, 32, (COUT, CIN, 3, 3), generator=gen)
    spikes = (torch.rand(1, CIN, H, W, generator=gen) < 0.5).long()
    got, _ = run_dense(p, w, spikes[0], seed=2)
    want = fixed_dense_forward(spikes, w.transpose(2, 3), p).y[0]
    with pytest.raises(AssertionError, match="beats differ"):
        Scoreboard("self-test").compare(positions(want), got)


def test_dense_path_without_a_dense_engine_runs_as_bypass():
    """A step built without the dense engine cannot hang on Path.DENSE: it runs G1 -> G4."""
    p = TTFixedParams(T=2, mode="htt", htt_full=1, w_width=6)
    cores = random_cores(4)
    spikes = (torch.rand(2, CIN, H, W, generator=torch.Generator().manual_seed(1)) < 0.5).long()
    dut = TTStep(c_in=CIN, rank=RANK, c_out=COUT, max_width=W, max_height=H, lanes=(2, 1, 2, 3),
                 w_width=p.w_width, act_width=p.act_width, y_width=p.y_width)
    beats = [pack(dut.i.payload.shape(), spikes[1][:, h, x].tolist())
             for h in range(H) for x in range(W)]
    out, _ = simulate_streams(dut, preload={"load": loads_of(dut, cores)}, feeds={"i": beats},
                              drains={"o": len(beats)},
                              setup={"path": Path.DENSE, "path_a3": Path.DENSE, "width": W,
                                     "height": H}, seed=1)
    want = fixed_forward(spikes, cores, p).y[1]          # step 1: HTT's late step, G4 * a1
    Scoreboard("dense without engine").compare(
        positions(want), [unpack(dut.o.payload.shape(), b) for b in out["o"]])


def test_step_bad_dense_lanes():
    with pytest.raises(ValueError, match="dense_lanes"):
        TTStep(c_in=2, rank=2, c_out=2, max_width=2, max_height=2, dense_lanes=-1)
