"""The TT-SNN core end to end: its driver in Amaranth's simulator, its cocotb regression under
Verilator (every pipeline, structured and random layers, crossed patterns, against
``fixed_forward``), and ``snnforge run ttsnn`` with its errors."""

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from snnforge.cli import main
from snnforge.golden.ttsnn.fixed import (fixed_backward, fixed_dense_backward,
                                         fixed_dense_forward, fixed_forward, sgd_step,
                                         sgd_update)
from snnforge.golden.ttsnn.tt import TTCores
from snnforge.hw.ttsnn.config import TTSNNConfig
from snnforge.hw.ttsnn.core import TTSNNCore
from snnforge.hw.ttsnn.driver import TTSNNDriver
from snnforge.hw.ttsnn.layer import MODES_RTL
from snnforge.host import CommandList, MemoryImage
from snnforge.params import SnnforgeError
from snnforge.sim.amaranth_host import simulate_driver
from snnforge.sim.runner import run_bench

#: A small core: its Verilator build takes about a minute.
SMALL = {"c_in": 3, "rank": 2, "c_out": 3, "max_width": 5, "max_height": 4, "T": 3,
         "lanes_g1": 2, "lanes_g2": 1, "lanes_g3": 2, "lanes_g4": 2, "w_width": 6,
         "act_width": 12, "y_width": 12, "mem_width": 12, "dma_width": 64}
MEMORY = 1 << 16


def layer(seed, T=3, c_in=3, rank=2, c_out=3, H=3, W=5):
    g = torch.Generator().manual_seed(seed)
    draw = lambda *s: torch.randint(-32, 32, s, generator=g).numpy()
    spikes = (torch.rand(T, c_in, H, W, generator=g) < 0.5).long().numpy()
    return {"spikes": spikes, "g1": draw(rank, c_in), "g2": draw(rank, rank, 3),
            "g3": draw(rank, rank, 3), "g4": draw(c_out, rank)}


def golden(cfg, inputs, options):
    p = cfg.fixed.replace(**{k: v for k, v in options.items()})
    cores = TTCores(*(torch.from_numpy(inputs[k]) for k in ("g1", "g2", "g3", "g4")))
    fwd = fixed_forward(torch.from_numpy(inputs["spikes"]), cores, p)
    want = {"y": fwd.y.numpy(), "spikes": fwd.spikes.numpy(), "membrane": fwd.membrane.numpy()}
    if "grad" in inputs:
        grad_in, grads, _ = fixed_backward(torch.from_numpy(inputs["grad"]), fwd, cores, p)
        want["grad_in"] = grad_in.numpy()
        want.update({f"grad_g{k}": getattr(grads, f"g{k}").numpy() for k in (1, 2, 3, 4)})
    return want


@pytest.mark.parametrize("mode", ["stt", "ptt", "htt"])
def test_core_through_its_driver_in_amaranth(mode):
    got, c = run_in_amaranth(SMALL, layer(len(mode)), mode, latency=3, stall=0.2)
    T, HW = 3, 3 * 5
    assert c["positions"] == T * HW and c["neurons"] == HW * 3
    assert 0 < c["forward_cycles"] < c["busy"] < c["total_cycles"]
    # MAC rows: per position and step, ceil(outputs / lanes) x inputs (G2/G3: 3r inputs), G2 and
    # G3 on the steps of the full path -- and with the pool on HTT's late steps, G3's engine
    # some of G1's positions (1 x 3 rows each), G2's some of G4's (3 x 2 rows each).
    full = 1 if mode == "htt" else T
    assert c["g1_rows"] % 3 == 0 and c["g4_rows"] % 4 == 0
    by_g3, by_g2 = T * HW - c["g1_rows"] // 3, T * HW - c["g4_rows"] // 4
    assert c["g3_rows"] == full * HW * 1 * 6 + by_g3 * 1 * 3
    assert c["g2_rows"] == full * HW * 2 * 6 + by_g2 * 3 * 2
    assert (by_g3 > 0 and by_g2 > 0) if mode == "htt" else by_g3 == by_g2 == 0


#: Shifts that keep the membranes near theta (the surrogate window open for some neurons only).
BACKWARD = {"shift_z2": 3, "shift_z3": 4, "shift_y": 5, "theta": 4, "surrogate": 100,
            "shift_b4": 3, "shift_b3": 4, "shift_b2": 4, "shift_b1": 3}


