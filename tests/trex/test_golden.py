"""The crossbar's golden digital twin: its formats (cells, planes, memory words), its ADC rule,
exactness with a covering ADC, spiking mode, column blocks, and the cost model."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from snnforge.golden.common.lif import LIFParams, lif_integer
from snnforge.golden.trex.cost import COSTS, xbar_cost, tile_area
from snnforge.golden.trex.params import XbarParams, auto_shift, cell_levels, round_words
from snnforge.golden.trex.xbar import (NonIdeal, column_ladder_currents, adc, input_planes, xbar_mvm,
                                      xbar_spiking)


def rand(shape, lo, hi, seed):
    return torch.randint(lo, hi + 1, shape, generator=torch.Generator().manual_seed(seed))


@given(st.integers(1, 4), st.integers(2, 9), st.integers(0, 10_000))
@settings(max_examples=40, deadline=None)
def test_cells_hold_the_weights(cell_bits, w_bits, seed):
    """Reading the differential slices back gives every weight; unused cells are zero."""
    p = XbarParams(rows=7, cols=64, cell_bits=cell_bits, w_bits=w_bits, cols_per_adc=4)
    n = max(1, p.n_out - 1)
    w = rand((5, n), -p.w_max, p.w_max, seed).numpy()
    cells = cell_levels(w, p)
    assert cells.max() <= p.cell_max and cells.min() >= 0
    back = np.zeros_like(w)
    for j in range(p.slices):
        cols = np.arange(n) * p.group + 2 * j
        back += (cells[:5, cols] - cells[:5, cols + 1]) << (cell_bits * j)
    assert np.array_equal(back, w)
    assert not cells[5:].any() and not cells[:, n * p.group:].any()


def test_memory_words_place_each_cell():
    p = XbarParams(rows=3, cols=8, cell_bits=2, w_bits=3, cols_per_adc=2)
    cells = cell_levels(np.array([[3, -2], [1, 0], [-3, 2]]), p)
    words = round_words(cells, p)
    for c, word in enumerate(words):
        for a in range(p.n_adc):
            for r in range(p.rows):
                at = (a * p.rows + r) * p.cell_bits
                assert (word >> at) & 3 == cells[r, c * p.n_adc + a]


@pytest.mark.parametrize("in_bits", [2, 5, 8])
def test_planes_weigh_back_to_the_inputs(in_bits):
    x = rand((4, 6), -(1 << (in_bits - 1)), (1 << (in_bits - 1)) - 1, in_bits)
    planes, weights = input_planes(x, in_bits)
    assert planes.shape[0] == in_bits and weights[0] < 0
    assert torch.equal(sum(wt * pl for wt, pl in zip(weights, planes)), x)


def test_adc_rounds_half_up_and_clips():
    I = torch.tensor([0, 1, 2, 3, 5, 6, 100])
    assert adc(I, 3, 0).tolist() == [0, 1, 2, 3, 5, 6, 7]
    assert adc(I, 3, 2).tolist() == [0, 0, 1, 1, 1, 2, 7]       # (I + 2) >> 2, at most 7
    assert auto_shift(128, 1, 6) == 2 and auto_shift(63, 1, 6) == 0


@given(st.integers(1, 2), st.integers(2, 8), st.integers(2, 8), st.integers(0, 10_000))
@settings(max_examples=30, deadline=None)
def test_a_covering_adc_gives_the_integer_matmul(cell_bits, w_bits, in_bits, seed):
    p = XbarParams(rows=20, cols=96, cell_bits=cell_bits, w_bits=w_bits, in_bits=in_bits,
                   cols_per_adc=8, adc_bits=7)
    assert p.shift == 0                          # 2^7 - 1 covers 20 rows of 3-level cells
    n = 2 * p.n_out + 1                          # three loads of the tile
    w = rand((20, n), -p.w_max, p.w_max, seed)
    x = rand((5, 20), -(1 << (in_bits - 1)), (1 << (in_bits - 1)) - 1, seed + 1)
    out = xbar_mvm(x, w, p, adc_shift=0)
    assert torch.equal(out.y, x @ w)
    assert out.reads == 5 * in_bits * 3 and out.conversions == out.reads * p.cols


def test_a_coarse_adc_quantizes():
    p = XbarParams()                               # 128 rows, 6-bit ADC: shift 2
    w = rand((128, 9), -127, 127, 1)
    x = rand((8, 128), -128, 127, 2)
    exact = x @ w
    coarse = xbar_mvm(x, w, p).y
    assert not torch.equal(coarse, exact)
    assert (coarse - exact).abs().max() < exact.abs().max()


def test_spiking_mode_reads_each_step_once_and_feeds_the_lif():
    p = XbarParams(rows=16, cols=16, w_bits=4, cols_per_adc=4, adc_bits=5)
    w = rand((16, 2), -7, 7, 3)
    x = (torch.rand(3, 4, 16, generator=torch.Generator().manual_seed(4)) < 0.4).long()
    lif = LIFParams(T=3, in_width=p.y_bits(False), mem_width=12, threshold=9)
    out = xbar_spiking(x, w, p, lif, adc_shift=0)
    assert torch.equal(out.y, x @ w) and out.reads == 12
    spikes, _, _ = lif_integer((x @ w).permute(1, 2, 0).reshape(-1, 3), lif)
    assert torch.equal(out.spikes, spikes.reshape(4, 2, 3).permute(2, 0, 1))


@pytest.mark.parametrize("change, message", [
    ({"w": torch.zeros(129, 2, dtype=torch.long)}, "does not fit a tile of 128 rows"),
    ({"w": torch.full((4, 2), 128)}, "weights must lie within -127..127"),
    ({"x": torch.full((2, 4), 200)}, "x must lie within"),
    ({"x": torch.zeros(2, 5, dtype=torch.long)}, "x must have shape"),
])
def test_bad_inputs_name_the_problem(change, message):
    args = {"x": torch.zeros(2, 4, dtype=torch.long), "w": torch.zeros(4, 2, dtype=torch.long),
            **change}
    with pytest.raises(ValueError, match=message):
        xbar_mvm(args["x"], args["w"], XbarParams())
    with pytest.raises(ValueError, match="adc_bits must lie within 1..6"):
        xbar_mvm(torch.zeros(2, 4, dtype=torch.long), torch.zeros(4, 2, dtype=torch.long),
                 XbarParams(), adc_bits=7)


def test_cost_model_scales_with_the_work():
    p = XbarParams()
    work = {"reads": 80, "conversions": 80 * 128, "busy": 700}
    base = xbar_cost(p, work)
    assert base.energy["xbar"] == pytest.approx(80 * COSTS["xbar"][0] * 4)    # 128^2 / 64^2
    assert base.energy["adc"] == pytest.approx(80 * 128 * COSTS["adc"][0] * 4)  # 6 bits: 2^2
    assert xbar_cost(p, work, adc_bits=4).energy["adc"] == pytest.approx(base.energy["adc"] / 4)
    assert base.delay_ns == pytest.approx(700 * 4.0)                        # 250 MHz
    assert base.area == tile_area(p) and base.edap > 0
    double = xbar_cost(p, {k: 2 * v for k, v in work.items()})
    assert double.energy_pj == pytest.approx(2 * base.energy_pj)


def test_an_ideal_analog_front_end_gives_the_digital_results():
    """No variation, no IR drop: the off-current is common to a differential pair and cancels,
    so the codes give the integer model's results (finite on/off ratio included)."""
    p = XbarParams(rows=40, cols=56, adc_bits=7, cols_per_adc=4)
    w, x = rand((40, 6), -127, 127, 5), rand((3, 40), -128, 127, 6)
    want = xbar_mvm(x, w, p, adc_shift=0).y
    for on_off in (float("inf"), 150.0, 10.0):
        assert torch.equal(xbar_mvm(x, w, p, adc_shift=0, analog=NonIdeal(on_off=on_off)).y,
                           want)


