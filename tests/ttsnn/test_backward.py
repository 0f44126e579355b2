"""The backward pass in RTL (``TTBackward``) against ``golden.ttsnn.fixed_backward``: every
step's input gradients and the four core gradients, bit for bit, every pipeline, odd maps and
ranks, saturation, and the cycle/MAC counters from the pass structure; the dense baseline's
backward (``fixed_dense_backward``) on a unit built ``dense``."""

import pytest
import torch
from amaranth.sim import Simulator

from snnforge.golden.ttsnn.fixed import (TTFixedParams, fixed_backward, fixed_dense_backward,
                                         fixed_dense_forward, fixed_forward, sgd_step,
                                         sgd_update)
from snnforge.golden.ttsnn.tt import TTCores
from snnforge.hw.ttsnn.backward import INPUTS, RESULTS, TTBackward
from snnforge.hw.ttsnn.layer import MODES_RTL


def case(seed, *, T=3, c_in=3, rank=2, c_out=3, H=3, W=4, wmax=32, density=0.5, gmax=200,
         **fixed):
    g = torch.Generator().manual_seed(seed)
    draw = lambda *s: torch.randint(-wmax, wmax, s, generator=g)
    cores = TTCores(draw(rank, c_in), draw(rank, rank, 3), draw(rank, rank, 3), draw(c_out, rank))
    spikes = (torch.rand(T, c_in, H, W, generator=g) < density).long()
    # Shifts that keep the membranes near theta: the surrogate window is open for some neurons
    # and closed for others, and some neurons spike (their reset cuts the carried gradient).
    p = TTFixedParams(T=T, **{"theta": 4, "surrogate": 100, "shift_z2": 3, "shift_z3": 4,
                              "shift_y": 5, "shift_b4": 3, "shift_b3": 4, "shift_b2": 4,
                              "shift_b1": 3, **fixed})
    fwd = fixed_forward(spikes, cores, p)
    gs = torch.randint(-gmax, gmax + 1, (T, c_out, H, W), generator=g)
    return p, cores, fwd, gs


