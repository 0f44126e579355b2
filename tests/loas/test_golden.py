"""Golden value models of the LoAS core: packing, compression, TPPE, SpMSpM, layer, im2col."""

import pytest
import torch
import torch.nn.functional as F

from snnforge.golden import loas as L
from snnforge.golden.common.lif import LIFParams, lif_integer


def rand_spikes(T, M, K, density, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(T, M, K, generator=g) < density).to(torch.uint8)


def rand_weights(K, N, density, seed=1):
    g = torch.Generator().manual_seed(seed)
    w = torch.randint(-128, 128, (K, N), generator=g)
    w[torch.rand(K, N, generator=g) >= density] = 0
    return w.to(torch.int8)


def structured_spikes():
    """(name, spikes) pairs covering the corner cases of packing."""
    single = torch.zeros(4, 3, 20, dtype=torch.uint8)
    single[1, 0, 3] = single[3, 2, 19] = single[0, 1, 0] = 1
    return [
        ("zeros", torch.zeros(4, 3, 300, dtype=torch.uint8)),
        ("ones", torch.ones(4, 3, 300, dtype=torch.uint8)),
        ("single", single),
        ("K_not_multiple", rand_spikes(4, 5, 300, 0.3)),
        ("K_lt_fiber", rand_spikes(3, 4, 7, 0.5)),
        ("random_T8", rand_spikes(8, 6, 256, 0.1)),
        ("bool", rand_spikes(2, 2, 9, 0.5).bool()),
        ("float", rand_spikes(2, 2, 9, 0.5).float()),
    ]


# ------------------------------------------------------------------------------------ words


def test_spike_words_and_strong_mask():
    x = torch.zeros(3, 1, 5, dtype=torch.uint8)
    x[:, 0, 1] = torch.tensor([1, 0, 0])      # word 1
    x[:, 0, 2] = torch.tensor([0, 1, 1])      # word 6
    x[:, 0, 3] = torch.tensor([1, 1, 1])      # word 7
    x[:, 0, 4] = torch.tensor([0, 0, 1])      # word 4
    words = L.spike_words(x)
    assert words.dtype == torch.int64
    assert words.tolist() == [[0, 1, 6, 7, 4]]
    assert L.strong_mask(words).tolist() == [[False, True, False, False, True]]


@pytest.mark.parametrize("T", [1, 2, 4, 8])
def test_apply_strong_drops_exactly_single_spike_neurons(T):
    x = rand_spikes(T, 7, 50, 0.3, seed=T)
    y = L.apply_strong(x)
    assert y.dtype == x.dtype
    pc = x.long().sum(0)
    single = pc == 1
    assert (y[:, single] == 0).all()
    assert torch.equal(y[:, ~single], x[:, ~single])
    packed = L.pack_spikes(x, strong=True, fiber=16)
    assert packed.nnz == int(((pc != 0) & ~single).sum())
    assert torch.equal(packed.unpack(), y)


# ------------------------------------------------------------------------------------ packing


