"""The integer LIF golden model: properties (hypothesis), hand cases, and the float model checked
against snntorch's Leaky neuron."""

import pytest
import snntorch  # a dev dependency: the cross-check must never be skipped silently
import torch
from hypothesis import given, settings, strategies as st

from snnforge.golden.common.lif import LIFParams, lif_float, lif_integer, signed_range, wrap

configs = st.builds(
    LIFParams,
    T=st.sampled_from([1, 2, 4, 8]),
    in_width=st.integers(4, 16),
    mem_width=st.integers(4, 16),
    leak=st.sampled_from(["none", "shift", "mul"]),
    leak_shift=st.integers(0, 3),
    leak_frac=st.just(8),
    leak_mul=st.integers(0, 255),
    threshold=st.integers(0, 7),
    reset=st.sampled_from(["hard", "soft"]),
    saturate=st.booleans(),
    masked=st.sampled_from(["integrate", "gate_reset", "leak_only"]),
)


def random_currents(p, n, seed):
    lo, hi = signed_range(p.in_width)
    g = torch.Generator().manual_seed(seed)
    return torch.randint(lo, hi + 1, (n, p.T), generator=g)


@settings(max_examples=150, deadline=None)
@given(p=configs, seed=st.integers(0, 2**16), tmask=st.integers(0, 255))
def test_masked_steps_never_spike(p, seed, tmask):
    tmask &= (1 << p.T) - 1
    spikes, _, evaluated = lif_integer(random_currents(p, 64, seed), p, tmask)
    for t in range(p.T):
        if not (tmask >> t) & 1:
            assert spikes[:, t].sum() == 0
    assert evaluated == 64 * bin(tmask).count("1")


@settings(max_examples=150, deadline=None)
@given(p=configs, seed=st.integers(0, 2**16))
def test_membrane_stays_in_range(p, seed):
    """The membrane always fits mem_width (saturating or wrapping)."""
    _, V, _ = lif_integer(random_currents(p, 64, seed), p)
    lo, hi = signed_range(p.mem_width)
    assert V.min() >= lo and V.max() <= hi


@settings(max_examples=150, deadline=None)
@given(p=configs, seed=st.integers(0, 2**16), sign=st.sampled_from([1, -1]))
def test_no_wrap_around_under_saturation(p, seed, sign):
    """Saturating: currents of one sign never flip the membrane's sign, however far they push
    it (with in_width >= mem_width they overflow it often; wrapping would flip it)."""
    p = p.replace(saturate=True, in_width=16, mem_width=min(p.mem_width, 12))
    I = random_currents(p, 256, seed).abs().clamp(max=(1 << 15) - 1) * sign
    _, V, _ = lif_integer(I, p)
    assert ((V >= 0) if sign > 0 else (V <= 0)).all()
    lo, hi = signed_range(p.mem_width)
    if sign < 0 and p.leak == "none":
        assert (V == lo).any()      # the overflow happened and was clamped


@settings(max_examples=100, deadline=None)
@given(p=configs, seed=st.integers(0, 2**16))
def test_integrate_policy_keeps_membrane_trace(p, seed):
    """Policy "integrate": a mask changes only the output spikes, never the membrane."""
    p = p.replace(masked="integrate")
    I = random_currents(p, 64, seed)
    s_all, V_all, _ = lif_integer(I, p)
    s_masked, V_masked, _ = lif_integer(I, p, 0b0101 & ((1 << p.T) - 1))
    assert torch.equal(V_all, V_masked)
    assert (s_masked <= s_all).all()


@settings(max_examples=100, deadline=None)
@given(seed=st.integers(0, 2**16), threshold=st.integers(1, 100))
def test_soft_reset_keeps_excess(seed, threshold):
    """Soft reset: after a spike at step 0 (no earlier state) V = H - threshold."""
    p = LIFParams(T=1, leak="none", reset="soft", threshold=threshold)
    I = random_currents(p, 256, seed).clamp(-1000, 1000)
    spikes, V, _ = lif_integer(I, p)
    fired = spikes[:, 0].bool()
    assert torch.equal(V[fired], I[fired, 0] - threshold)
    assert torch.equal(V[~fired], I[~fired, 0])


def test_saturation_versus_wrap():
    """8-bit membrane, two steps of +-100: the sum overflows."""
    sat = LIFParams(T=2, in_width=8, mem_width=8, leak="none", threshold=127, reset="soft")
    wrapping = sat.replace(saturate=False)
    spikes, V, _ = lif_integer(torch.tensor([[100, 100], [-100, -100]]), sat)
    # +200 clamps to 127, which reaches the threshold (soft reset: 0); -200 clamps to -128.
    assert spikes.tolist() == [[0, 1], [0, 0]] and V.tolist() == [0, -128]
    spikes, V, _ = lif_integer(torch.tensor([[100, 100], [-100, -100]]), wrapping)
    assert spikes.tolist() == [[0, 0], [0, 0]]
    assert V.tolist() == [int(wrap(torch.tensor(200), 8)), int(wrap(torch.tensor(-200), 8))]
    assert V.tolist() == [-56, 56]


def test_hand_computed_shift_leak():
    p = LIFParams(T=4, leak="shift", leak_shift=1, threshold=10)
    spikes, V, _ = lif_integer(torch.tensor([[6, 6, 6, -3]]), p)
    # V: 6 -> 3+6=9 -> 5+6=11 fires -> 0, then 0-3 = -3
    assert spikes.tolist() == [[0, 0, 1, 0]] and int(V[0]) == -3