def run_rtl(p, cores, fwd, gs, *, max_width=5, max_height=4, lr_shift=None, dense_w=None):
    """The unit's results; with ``dense_w`` (a unit built ``dense``, run in mode dense, ``fwd``
    the dense forward pass) the dense baseline's."""
    T, c_out, H, W = fwd.y.shape
    c_in, rank = cores.cin, cores.g1.shape[0]
    dense = dense_w is not None
    dut = TTBackward(c_in=c_in, rank=rank, c_out=c_out, T=T, max_width=max_width,
                     max_height=max_height, w_width=p.w_width, act_width=p.act_width,
                     mem_width=p.mem_width, grad_width=p.grad_width, wgrad_width=p.wgrad_width,
                     dense=dense)

    def padded(x):
        out = torch.zeros(*x.shape[:-2], max_height, max_width, dtype=torch.int64)
        out[..., :H, :W] = x
        return out.flatten().tolist()

    order = lambda g: g.permute(0, 2, 1).flatten().tolist()    # the engines' (o * 3 + k) * r + i
    images = {"gs": padded(gs), "g1": cores.g1.flatten().tolist(), "g2": order(cores.g2),
              "g3": order(cores.g3), "g4": cores.g4.flatten().tolist()}
    sizes = {"grad_in": T * c_in * max_height * max_width, "dg1": rank * c_in,
             "dg2": 3 * rank * rank, "dg3": 3 * rank * rank, "dg4": c_out * rank}
    sizes.update({f"g{k}": sizes[f"dg{k}"] for k in (1, 2, 3, 4)})
    if dense:       # DenseConv.weight_index's order: ((o * 3 + kh) * 3 + kw) * c_in + i
        images["w"] = dense_w.permute(0, 2, 3, 1).flatten().tolist()
        sizes.update(dgw=dense_w.numel(), w=dense_w.numel())
    got, counters = {}, {}

    async def bench(ctx):
        for name, value in (("mode", MODES_RTL["dense" if dense else p.mode]),
                            ("htt_full", p.htt_full),
                            ("width", W), ("height", H), ("theta", p.theta), ("beta", p.beta),
                            ("surrogate", p.surrogate), ("update", lr_shift is not None),
                            ("lr_shift", lr_shift or 0), *[(f"shift_b{k}", getattr(p, f"shift_b{k}"))
                                                          for k in (1, 2, 3, 4)]):
            ctx.set(getattr(dut, name), value)
        for mem, name in enumerate(INPUTS):
            for index, value in enumerate(images.get(name, ())):
                ctx.set(dut.load.valid, 1)
                ctx.set(dut.load.payload, {"mem": mem, "index": index, "value": value})
                await ctx.tick()
        ctx.set(dut.load.valid, 0)
        # The forward state as the forward pass would deliver it, with gaps between transfers
        # (the dense baseline has no activations).
        state = (() if dense else (("a1", fwd.a1), ("a2", fwd.a2), ("a3", fwd.a3))) + (
            ("spikes_in", fwd.spikes_in),)
        for t in range(T):
            for y in range(H):
                for x in range(W):
                    for name, value in state:
                        port = getattr(dut, name)
                        ctx.set(port.valid, 1)
                        row = value[t, :, y, x].tolist()
                        ctx.set(port.payload, row if name != "spikes_in"
                                else sum(v << n for n, v in enumerate(row)))
                    await ctx.tick()
                    for name in ("a1", "a2", "a3", "spikes_in"):
                        ctx.set(getattr(dut, name).valid, 0)
                    await ctx.tick()
        for y in range(H):
            for x in range(W):
                for o in range(c_out):
                    ctx.set(dut.neuron.valid, 1)
                    ctx.set(dut.neuron.payload, {
                        "spikes": sum(int(fwd.spikes[t, o, y, x]) << t for t in range(T)),
                        "trace": fwd.membrane[:, o, y, x].tolist()})
                    await ctx.tick()
        ctx.set(dut.neuron.valid, 0)
        ctx.set(dut.start, 1)
        await ctx.tick()
        ctx.set(dut.start, 0)
        updates = []
        while ctx.get(dut.busy):
            if ctx.get(dut.updates.valid):
                updates.append(ctx.get(dut.updates.payload))
            await ctx.tick()
        counters["updates"] = [(u.core, u.index, u.value) for u in updates]
        for name in ("cycles_surrogate", "cycles_dgrad", "cycles_wgrad", "macs",
                     "cycles_update"):
            counters[name] = ctx.get(getattr(dut, name))
        for mem, name in enumerate(RESULTS):
            if name not in sizes:
                continue
            values = []
            for index in range(sizes[name]):
                ctx.set(dut.peek_mem, mem)
                ctx.set(dut.peek_index, index)
                await ctx.tick()
                values.append(ctx.get(dut.peek_data))
            got[name] = torch.tensor(values)
        got["grad_in"] = got["grad_in"].reshape(T, c_in, max_height, max_width)[..., :H, :W]
        for k in (2, 3):
            for name in (f"dg{k}", f"g{k}"):
                got[name] = got[name].reshape(rank, 3, rank).permute(0, 2, 1).flatten()
        for name in ("dgw", "w") if dense else ():
            got[name] = got[name].reshape(c_out, 3, 3, c_in).permute(0, 3, 1, 2)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return got, counters


def compare(got, want):
    """Each array of ``want`` equal to ``got``'s, or fail naming it and its first difference."""
    for name, value in want.items():
        diff = (got[name] != value).nonzero()
        assert not len(diff), (f"{name}: {len(diff)} differ, first at {diff[0].tolist()}: "
                               f"got {got[name][tuple(diff[0])]}, expected "
                               f"{value[tuple(diff[0])]}")


def check(p, cores, fwd, gs, **kwargs):
    grad_in, grads, _ = fixed_backward(gs, fwd, cores, p)
    got, counters = run_rtl(p, cores, fwd, gs, **kwargs)
    want = {"grad_in": grad_in, **{f"dg{k}": getattr(grads, f"g{k}").flatten()
                                   for k in (1, 2, 3, 4)}}
    compare(got, want)
    return got, counters