def with_grad(inputs, seed, c_out=3, limit=200):
    g = torch.Generator().manual_seed(seed)
    T, _, H, W = inputs["spikes"].shape
    return {**inputs, "grad": torch.randint(-limit, limit + 1, (T, c_out, H, W),
                                            generator=g).numpy()}


@pytest.mark.parametrize("mode", ["stt", "ptt", "htt"])
def test_core_backward_through_its_driver_in_amaranth(mode):
    inputs = with_grad(layer(3 + len(mode)), 9)
    got, c = run_in_amaranth(SMALL, inputs, mode, latency=2, stall=0.2, options=BACKWARD)
    assert got.outputs["grad_g4"].any() and got.outputs["grad_in"].any()
    assert c["backward_macs"] > 0 and c["surrogate_cycles"] == 3 * 3 * 3 * 5
    assert c["backward_cycles"] > c["dgrad_cycles"] + c["wgrad_cycles"]


def test_sgd_on_chip_and_the_next_forward_pass_uses_it():
    """A training step on the core: forward, backward, SGD update on chip; then a forward pass
    without weight LOADs runs on the updated cores."""
    cfg = TTSNNConfig(**SMALL)
    inputs = with_grad(layer(21), 4)
    options = {**BACKWARD, "mode": "stt", "sgd_shift": 6}

    async def script(driver):
        first = await driver.run(driver.validate(cfg, inputs, options))
        again = {**inputs, **{f"g{k}": first.outputs[f"new_g{k}"] for k in (1, 2, 3, 4)}}
        del again["grad"]
        second = await driver.run(driver.validate(cfg, again, {**BACKWARD, "mode": "stt",
                                                              "load_cores": 0}))
        return [first, second]

    first, second = simulate_core(cfg, script, latency=2, memory_stall=0.1, stall=0.1)
    p = cfg.fixed.replace(**{k: v for k, v in options.items() if k != "sgd_shift"})
    cores = TTCores(*(torch.from_numpy(inputs[k]) for k in ("g1", "g2", "g3", "g4")))
    fwd = fixed_forward(torch.from_numpy(inputs["spikes"]), cores, p)
    _, grads, _ = fixed_backward(torch.from_numpy(inputs["grad"]), fwd, cores, p)
    new = sgd_update(cores, grads, 6, p)
    for k in (1, 2, 3, 4):
        assert np.array_equal(first.outputs[f"new_g{k}"], getattr(new, f"g{k}").numpy()), k
    assert not np.array_equal(first.outputs["new_g2"], inputs["g2"])
    assert first.counters["update_cycles"] == 2 * 3 + 3 * 2 * 2 * 2 + 3 * 2
    after = fixed_forward(torch.from_numpy(inputs["spikes"]), new, p)
    assert np.array_equal(second.outputs["y"], after.y.numpy())
    assert not np.array_equal(second.outputs["y"], first.outputs["y"])
    assert second.counters["weights"] == 0


def test_each_backward_pass_starts_its_core_gradients_from_zero():
    """An HTT pass after an STT pass on the same core: G2's and G3's gradients, which HTT adds
    to only on its first htt_full steps, hold none of the previous pass's (a bug once)."""
    cfg = TTSNNConfig(**SMALL)
    jobs = [(with_grad(layer(30), 5), {**BACKWARD, "mode": "stt"}),
            (with_grad(layer(31), 6), {**BACKWARD, "mode": "htt", "htt_full": 1})]

    async def script(driver):
        return [await driver.run(driver.validate(cfg, inputs, options))
                for inputs, options in jobs]

    for (inputs, options), result in zip(jobs, simulate_core(cfg, script, latency=2)):
        want = golden(cfg, inputs, options)
        assert want["grad_g2"].any()
        for name in ("grad_g2", "grad_g3", "grad_in"):
            assert np.array_equal(result.outputs[name], want[name]), (options["mode"], name)


def test_back_to_back_weight_loads_at_full_memory_speed():
    """A fast memory lets each core's weight LOAD start on the cycle the previous one's last byte
    leaves the gearbox: the new count must not be lost (it was: the next core read as zeros)."""
    params = {**SMALL, "c_in": 8, "rank": 4}
    run_in_amaranth(params, layer(3, c_in=8, rank=4), "stt", latency=1, stall=0.0)


