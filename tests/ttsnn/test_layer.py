"""The TT layer's forward pass (T maps through the step datapath, then the shared LIF with its
trace) in Amaranth's simulator against ``golden.ttsnn.fixed_forward``: every neuron's spike word,
final membrane and per-step membranes, every pipeline, two layers back to back; HTT's late maps
overlapping the last full map's drain."""

import pytest
import torch

from snnforge.golden.common.lif import lif_integer, signed_range
from snnforge.golden.ttsnn.fixed import TTFixedParams, fixed_forward
from snnforge.golden.ttsnn.tt import TTCores
from snnforge.hw.ttsnn.layer import MODES_RTL, TTLayer
from snnforge.sim.amaranth_sim import simulate_streams
from snnforge.sim.cocotb_streams import Scoreboard
from snnforge.sim.payload import pack, unpack

CIN, RANK, COUT, H, W = 3, 2, 2, 3, 4


def random_cores(seed, w_width):
    lo, hi = signed_range(w_width)
    gen = torch.Generator().manual_seed(seed)
    draw = lambda *shape: torch.randint(lo, hi + 1, shape, generator=gen)
    return TTCores(draw(RANK, CIN), draw(RANK, RANK, 3), draw(RANK, RANK, 3), draw(COUT, RANK))


def loads_of(dut, cores):
    step, layout = dut.step, dut.load.payload.shape()
    beats = []
    for k, (engine, core) in enumerate(zip((step.g1, step.g2, step.g3, step.g4),
                                           (cores.g1, cores.g2, cores.g3, cores.g4))):
        for index in torch.cartesian_prod(*[torch.arange(n) for n in core.shape]).tolist():
            at = (engine.weight_index(*index) if core.dim() == 3
                  else index[0] * core.shape[1] + index[1])
            beats.append(pack(layout, {"core": k, "index": at, "value": int(core[tuple(index)])}))
    return beats


def expected(p, cores, spikes):
    """Neuron beats in the layer's order (position, then channel)."""
    fwd = fixed_forward(spikes, cores, p)
    flat = fwd.y.permute(1, 2, 3, 0).reshape(-1, p.T)            # neuron (o, h, w)
    s, V, _, trace = lif_integer(flat, p.lif, trace=True)
    assert torch.equal(trace.reshape(COUT, H, W, p.T).permute(3, 0, 1, 2), fwd.membrane)
    words = (s.to(torch.int64) << torch.arange(p.T)).sum(1)
    beats = []
    for h in range(H):
        for w in range(W):
            for o in range(COUT):
                n = (o * H + h) * W + w
                beats.append({"spikes": int(words[n]), "membrane": int(V[n]),
                              "trace": trace[n].tolist(), "current": flat[n].tolist()})
    return beats


def run_layers(p, cores, samples, *, seed, idle="random:0.3", stall="random:0.3",
               cycles=False, lanes=(2, 2, 1, 1), ways=(1, 1, 1, 1), pool=False):
    dut = TTLayer(c_in=CIN, rank=RANK, c_out=COUT, T=p.T, max_width=W, max_height=H,
                  lanes=lanes, ways=ways, w_width=p.w_width, act_width=p.act_width,
                  y_width=p.y_width, mem_width=p.mem_width, pool=pool)
    layout = dut.i.payload.shape()
    beats = [pack(layout, x[t, :, h, w].tolist()) for x in samples for t in range(p.T)
             for h in range(H) for w in range(W)]
    out, n = simulate_streams(
        dut, preload={"load": loads_of(dut, cores)}, feeds={"i": beats},
        drains={"o": len(samples) * COUT * H * W},
        setup={"mode": MODES_RTL[p.mode], "htt_full": p.htt_full, "width": W, "height": H,
               "threshold": p.theta + 1, "leak_amount": p.beta,
               **{f"shift_{n}": getattr(p, f"shift_{n}") for n in ("o1", "z2", "z3", "y")}},
        seed=seed, idle=idle, stall=stall)
    got = [unpack(dut.o.payload.shape(), b) for b in out["o"]]
    return (got, n) if cycles else got


PARAMS = [
    TTFixedParams(T=3, mode="stt", w_width=5, act_width=12, y_width=12, mem_width=12,
                  shift_z2=1, shift_z3=2, shift_y=3, theta=40, beta=64),
    TTFixedParams(T=2, mode="ptt", w_width=5, act_width=12, y_width=10, mem_width=10,
                  shift_z3=2, shift_y=2, theta=20, beta=200),
    TTFixedParams(T=4, mode="htt", htt_full=2, w_width=5, act_width=14, y_width=12,
                  mem_width=12, shift_y=4, theta=30, beta=64),
    TTFixedParams(T=3, mode="htt", htt_full=1, w_width=5, act_width=14, y_width=12,
                  mem_width=12, shift_z3=1, shift_y=3, theta=30, beta=200),
]