@pytest.mark.parametrize("mode", ["stt", "ptt", "htt"])
def test_backward_matches_the_golden_model(mode):
    p, cores, fwd, gs = case(len(mode), mode=mode, htt_full=1)
    _, grads, du = fixed_backward(gs, fwd, cores, p)
    assert 0 < (du == 0).sum() < du.numel() // 2 and 0 < fwd.spikes.sum()
    assert all(getattr(grads, n).abs().sum() > 0 for n in ("g1", "g2", "g3", "g4"))
    _, counters = check(p, cores, fwd, gs)
    # Terms per pass, with P = 3 x 4 positions, T = 3, Cin = Cout = 3, r = 2.
    P, T, r, ci, co = 12, 3, 2, 3, 3
    full = 1 if mode == "htt" else T
    middle = 4 * 3 * r * r * P if mode == "stt" else (2 * 3 + 6) * r * r * P
    assert counters["cycles_surrogate"] == T * co * P
    assert counters["cycles_dgrad"] + counters["cycles_wgrad"] == (
        T * (2 * co * r * P + 2 * r * ci * P) + full * middle)
    assert 0 < counters["macs"] < counters["cycles_dgrad"] + counters["cycles_wgrad"]


@pytest.mark.parametrize("shape", [
    {"rank": 1, "c_in": 2, "c_out": 1, "H": 1, "W": 1, "T": 1},
    {"rank": 3, "c_in": 2, "c_out": 2, "H": 4, "W": 5, "T": 2},
])
def test_backward_odd_shapes(shape):
    check(*case(11, mode="stt", **shape))


def test_backward_saturates_and_all_spiking():
    """Weight extremes, every input spike on and large gradients: the fits and the surrogate's
    sum saturate at grad_width, the core gradients at wgrad_width."""
    p, cores, fwd, gs = case(5, mode="ptt", wmax=128, density=1.0, gmax=2 ** 11 - 1,
                             grad_width=12, wgrad_width=20, surrogate=2 ** 15)
    grad_in, grads, _ = fixed_backward(gs, fwd, cores, p)
    assert grad_in.abs().max() == 2 ** 11 or grad_in.max() == 2 ** 11 - 1
    assert max(getattr(grads, n).abs().max() for n in ("g1", "g2", "g3", "g4")) >= 2 ** 19 - 1
    check(p, cores, fwd, gs)


@pytest.mark.parametrize("lr_shift, wgrad_width", [(0, 32), (6, 32), (11, 12), (12, 12),
                                                   (47, 12)])
def test_sgd_update_on_chip(lr_shift, wgrad_width):
    """After the backward pass the cores are updated in place, as ``sgd_update``; each new
    weight also leaves on ``updates`` (for the forward engines' copies). A gradient saturated
    to wgrad_width and shifted by as much or more rounds to 0: no weight moves."""
    p, cores, fwd, gs = case(4, mode="stt", wmax=128, wgrad_width=wgrad_width)
    _, grads, _ = fixed_backward(gs, fwd, cores, p)
    want = sgd_update(cores, grads, lr_shift, p)
    got, counters = check(p, cores, fwd, gs, lr_shift=lr_shift)
    sizes = [want.g1.numel(), want.g2.numel(), want.g3.numel(), want.g4.numel()]
    assert counters["cycles_update"] == sum(sizes)
    for k in (1, 2, 3, 4):
        assert torch.equal(got[f"g{k}"], getattr(want, f"g{k}").flatten()), f"g{k}"
    assert torch.equal(want.g2, cores.g2) == (lr_shift >= wgrad_width)
    sent = [(c, i) for c, i, _ in counters["updates"]]
    assert sent == [(c, i) for c in range(4) for i in range(sizes[c])]


def test_no_update_leaves_the_cores():
    p, cores, fwd, gs = case(4, mode="ptt")
    got, counters = check(p, cores, fwd, gs)
    assert counters["cycles_update"] == 0 and not counters["updates"]
    assert torch.equal(got["g1"], cores.g1.flatten())


def test_the_comparison_can_fail():
    """A golden model of another pipeline must not match the RTL's results."""
    p, cores, fwd, gs = case(3, mode="stt")
    got, _ = run_rtl(p, cores, fwd, gs)
    other = p.replace(mode="ptt")
    grad_in, _, _ = fixed_backward(gs, fixed_forward(fwd.spikes_in, cores, other), cores, other)
    assert not torch.equal(got["grad_in"], grad_in)


@pytest.mark.parametrize("name, value", [("rank", 0), ("T", 17), ("grad_width", 1.5)])
def test_bad_parameters_are_named(name, value):
    kwargs = dict(c_in=2, rank=2, c_out=2, T=2, max_width=3, max_height=3)
    kwargs[name] = value
    with pytest.raises(ValueError, match=name):
        TTBackward(**kwargs)