def simulate_core(cfg, script, *, latency, memory_stall=0.0, stall=0.0):
    """``await script(driver)`` on a core of ``cfg`` in Amaranth's simulator (the host port's
    idle and back-pressure ``stall``, the memory's ``latency`` and ``memory_stall``); returns
    what it returned."""
    return simulate_driver(TTSNNCore(cfg), TTSNNDriver, cfg, script, memory_size=MEMORY,
                           latency=latency, memory_stall=memory_stall, stall=stall)


def run_in_amaranth(params, inputs, mode, *, latency, stall, options=None):
    """Runs one layer through the driver in Amaranth's simulator, checks every output against
    ``fixed_forward`` and returns (result, counters)."""
    cfg = TTSNNConfig(**params)
    options = options or {"shift_z2": 1, "shift_z3": 2, "shift_y": 2, "theta": 20}
    options = {"mode": mode, "htt_full": 1, "beta": 64, **options}

    async def script(driver):
        return [await driver.run(driver.validate(cfg, inputs, options))]

    got = simulate_core(cfg, script, latency=latency, memory_stall=stall, stall=stall)
    want = golden(cfg, inputs, options)
    for name, value in want.items():
        assert np.array_equal(got[0].outputs[name], value), name
    return got[0], got[0].counters


def dense_weight(seed, c_out=3, c_in=3, lo=-32, hi=31):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(lo, hi + 1, (c_out, c_in, 3, 3), generator=g).numpy()


def test_dense_baseline_between_tt_passes_in_amaranth():
    """A TT training pass, a dense 3x3 training pass (the baseline: its own weight, the TT
    engines idle; forward, backward and the SGD update on the same backward unit), a TT pass on
    the cores still on chip, then a dense forward pass on the updated weight still on chip:
    every output equals its golden model -- the dense weight's LOAD and update leave the cores
    and the backward unit's copies alone."""
    cfg = TTSNNConfig(**SMALL, dense_lanes=2, dense_ways=5, ways_g1=2, ways_g2=4, ways_g4=2)
    tt = with_grad(layer(40), 7)
    dense = with_grad({"spikes": layer(41)["spikes"], "w": dense_weight(2)}, 8)
    dense_options = {"mode": "dense", "shift_y": 2, "theta": 30, "beta": 200, "surrogate": 12,
                     "shift_b1": 4}
    tt_options = {**BACKWARD, "mode": "ptt"}
    forward_only = {k: v for k, v in dense.items() if k != "grad"}

    async def script(driver):
        return [await driver.run(driver.validate(cfg, inputs, options)) for inputs, options in
                ((tt, tt_options), (dense, {**dense_options, "sgd_shift": 5}),
                 (tt, {**tt_options, "load_cores": 0}),
                 (forward_only, {**dense_options, "load_cores": 0}))]

    first, base, again, updated = simulate_core(cfg, script, latency=2, memory_stall=0.2,
                                                stall=0.2)
    want = golden(cfg, tt, tt_options)
    for result in (first, again):
        for name, value in want.items():
            assert np.array_equal(result.outputs[name], value), name
    p = cfg.fixed.replace(**{k: v for k, v in dense_options.items() if k != "mode"})
    w = torch.from_numpy(dense["w"])
    fwd = fixed_dense_forward(torch.from_numpy(dense["spikes"]), w, p)
    grad_in, dw, du = fixed_dense_backward(torch.from_numpy(dense["grad"]), fwd, w, p)
    new_w = sgd_step(w, dw, 5, p)
    assert 0 < (du == 0).sum() < du.numel() and not torch.equal(new_w, w)
    for name, value in (*((n, getattr(fwd, n)) for n in ("y", "spikes", "membrane")),
                        ("grad_in", grad_in), ("grad_w", dw), ("new_w", new_w)):
        assert np.array_equal(base.outputs[name], value.numpy()), name
    after = fixed_dense_forward(torch.from_numpy(dense["spikes"]), new_w, p)
    assert np.array_equal(updated.outputs["y"], after.y.numpy())
    c = base.counters
    assert c["dense_rows"] == 3 * 15 * 2 * 6 and c["weights"] == 81       # 27 inputs, 5 ways
    assert all(c[f"g{k}_rows"] == 0 for k in (1, 2, 3, 4)) and first.counters["dense_rows"] == 0
    # Per step: the surrogate pass, dW and W^T (9 Cout Cin P terms each); then the update.
    T, P = 3, 15
    assert c["surrogate_cycles"] == T * 3 * P and c["update_cycles"] == 81
    assert c["wgrad_cycles"] == c["dgrad_cycles"] == T * 81 * P