@pytest.mark.parametrize("p", PARAMS, ids=lambda p: f"{p.mode}-T{p.T}")
def test_layer_matches_fixed_forward(p):
    cores = random_cores(p.T, p.w_width)
    gen = torch.Generator().manual_seed(p.T + 10)
    samples = [(torch.rand(p.T, CIN, H, W, generator=gen) < 0.5).long(),
               torch.ones(p.T, CIN, H, W, dtype=torch.int64)]
    got = run_layers(p, cores, samples, seed=p.T)
    want = expected(p, cores, samples[0]) + expected(p, cores, samples[1])
    Scoreboard(f"TT layer {p.mode} T={p.T}").compare(want, got)


def test_htt_late_maps_overlap_the_drain():
    """At HTT's path change the first late map enters while G2 and G3 drain the last full map
    (its a1 queues on BYPASS, the full map's last a3 is still fitted as PTT's): with G1 and G4
    setting the pace, the layer takes fewer cycles than under PTT, which drains through G2 and
    G3 at the end -- and its neurons equal the golden model's."""
    p = PARAMS[-1]
    cores = random_cores(5, p.w_width)
    samples = [(torch.rand(p.T, CIN, H, W, generator=torch.Generator().manual_seed(4)) < 0.5)
               .long()]
    # G1 (6 terms a position on one lane) sets the pace; G2 and G3 (12 on 2 x 6) are fast.
    quiet = dict(idle="none", stall="none", cycles=True, lanes=(1, 2, 2, 1), ways=(1, 6, 6, 1))
    got, htt = run_layers(p, cores, samples, seed=1, **quiet)
    Scoreboard("HTT layer").compare(expected(p, cores, samples[0]), got)
    _, ptt = run_layers(p.replace(mode="ptt"), cores, samples, seed=1, **quiet)
    assert htt < ptt


@pytest.mark.parametrize("p", [p for p in PARAMS if p.mode == "htt"],
                         ids=lambda p: f"htt_full{p.htt_full}-T{p.T}")
def test_pooled_htt_is_exact_and_below_ptt(p):
    """With ``pool`` and balanced engines (G1, G2, G3 six cycles a position, G4 five), HTT's
    late maps run on G2's and G3's multipliers too: two layers back to back (the second's full
    maps after the first's late ones) equal the golden model, and HTT takes fewer cycles than
    without the pool, and than PTT on the same engines."""
    cores = random_cores(p.T + 3, p.w_width)
    gen = torch.Generator().manual_seed(p.T + 20)
    samples = [(torch.rand(p.T, CIN, H, W, generator=gen) < 0.5).long(),
               torch.ones(p.T, CIN, H, W, dtype=torch.int64)]
    balanced = dict(lanes=(1, 1, 1, 1), ways=(1, 2, 2, 1), pool=True)
    got = run_layers(p, cores, samples, seed=p.T + 1, **balanced)
    want = expected(p, cores, samples[0]) + expected(p, cores, samples[1])
    Scoreboard(f"pooled HTT layer T={p.T}").compare(want, got)
    quiet = dict(idle="none", stall="none", cycles=True, **balanced)
    _, htt = run_layers(p, cores, samples[:1], seed=1, **quiet)
    _, ptt = run_layers(p.replace(mode="ptt"), cores, samples[:1], seed=1, **quiet)
    _, alone = run_layers(p, cores, samples[:1], seed=1, **{**quiet, "pool": False})
    assert htt < alone < ptt, (htt, alone, ptt)


def test_the_comparison_can_fail():
    """Golden neurons leaking by another factor are caught."""
    p = PARAMS[0]
    cores = random_cores(1, p.w_width)
    samples = [torch.ones(p.T, CIN, H, W, dtype=torch.int64)]
    got = run_layers(p, cores, samples, seed=2, idle="none", stall="none")
    want = expected(p.replace(beta=p.beta + 64), cores, samples[0])
    with pytest.raises(AssertionError, match="beats differ"):
        Scoreboard("self-test").compare(want, got)


def test_layer_bad_T():
    with pytest.raises(ValueError, match="T must"):
        TTLayer(c_in=2, rank=2, c_out=2, T=0, max_width=2, max_height=2)