def test_trace_is_each_steps_membrane_before_its_reset():
    p = LIFParams(T=4, leak="shift", leak_shift=1, threshold=10)
    spikes, V, n, trace = lif_integer(torch.tensor([[6, 6, 6, -3]]), p, trace=True)
    assert trace.tolist() == [[6, 9, 11, -3]]           # 11 fired, then the hard reset
    assert spikes.tolist() == [[0, 0, 1, 0]] and int(V[0]) == -3 and n == 4
    leak_only = p.replace(masked="leak_only")
    _, _, _, trace = lif_integer(torch.tensor([[6, 6, 6, -3]]), leak_only, tmask=0b1101,
                                 trace=True)
    # Step 1 masked: it traces its leaked V (6 - 3); then 3 - 1 + 6 = 8, 8 - 4 - 3 = 1.
    assert trace.tolist() == [[6, 3, 8, 1]]


def test_masked_policies_differ():
    """Step 0 masked, step 1 evaluated, threshold 5, no leak."""
    p = LIFParams(T=2, leak="none", threshold=5)
    final = lambda I, policy: lif_integer(torch.tensor([I]), p.replace(masked=policy), 0b10)[1].item()
    assert final([7, 2], "integrate") == 2    # 7 fires unseen and resets; then 2
    assert final([7, 2], "gate_reset") == 0   # no reset at t0: 7 + 2 = 9 fires at t1
    assert final([3, 1], "integrate") == 4    # masked input still integrated
    assert final([3, 1], "leak_only") == 1    # masked input ignored


@pytest.mark.parametrize("kwargs, name", [
    ({"T": 0}, "T"), ({"leak": "exp"}, "leak"), ({"reset": "x"}, "reset"),
    ({"masked": "x"}, "masked"), ({"threshold": 1 << 20}, "threshold"),
    ({"leak_mul": 256}, "leak_mul"), ({"leak_shift": 99}, "leak_shift"),
])
def test_bad_parameters_name_themselves(kwargs, name):
    with pytest.raises(ValueError, match=f"^{name} must be"):
        LIFParams(**kwargs)


def test_leak_amount_is_the_register_of_the_leak_kind():
    shift = LIFParams(leak="shift", leak_shift=3, leak_mul=100)
    mul = LIFParams(leak="mul", leak_shift=3, leak_mul=100, leak_frac=7)
    none = LIFParams(leak="none", leak_shift=3, leak_mul=100)
    assert (shift.leak_amount, mul.leak_amount, none.leak_amount) == (3, 100, 0)
    assert (shift.leak_amount_bits, mul.leak_amount_bits, none.leak_amount_bits) == (4, 7, 1)
    assert (shift.leak_amount_max, mul.leak_amount_max, none.leak_amount_max) == (15, 127, 0)
    assert shift.with_leak_amount(5).leak_shift == 5 and mul.with_leak_amount(9).leak_mul == 9
    assert none.with_leak_amount(5) == none
    with pytest.raises(ValueError, match="leak_mul must be an integer in 0..127"):
        mul.with_leak_amount(128)


def test_bad_currents_rejected():
    p = LIFParams(T=2, in_width=8)
    with pytest.raises(ValueError, match="currents"):
        lif_integer(torch.tensor([[200, 0]]), p)
    with pytest.raises(ValueError, match="shape"):
        lif_integer(torch.zeros(3, 4, dtype=torch.int64), p)
    with pytest.raises(ValueError, match="tmask"):
        lif_integer(torch.zeros(3, 2, dtype=torch.int64), p, tmask=4)


@pytest.mark.parametrize("reset", ["zero", "subtract"])
def test_float_model_matches_snntorch(reset):
    """Side by side with snntorch.Leaky (reset_delay=False), spikes and membranes.

    snntorch fires on ``mem > threshold`` (ours: >=; equality has probability 0 for random floats).
    Its reset-by-subtraction re-applies the previous step's reset when a neuron ended the step
    still above threshold (only after H > 2 * threshold); the inputs are scaled so that never
    happens, which is the regime where both definitions agree.
    """
    g = torch.Generator().manual_seed(7)
    beta, threshold, T, N = 0.8, 1.0, 16, 512
    x = torch.rand(N, T, generator=g) * (0.9 if reset == "subtract" else 1.5)
    ours_s, ours_h, ours_v = lif_float(x, beta=beta, threshold=threshold,
                                       reset="hard" if reset == "zero" else "soft")
    neuron = snntorch.Leaky(beta=beta, threshold=threshold, reset_mechanism=reset,
                            reset_delay=False)
    mem = neuron.reset_mem()
    for t in range(T):
        spk, mem = neuron(x[:, t], mem)
        assert torch.equal(spk, ours_s[:, t]), f"spikes differ at t={t}"
        assert torch.allclose(mem, ours_v[:, t], atol=1e-6), f"membranes differ at t={t}"
    assert ours_s.sum() > N  # the comparison exercised plenty of spikes and resets


def test_integer_shift_leak_tracks_float_model():
    """Integer leak k=2 is beta = 0.75 in fixed point: spikes agree on most neurons."""
    p = LIFParams(T=8, leak="shift", leak_shift=2, threshold=256, in_width=16, mem_width=16)
    g = torch.Generator().manual_seed(1)
    I = torch.randint(0, 200, (1000, 8), generator=g)
    s_int, _, _ = lif_integer(I, p)
    s_f, _, _ = lif_float(I.float(), beta=0.75, threshold=256.0)
    agree = (s_int == s_f.to(torch.uint8)).float().mean()
    assert agree > 0.97