def test_variation_is_seeded_and_ir_drop_lowers_the_currents():
    p = XbarParams(rows=64, cols=28, adc_bits=8, cols_per_adc=4)
    w, x = rand((64, 2), 0, 127, 7), rand((4, 64), 0, 127, 8)    # positive: larger |y| is more
    exact = xbar_mvm(x, w, p, adc_shift=0).y
    noisy = [xbar_mvm(x, w, p, adc_shift=0, analog=NonIdeal(sigma=0.1, seed=s)).y
             for s in (1, 1, 2)]
    assert torch.equal(noisy[0], noisy[1]) and not torch.equal(noisy[0], noisy[2])
    assert not torch.equal(noisy[0], exact)
    dropped = xbar_mvm(x, w, p, adc_shift=0, analog=NonIdeal(r_wire=5.0)).y
    assert bool((dropped <= exact).all()) and bool((dropped < exact).any())


def test_the_column_ladder_solves_its_circuit():
    """The Thomas-algorithm ladder equals a dense nodal solve of the same circuit."""
    G = torch.rand(6, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1)) * 1e-3
    V = torch.rand(2, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    r = 20.0
    got = column_ladder_currents(V, G, r)
    for b in range(2):
        for c in range(3):
            A = torch.zeros(6, 6, dtype=torch.float64)
            for i in range(6):
                A[i, i] = G[i, c] + (1 if i == 0 else 2) / r
                if i:
                    A[i, i - 1] = A[i - 1, i] = -1 / r
            v = torch.linalg.solve(A, G[:, c] * V[b])
            assert got[b, c] == pytest.approx(float(v[-1] / r))