def test_dense_mode_without_the_engine_has_no_backward_pass():
    """control.backward in mode dense on a core without the dense engine ends at once
    (backward_done, no cycles): a list waiting for it does not hang."""
    cfg = TTSNNConfig(**SMALL)

    async def script(driver):
        cl = CommandList(driver.host.regmap)
        cl.write("mode", MODES_RTL["dense"])
        cl.write("control", clear=1)
        cl.write("control", backward=1)
        cl.wait("status", backward_done=1)
        cl.end()
        await driver.host.run_commands(MemoryImage(MEMORY, align=64), cl)
        return [await driver.host.read_many(["backward_cycles", "surrogate_cycles"])]

    assert simulate_core(cfg, script, latency=1) == [{"backward_cycles": 0,
                                                      "surrogate_cycles": 0}]


def test_regression_under_verilator():
    result = run_bench("ttsnn", SMALL, seed=5, testcase="regression", options={"cases": 2})
    assert result.ok, result.summary()
    assert result.stats["unit"] == "output neurons" and result.stats["items"] > 0


@pytest.mark.parametrize("params", [
    {"c_in": 2, "rank": 3, "c_out": 2, "max_width": 5, "max_height": 3, "T": 6,
     "dense_lanes": 1, "dense_ways": 4, "ways_g2": 2, "ways_g3": 9},      # r > Cin, dense, ways
    {"c_in": 2, "rank": 1, "c_out": 3, "max_width": 3, "max_height": 3, "T": 1,
     "htt_full": 1},                                                                # r = 1
], ids=["T6-r3-dense", "T1-r1"])
def test_regression_other_steps_and_ranks(params):
    lanes = {f"lanes_g{k}": 1 for k in (1, 2, 3, 4)}
    narrow = {"w_width": 6, "act_width": 12, "y_width": 12, "mem_width": 12, "dma_width": 32}
    result = run_bench("ttsnn", {**params, **lanes, **narrow}, seed=3, testcase="regression",
                       options={"cases": 1})
    assert result.ok, result.summary()


def test_regression_catches_a_wrong_dense_golden_model():
    """The dense cases against a golden kernel with kh and kw swapped: must fail on a dense
    case (the all-equal kernels' forward passes are symmetric, not their random gradients'
    transposed conv; the TT cases pass)."""
    params = {"c_in": 2, "rank": 3, "c_out": 2, "max_width": 5, "max_height": 3, "T": 6,
              "dense_lanes": 1, **{f"lanes_g{k}": 1 for k in (1, 2, 3, 4)}, "w_width": 6,
              "act_width": 12, "y_width": 12, "mem_width": 12, "dma_width": 32}
    result = run_bench("ttsnn", params, seed=3, testcase="regression",
                       options={"cases": 1, "golden_dense_transposed": 1})
    assert not result.ok
    message = result.failed[0][1]
    assert "dense-" in message and "first at" in message


def test_regression_catches_a_wrong_golden_model():
    """A golden model on the other pipeline must fail, naming the case and the first element."""
    result = run_bench("ttsnn", SMALL, seed=5, testcase="regression",
                       options={"cases": 0, "golden_mode": "stt"})
    assert not result.ok
    message = result.failed[0][1]
    assert "first at" in message and "expected" in message and "zeros" not in message


def test_regression_catches_a_wrong_backward_golden_model():
    """Forward equal, input gradients fitted by another shift: must fail on grad_in only."""
    result = run_bench("ttsnn", SMALL, seed=5, testcase="regression",
                       options={"cases": 0, "golden_shift_b1": 7})
    assert not result.ok
    message = result.failed[0][1]
    assert "grad_in:" in message and "first at" in message
    problems = [line.split(":")[0].strip() for line in message.splitlines()[1:]]
    assert problems == ["grad_in"], message