def dense_case(seed, *, T=3, c_in=3, c_out=4, H=3, W=4, wmax=32, density=0.5, gmax=200,
               **fixed):
    """A dense 3x3 layer's forward pass, its weight and output gradients (cores: unused, the
    unit's shapes)."""
    p, cores, _, gs = case(seed, T=T, c_in=c_in, c_out=c_out, H=H, W=W, gmax=gmax, **fixed)
    g = torch.Generator().manual_seed(seed + 100)
    w = torch.randint(-wmax, wmax, (c_out, c_in, 3, 3), generator=g)
    spikes = (torch.rand(T, c_in, H, W, generator=g) < density).long()
    return p, cores, fixed_dense_forward(spikes, w, p), gs, w


def check_dense(p, cores, fwd, gs, w, **kwargs):
    grad_in, dw, du = fixed_dense_backward(gs, fwd, w, p)
    got, counters = run_rtl(p, cores, fwd, gs, dense_w=w, **kwargs)
    compare(got, {"grad_in": grad_in, "dgw": dw})
    return got, counters, du


@pytest.mark.parametrize("shape", [{}, {"c_in": 2, "c_out": 1, "H": 1, "W": 1, "T": 1},
                                   {"c_in": 1, "c_out": 2, "H": 4, "W": 5, "T": 2}])
def test_dense_backward_matches_the_golden_model(shape):
    """The dense baseline's BPTT on the same unit: input gradients (the transposed 3x3 conv)
    and the 3x3 weight gradient bit for bit, odd and one-pixel maps; the cycles are the loop
    nests' (a term per cycle, the padding's terms included)."""
    p, cores, fwd, gs, w = dense_case(7, shift_b1=4, shift_y=2, surrogate=12,
                                      **shape)
    got, counters, du = check_dense(p, cores, fwd, gs, w)
    T, co, H, W = fwd.y.shape
    ci, P = fwd.spikes_in.shape[1], H * W
    if not shape:
        assert 0 < (du == 0).sum() < du.numel() and got["dgw"].abs().sum() > 0
    assert counters["cycles_surrogate"] == T * co * P
    assert counters["cycles_wgrad"] == counters["cycles_dgrad"] == T * 9 * co * ci * P
    assert 0 < counters["macs"] <= 2 * T * 9 * co * ci * P
    assert counters["cycles_update"] == 0 and torch.equal(got["w"], w)


def test_dense_backward_saturates_and_updates_on_chip():
    """Weight extremes, all spikes on, large gradients: grad_in saturates at grad_width, dW at
    wgrad_width; then the SGD pass updates W in place (``sgd_step``) and sends each new weight
    to the forward engine (core 4, the dense weight)."""
    p, cores, fwd, gs, w = dense_case(9, wmax=128, density=1.0, gmax=2 ** 11 - 1, grad_width=12,
                                      wgrad_width=14, surrogate=2 ** 15)
    grad_in, dw, _ = fixed_dense_backward(gs, fwd, w, p)
    assert grad_in.abs().max() >= 2 ** 11 - 1 and dw.abs().max() >= 2 ** 13 - 1
    got, counters, _ = check_dense(p, cores, fwd, gs, w, lr_shift=3)
    want = sgd_step(w, dw, 3, p)
    assert torch.equal(got["w"], want) and not torch.equal(want, w)
    assert counters["cycles_update"] == w.numel()
    assert [(c, i) for c, i, _ in counters["updates"]] == [(4, i) for i in range(w.numel())]


def test_the_dense_comparison_can_fail():
    """A golden layer with kh and kw swapped in its kernel (forward and backward) must not match
    the RTL's gradients."""
    p, cores, fwd, gs, w = dense_case(8, shift_y=2, surrogate=12)
    got, _ = run_rtl(p, cores, fwd, gs, dense_w=w)
    swapped = w.transpose(2, 3)
    grad_in, dw, _ = fixed_dense_backward(gs, fixed_dense_forward(fwd.spikes_in, swapped, p),
                                          swapped, p)
    assert not torch.equal(got["grad_in"], grad_in) and not torch.equal(got["dgw"], dw)