def brute_chunk_masks(x, fiber):
    nz = x.long().sum(0) != 0
    M, K = nz.shape
    C = -(-K // fiber)
    return [[sum(1 << j for j in range(fiber) if c * fiber + j < K and nz[m, c * fiber + j])
             for c in range(C)] for m in range(M)]


@pytest.mark.parametrize("name,x", structured_spikes())
@pytest.mark.parametrize("fiber", [8, 128])
def test_pack_unpack_round_trip(name, x, fiber):
    p = L.pack_spikes(x, fiber=fiber)
    T, M, K = x.shape
    assert (p.T, p.M, p.K, p.fiber) == (T, M, K, fiber)
    assert p.n_chunks == -(-K // fiber)
    assert torch.equal(p.words, L.spike_words(x))
    assert p.chunk_masks == brute_chunk_masks(x, fiber)
    nonsilent = int((p.words != 0).sum())
    assert p.nnz == nonsilent
    assert p.silent_fraction == pytest.approx(1 - nonsilent / (M * K))
    for m in range(M):
        row = p.words[m]
        assert p.packed[m].tolist() == row[row != 0].tolist()
        for c in range(p.n_chunks):
            assert p.chunk_base[m][c] == int((row[:c * fiber] != 0).sum())
            mask, words = p.fiber_of(m, c)
            assert words.tolist() == [w for w in row[c * fiber:(c + 1) * fiber].tolist() if w]
            assert mask.bit_count() == len(words)
    assert torch.equal(p.unpack(), x.to(torch.uint8))


def test_pack_all_zero_all_one():
    z = L.pack_spikes(torch.zeros(4, 2, 130, dtype=torch.uint8))
    assert z.nnz == 0 and z.silent_fraction == 1.0
    assert z.chunk_masks == [[0, 0], [0, 0]]
    o = L.pack_spikes(torch.ones(4, 2, 130, dtype=torch.uint8))
    assert o.chunk_masks == [[(1 << 128) - 1, 0b11]] * 2
    assert o.chunk_base == [[0, 128]] * 2
    assert all(v == 15 for row in o.packed for v in row.tolist())


# ------------------------------------------------------------------------------------ weights


@pytest.mark.parametrize("fiber", [8, 32, 128])
def test_compress_weights_round_trip(fiber):
    w = rand_weights(300, 9, 0.1).long()
    w[:, 3] = 0                                # an all-zero column
    w[0, 0], w[1, 0], w[299, 8] = 127, -128, -127
    cw = L.compress_weights(w, fiber=fiber)
    assert (cw.K, cw.N, cw.fiber, cw.n_chunks) == (300, 9, fiber, -(-300 // fiber))
    assert torch.equal(cw.to_dense(), w)
    assert cw.nnz == int((w != 0).sum())
    assert cw.density == pytest.approx(cw.nnz / w.numel())
    assert cw.values[3].numel() == 0
    assert cw.values[0][:2].tolist() == [127, -128]
    for c in range(cw.n_chunks):
        for n in range(9):
            col = w[c * fiber:(c + 1) * fiber, n]
            assert cw.chunk_masks[c][n] == sum(1 << j for j, v in enumerate(col.tolist()) if v)
            assert cw.chunk_base[c][n] == int((w[:c * fiber, n] != 0).sum())
            assert cw.fiber_of(c, n)[1].tolist() == col[col != 0].tolist()


def test_compress_weights_all_zero_and_dtypes():
    cw = L.compress_weights(torch.zeros(16, 3, dtype=torch.int32), fiber=8)
    assert cw.nnz == 0 and cw.density == 0.0
    assert cw.chunk_masks == [[0, 0, 0], [0, 0, 0]]
    assert torch.equal(cw.to_dense(), torch.zeros(16, 3, dtype=torch.int64))


# ------------------------------------------------------------------------------------ TPPE


def test_prefix_popcount_brute_force():
    g = torch.Generator().manual_seed(3)
    for _ in range(200):
        bits = torch.randint(0, 2, (128,), generator=g).tolist()
        mask = sum(b << j for j, b in enumerate(bits))
        pos = int(torch.randint(0, 130, (1,), generator=g))
        assert L.prefix_popcount(mask, pos) == sum(bits[:pos])
    assert L.prefix_popcount(0, 0) == 0
    assert L.prefix_popcount(0b1011, 3) == 2
    with pytest.raises(ValueError, match="mask"):
        L.prefix_popcount(-1, 3)
    with pytest.raises(ValueError, match="pos"):
        L.prefix_popcount(3, -1)


@pytest.mark.parametrize("T", [1, 4, 8])
def test_tppe_pair_invariant(T):
    g = torch.Generator().manual_seed(T)
    W = 32
    for trial in range(30):
        dens = [0.0, 0.2, 0.7, 1.0][trial % 4]
        x = (torch.rand(T, 1, W, generator=g) < dens).to(torch.uint8)
        w = torch.randint(-128, 128, (W, 1), generator=g)
        w[torch.rand(W, 1, generator=g) < 0.5] = 0
        a = L.pack_spikes(x, fiber=W)
        b = L.compress_weights(w, fiber=W)
        am, aw = a.fiber_of(0, 0)
        bm, bv = b.fiber_of(0, 0)
        pseudo, corr, matches = L.tppe_pair(am, aw, bm, bv, T)
        assert len(corr) == T
        ref = (x[:, 0, :].long() @ w[:, 0]).tolist()
        assert [pseudo - c for c in corr] == ref
        assert matches == int(((a.words[0] != 0) & (w[:, 0] != 0)).sum())
        assert pseudo == int(w[a.words[0] != 0, 0].sum())


def test_tppe_pair_hand_example():
    # positions 0, 2, 5 non-silent (words 0b01, 0b11, 0b10); weights at 2, 3, 5 (=7, -3, 10)
    pseudo, corr, matches = L.tppe_pair(0b100101, [1, 3, 2], 0b101100, [7, -3, 10], 2)
    assert (pseudo, corr, matches) == (17, [10, 0], 2)          # O = [7, 17]
    with pytest.raises(ValueError, match="a_words_chunk"):
        L.tppe_pair(0b11, [1], 0b1, [5], 2)
    with pytest.raises(ValueError, match="b_values_chunk"):
        L.tppe_pair(0b1, [1], 0b11, [5], 2)


# ------------------------------------------------------------------------------------ SpMSpM


@pytest.mark.parametrize("shape", [(4, 5, 300, 7), (1, 1, 1, 1), (8, 3, 64, 17), (2, 16, 129, 33)])
@pytest.mark.parametrize("dx,dw", [(0.0, 0.5), (1.0, 1.0), (0.3, 0.05), (0.5, 0.0)])
@pytest.mark.parametrize("strong", [False, True])
@pytest.mark.parametrize("fiber", [8, 32, 128])
def test_spmspm_equals_dense(shape, dx, dw, strong, fiber):
    T, M, K, N = shape
    x = rand_spikes(T, M, K, dx, seed=K)
    w = rand_weights(K, N, dw, seed=N)
    out = L.spmspm(x, w, strong=strong, fiber=fiber)
    assert out.dtype == torch.int64 and out.shape == (T, M, N)
    xs = L.apply_strong(x) if strong else x
    ref = torch.stack([xs[t].long() @ w.long() for t in range(T)])
    assert torch.equal(out, ref)
    assert torch.equal(L.spmspm_reference(x, w, strong=strong), ref)


@pytest.mark.parametrize("strong", [False, True])
def test_spmspm_tppe_literal_walk(strong):
    x = rand_spikes(4, 3, 40, 0.3, seed=5)
    w = rand_weights(40, 4, 0.4, seed=6)
    assert torch.equal(L.spmspm_tppe(x, w, strong=strong, fiber=16),
                       L.spmspm(x, w, strong=strong, fiber=16))


def test_spmspm_extreme_weights():
    x = torch.ones(4, 2, 256, dtype=torch.uint8)
    w = torch.full((256, 2), -128, dtype=torch.int8)
    w[:, 1] = 127
    out = L.spmspm(x, w)
    assert out[:, :, 0].unique().tolist() == [-128 * 256]
    assert out[:, :, 1].unique().tolist() == [127 * 256]


def test_match_counts_brute_force():
    x = rand_spikes(4, 5, 37, 0.25, seed=9)
    w = rand_weights(37, 6, 0.3, seed=10)
    for strong in (False, True):
        xs = L.apply_strong(x) if strong else x
        nonsilent = xs.long().sum(0) != 0
        brute = sum(int(nonsilent[m, k] and w[k, n] != 0)
                    for m in range(5) for k in range(37) for n in range(6))
        assert L.match_count(x, w, strong=strong) == brute
    seq = sum(int(x[t, m, k] and w[k, n] != 0)
              for t in range(4) for m in range(5) for k in range(37) for n in range(6))
    assert L.match_count_sequential(x, w) == seq
    assert seq >= L.match_count(x, w) >= L.match_count(x, w, strong=True)


# ------------------------------------------------------------------------------------ layer


@pytest.mark.parametrize("strong", [False, True])
@pytest.mark.parametrize("tmask", [None, 0b1011])
def test_layer_equals_lif_of_dense(strong, tmask):
    T, M, K, N = 4, 6, 200, 5
    x = rand_spikes(T, M, K, 0.3, seed=11)
    w = rand_weights(K, N, 0.2, seed=12)
    p = LIFParams(T=T, in_width=20, mem_width=20, threshold=100)
    s, V = L.layer(x, w, p, tmask=tmask, strong=strong)
    assert s.dtype == torch.uint8 and s.shape == (T, M, N)
    assert V.dtype == torch.int64 and V.shape == (M, N)
    O = L.spmspm_reference(x, w, strong=strong)
    for m in range(M):
        ref_s, ref_V, _ = lif_integer(O[:, m, :].t(), p, tmask)
        assert torch.equal(s[:, m, :], ref_s.t())
        assert torch.equal(V[m], ref_V)


def test_layer_bad_lif():
    x = rand_spikes(4, 2, 8, 0.5)
    w = rand_weights(8, 2, 1.0)
    with pytest.raises(ValueError, match="lif.T"):
        L.layer(x, w, LIFParams(T=3))
    with pytest.raises(ValueError, match="lif"):
        L.layer(x, w, {"T": 4})
    with pytest.raises(ValueError, match="currents"):
        L.layer(torch.ones(4, 1, 8), torch.full((8, 1), 127), LIFParams(T=4, in_width=8))


# ------------------------------------------------------------------------------------ im2col


@pytest.mark.parametrize("k,stride,padding", [(3, 1, 1), (3, 2, 0), ((2, 3), 1, (0, 1)), (1, 1, 0)])
def test_im2col_conv_equivalence(k, stride, padding):
    T, C, H, W, Co = 3, 4, 7, 6, 5
    g = torch.Generator().manual_seed(4)
    x = (torch.rand(T, C, H, W, generator=g) < 0.4).to(torch.uint8)
    kh, kw = (k, k) if isinstance(k, int) else k
    wt = torch.randint(-128, 128, (Co, C, kh, kw), generator=g)
    cols = L.im2col(x, k, stride=stride, padding=padding)
    wm = L.conv_weight_matrix(wt)
    assert cols.dtype == torch.uint8 and wm.shape == (C * kh * kw, Co)
    O = L.spmspm(cols, wm)
    for t in range(T):
        ref = F.conv2d(x[t:t + 1].float(), wt.float(), stride=stride, padding=padding)[0]
        Ho, Wo = ref.shape[1:]
        assert cols.shape[1] == Ho * Wo
        got = (cols[t].long() @ wm.long()).t().reshape(Co, Ho, Wo)
        assert torch.equal(got, ref.long())
        assert torch.equal(O[t].t().reshape(Co, Ho, Wo), ref.long())


def test_im2col_bad_args():
    x = torch.zeros(2, 1, 4, 4)
    with pytest.raises(ValueError, match="kernel_size"):
        L.im2col(x, 0)
    with pytest.raises(ValueError, match="stride"):
        L.im2col(x, 3, stride=0)
    with pytest.raises(ValueError, match="padding"):
        L.im2col(x, 3, padding=-1)
    with pytest.raises(ValueError, match="x must have shape"):
        L.im2col(torch.zeros(1, 4, 4), 3)
    with pytest.raises(ValueError, match="x must be binary"):
        L.im2col(torch.full((1, 1, 4, 4), 2), 3)
    with pytest.raises(ValueError, match="weight"):
        L.conv_weight_matrix(torch.zeros(3, 3))


# ------------------------------------------------------------------------------------ errors


def test_bad_inputs_name_the_parameter():
    x = rand_spikes(4, 2, 16, 0.5)
    w = rand_weights(16, 3, 0.5)
    with pytest.raises(ValueError, match="spikes must be binary"):
        L.spmspm(x * 2, w)
    with pytest.raises(ValueError, match="spikes must be binary"):
        L.pack_spikes(x.float() * 0.5)
    with pytest.raises(ValueError, match="spikes must have shape"):
        L.spike_words(x[0])
    with pytest.raises(ValueError, match="weights must lie"):
        L.spmspm(x, w.long() * 2)
    with pytest.raises(ValueError, match="weights must lie"):
        L.compress_weights(torch.full((4, 4), 200, dtype=torch.uint8))
    with pytest.raises(ValueError, match="weights must be an integer"):
        L.spmspm(x, w.float())
    with pytest.raises(ValueError, match="weights must have shape"):
        L.spmspm(x, w[:, 0])
    with pytest.raises(ValueError, match="weights must have K=16"):
        L.spmspm(x, w[:15])
    with pytest.raises(ValueError, match="weights must have K=16"):
        L.match_count(x, w[:15])
    for bad in (12, 0, -8, 8.0, True):
        with pytest.raises(ValueError, match="fiber must be a positive multiple of 8"):
            L.spmspm(x, w, fiber=bad)
        with pytest.raises(ValueError, match="fiber"):
            L.pack_spikes(x, fiber=bad)
        with pytest.raises(ValueError, match="fiber"):
            L.compress_weights(w, fiber=bad)
    with pytest.raises(ValueError, match="strong"):
        L.spmspm(x, w, strong=1)
    with pytest.raises(ValueError, match="T"):
        L.spike_words(torch.zeros(64, 1, 1))
    with pytest.raises(ValueError, match="words"):
        L.strong_mask(torch.tensor([[-1]]))