def test_snnforge_run_ttsnn(tmp_path):
    """Forward and backward from the command line: the outputs and gradients of the golden
    models."""
    inputs = with_grad(layer(7, H=4, W=5), 3)
    args = []
    for name, value in inputs.items():
        np.save(tmp_path / f"{name}.npy", value)
        args += ["--in", f"{name}={tmp_path / f'{name}.npy'}"]
    params = [a for k, v in SMALL.items() for a in ("-p", f"{k}={v}")]
    out = tmp_path / "out.npz"
    options = {"mode": "ptt", "shift_y": 4, "theta": 10, "surrogate": 60, "shift_b1": 2}
    flags = [a for k, v in options.items() for a in ("-O", f"{k}={v}")]
    result = CliRunner().invoke(main, ["run", "ttsnn", *params, *args, *flags, "-o", str(out)],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "TT layer PTT" in result.output and "simulated" in result.output
    cfg = TTSNNConfig(**SMALL)
    want = golden(cfg, inputs, options)
    assert want["grad_in"].any() and want["grad_g1"].any()
    with np.load(out) as got:
        for name, value in want.items():
            assert np.array_equal(got[name], value), name
        assert int(got["counter_neurons"]) == 4 * 5 * 3


@pytest.mark.parametrize("change, message", [
    ({"g2": np.zeros((2, 2, 2), dtype=np.int64)}, "g2 must have shape"),
    ({"g1": np.full((2, 3), 40)}, "g1 must lie within"),
    ({"spikes": np.full((3, 3, 3, 5), 2)}, "spikes must be binary"),
    ({"grad": np.zeros((3, 3, 3, 4), dtype=np.int64)}, "grad must have shape"),
    ({"grad": np.full((3, 3, 3, 5), 1 << 15)}, "grad must lie within"),
    ({"w": np.zeros((3, 3, 3, 3), dtype=np.int64)}, "w is the dense 3x3 weight of mode dense"),
])
def test_bad_jobs_name_the_array(change, message):
    cfg = TTSNNConfig(**SMALL)
    with pytest.raises(SnnforgeError, match=message):
        TTSNNDriver.validate(cfg, {**layer(1), **change}, {})


@pytest.mark.parametrize("change, message", [
    ({}, "mode dense needs a core with a dense engine"),
    ({"dense_lanes": 2, "drop": "w"}, "missing input w"),
    ({"dense_lanes": 2, "w": np.zeros((3, 3, 3, 1), dtype=np.int64)}, r"w must have shape \[3, 3"),
    ({"dense_lanes": 2, "g1": np.zeros((2, 3), dtype=np.int64)}, "drop g1"),
    ({"dense_lanes": 2, "grad": np.zeros((3, 3, 3, 4), dtype=np.int64)},
     "grad must have shape"),
])
def test_bad_dense_jobs(change, message):
    change = dict(change)
    cfg = TTSNNConfig(**SMALL, dense_lanes=change.pop("dense_lanes", 0))
    drop = change.pop("drop", None)
    inputs = {"spikes": layer(1)["spikes"], "w": dense_weight(1), **change}
    inputs.pop(drop, None)
    with pytest.raises(SnnforgeError, match=message):
        TTSNNDriver.validate(cfg, inputs, {"mode": "dense"})
    with pytest.raises(ValueError, match="dense_lanes"):
        TTSNNConfig(**SMALL, dense_lanes=4)          # more than c_out


def test_bad_options_and_parameters():
    cfg = TTSNNConfig(**SMALL)
    with pytest.raises(SnnforgeError, match="mode"):
        TTSNNDriver.validate(cfg, layer(1), {"mode": "dense3"})
    with pytest.raises(SnnforgeError, match="maps of 6x5"):
        TTSNNDriver.validate(cfg, layer(1, H=6), {})
    with pytest.raises(ValueError, match="lanes_g1"):
        TTSNNConfig(rank=2, lanes_g1=3)
    with pytest.raises(ValueError, match="w_width"):
        TTSNNConfig(w_width=9)


def test_run_ttsnn_bad_input_exits_2(tmp_path):
    inputs = layer(2)
    np.save(tmp_path / "s.npy", inputs["spikes"])
    result = CliRunner().invoke(main, ["run", "ttsnn", "--in", f"spikes={tmp_path / 's.npy'}",
                                       "-o", str(tmp_path / "out.npz")])
    assert result.exit_code == 2 and "missing input g1" in result.output
    # Mode dense takes the dense weight w instead of the cores.
    result = CliRunner().invoke(main, ["run", "ttsnn", "--in", f"spikes={tmp_path / 's.npy'}",
                                       "-O", "mode=dense", "-o", str(tmp_path / "out.npz")])
    assert result.exit_code == 2 and "missing input w [Cout, Cin, 3, 3]" in result.output
    assert not (tmp_path / "out.npz").exists()
