"""Cycle, traffic and energy models of LoAS and its baselines; synthetic Table II workloads."""

import itertools

import pytest
import torch

from snnforge.golden.loas import baselines as B
from snnforge.golden.loas import energy as E
from snnforge.golden import loas as L
from snnforge.golden.loas import workloads as W


def hand_layer():
    """T=2, M=3, K=8, N=3, small enough to count every tile by hand.

    Words (bit t = step t): row 0: k0..3 = 0b11; row 1: k4 = 0b10, k5 = 0b10, k6 = 0b11;
    row 2: even k = 0b11, odd k = 0b01. Nonzero weights: col 0 at k0..3, col 1 at k0,
    col 2 at k4..7.
    """
    words = torch.zeros(3, 8, dtype=torch.int64)
    words[0, 0:4] = 3
    words[1, 4], words[1, 5], words[1, 6] = 2, 2, 3
    words[2, 0::2] = 3
    words[2, 1::2] = 1
    x = torch.stack([(words >> t) & 1 for t in range(2)]).to(torch.uint8)
    w = torch.zeros(8, 3, dtype=torch.int8)
    w[0:4, 0] = torch.tensor([5, -1, 2, 7])
    w[0, 1] = -128
    w[4:8, 2] = torch.tensor([127, 1, -3, 9])
    return x, w


# ------------------------------------------------------------------------------------ hand examples


def test_loas_hand_example():
    x, w = hand_layer()
    # pes=2, tile_n=2, fiber=8 -> tiles (rows {0,1} | {2}) x (cols {0,1} | {2}), one K chunk.
    # PE costs: rows{0,1} cols{0,1}: row0 = 4 + 1, row1 = 0 -> 5; cols{2}: row0 0, row1 3 -> 3;
    # row2 cols{0,1}: 4 + 1 = 5; cols{2}: 4.
    r = B.loas_cycles(x, w, pes=2, tile_n=2, fiber=8)
    assert r["cycles"] == 5 + 3 + 5 + 4
    assert r["matches"] == 17
    assert r["bound"] == 8.5
    assert r["utilization"] == pytest.approx(8.5 / 17)
    # no lock-step: m-block 0 = max(row0 5, row1 3) = 5, m-block 1 = 9
    assert B.loas_cycles(x, w, pes=2, tile_n=2, fiber=8, lockstep=False)["cycles"] == 14
    # strong: row1 keeps only k6, row2 only even k -> 5 + 1 + (2 + 1) + 2
    rs = B.loas_cycles(x, w, pes=2, tile_n=2, fiber=8, strong=True)
    assert rs["cycles"] == 11
    assert rs["matches"] == L.match_count(x, w, strong=True) == 5 + 1 + 5
    # traffic: x 2*15 + 24 bits, w 8*9 + 24 bits, out 2*3*3 bits. The blocks (24 weight, 24 spike
    # positions in all) fit the default caches, so DRAM fetches each block once (compulsory);
    # SRAM reads x once per n-block (2) and w once per m-block (2)
    assert r["traffic"] == {"dram_bytes": (54 + 96 + 18) / 8,
                            "sram_bytes": (54 * 2 + 96 * 2 + 18) / 8}


def test_sparten_s_hand_example():
    x, w = hand_layer()
    # tiles (t, rows {0,1}|{2}, cols {0,1}|{2}, one chunk), PE j = column:
    # t0: [max(4,1)=4, 1, max(4,1)=4, 4]; t1: [max(4,1)=4, 3, max(2,1)=2, 2]
    r = B.sparten_s_cycles(x, w, pes=2, tile_m=2, tile_k=8)
    assert r["cycles"] == 4 + 1 + 4 + 4 + 4 + 3 + 2 + 2
    assert r["matches"] == L.match_count_sequential(x, w) == 28
    # all blocks fit the caches: DRAM = compulsory; SRAM: x per n-block, w per (m-block, t)
    assert r["traffic"] == {"dram_bytes": (48 + 96 + 18) / 8,
                            "sram_bytes": (48 * 2 + 96 * 2 * 2 + 18) / 8}


def test_gospa_s_hand_example():
    x, w = hand_layer()
    # tiles (t, K chunk of 4, cols {0,1}|{2}, all 3 rows), PE j = column:
    # t0: chunk0 max(8, 2)=8, col2 0; chunk1 0, col2 5 -> 13;  t1: 6 + 5 = 11
    r = B.gospa_s_cycles(x, w, pes=2, tile_m=3, tile_k=4)
    assert r["cycles"] == 24
    assert r["matches"] == 28
    psum = 2 * 3 * 3 * 2 * 8
    x_bits = 6 * int(x.sum())
    assert r["traffic"]["dram_bytes"] == (x_bits + 96 + psum + 18) / 8


def test_gamma_s_hand_example():
    x, w = hand_layer()
    # nnz(w[k, n-block]): cols{0,1}: k0 2, k1..3 1, k4..7 0; col{2}: k4..7 1.
    # t0: rows{0,1}: chunk0 cols{0,1} max(5,0)=5, chunk1 col2 max(0,1)=1; row2: 5 + 4
    # t1: rows{0,1}: 5 + 3; row2 (even k): 3 + 2
    r = B.gamma_s_cycles(x, w, pes=2, tile_k=4, tile_n=2)
    assert r["cycles"] == (5 + 1 + 5 + 4) + (5 + 3 + 3 + 2)
    assert r["matches"] == 28
    # T = 2 <= 3: no partial-sum spill
    x_bits, w_bits = 6 * int(x.sum()), 14 * 9
    assert r["traffic"]["dram_bytes"] == (x_bits + w_bits + 18) / 8


# ------------------------------------------------------------------------------------ brute force


def loop_loas(x, w, pes, fiber, tile_n, lockstep):
    T, M, K = x.shape
    N = w.shape[1]
    ns = x.long().sum(0) != 0
    nz = w != 0
    total, per_pe_total = 0, {}
    for m0 in range(0, M, pes):
        for n0 in range(0, N, tile_n):
            for k0 in range(0, K, fiber):
                costs = []
                for m in range(m0, min(m0 + pes, M)):
                    c = sum(int(ns[m, k] and nz[k, n]) for n in range(n0, min(n0 + tile_n, N))
                            for k in range(k0, min(k0 + fiber, K)))
                    costs.append(c)
                    per_pe_total[m] = per_pe_total.get(m, 0) + c
                total += max(costs)
    if lockstep:
        return total
    return sum(max(per_pe_total[m] for m in range(m0, min(m0 + pes, M)))
               for m0 in range(0, M, pes))


def loop_column_per_pe(x, w, pes, tile_m, tile_k):
    T, M, K = x.shape
    N = w.shape[1]
    total = 0
    for t, m0, n0, k0 in itertools.product(range(T), range(0, M, tile_m), range(0, N, pes),
                                           range(0, K, tile_k)):
        total += max(sum(int(x[t, m, k] and w[k, n] != 0)
                         for m in range(m0, min(m0 + tile_m, M))
                         for k in range(k0, min(k0 + tile_k, K)))
                     for n in range(n0, min(n0 + pes, N)))
    return total


def loop_gamma(x, w, pes, tile_k, tile_n):
    T, M, K = x.shape
    N = w.shape[1]
    total = 0
    for t, m0, k0, n0 in itertools.product(range(T), range(0, M, pes), range(0, K, tile_k),
                                           range(0, N, tile_n)):
        total += max(sum(int(x[t, m, k]) * int((w[k, n0:n0 + tile_n] != 0).sum())
                         for k in range(k0, min(k0 + tile_k, K)))
                     for m in range(m0, min(m0 + pes, M)))
    return total


@pytest.mark.parametrize("seed", [0, 1])
def test_cycle_models_match_literal_loops(seed):
    g = torch.Generator().manual_seed(seed)
    T, M, K, N = 3, 7, 21, 9
    x = (torch.rand(T, M, K, generator=g) < 0.3).to(torch.uint8)
    w = torch.randint(-128, 128, (K, N), generator=g)
    w[torch.rand(K, N, generator=g) < 0.6] = 0
    for lockstep in (True, False):
        got = B.loas_cycles(x, w, pes=3, fiber=8, tile_n=4, lockstep=lockstep)["cycles"]
        assert got == loop_loas(x, w, 3, 8, 4, lockstep)
    assert B.sparten_s_cycles(x, w, pes=4, tile_m=3, tile_k=8)["cycles"] == \
        loop_column_per_pe(x, w, 4, 3, 8)
    assert B.gospa_s_cycles(x, w, pes=2, tile_m=5, tile_k=16)["cycles"] == \
        loop_column_per_pe(x, w, 2, 5, 16)
    assert B.gamma_s_cycles(x, w, pes=3, tile_k=8, tile_n=4)["cycles"] == loop_gamma(x, w, 3, 8, 4)


# ------------------------------------------------------------------------------------ invariants


@pytest.mark.parametrize("name", ["A-L4", "V-L8", "R-L19"])
def test_ordering_invariants_on_synthetic_layers(name):
    x, w = W.synthetic_layer(name, seed=1)
    lock = B.loas_cycles(x, w)
    free = B.loas_cycles(x, w, lockstep=False)
    assert lock["matches"] == free["matches"] == L.match_count(x, w)
    assert lock["cycles"] >= free["cycles"] >= lock["bound"]
    assert 0 < lock["utilization"] <= free["utilization"] <= 1
    ft = B.loas_cycles(x, w, strong=True)
    assert ft["matches"] <= lock["matches"]
    seq = L.match_count_sequential(x, w)
    assert seq >= lock["matches"]
    for f in (B.sparten_s_cycles, B.gospa_s_cycles, B.gamma_s_cycles):
        r = f(x, w)
        assert r["matches"] == seq
        assert r["cycles"] >= r["bound"] and r["utilization"] <= 1
        assert r["traffic"]["dram_bytes"] > 0 and r["traffic"]["sram_bytes"] > 0


def test_empty_and_zero_layers():
    x = torch.zeros(4, 5, 40, dtype=torch.uint8)
    w = torch.zeros(40, 6, dtype=torch.int8)
    for f in (B.loas_cycles, B.sparten_s_cycles, B.gospa_s_cycles, B.gamma_s_cycles):
        r = f(x, w)
        assert r["cycles"] == r["matches"] == 0 and r["utilization"] == 0.0


def test_baseline_table():
    x, w = W.synthetic_layer("V-L8", seed=2)
    rows = B.baseline_table(x, w, strong=True)
    names = [r["design"] for r in rows]
    assert names == ["SparTen-S", "GoSPA-S", "Gamma-S", "LoAS", "LoAS (no lock-step)", "LoAS-FT"]
    assert rows[0]["speedup"] == 1.0 and rows[0]["efficiency"] == 1.0
    by = {r["design"]: r for r in rows}
    assert by["LoAS"]["speedup"] > by["Gamma-S"]["speedup"] > 1
    assert by["LoAS (no lock-step)"]["speedup"] >= by["LoAS"]["speedup"]
    assert by["LoAS-FT"]["cycles"] <= by["LoAS"]["cycles"]
    for r in rows:
        assert r["energy"] > 0
        assert r["speedup"] == pytest.approx(rows[0]["cycles"] / r["cycles"])
    assert len(B.baseline_table(x, w)) == 5


def test_bad_arguments():
    x, w = hand_layer()
    with pytest.raises(ValueError, match="pes"):
        B.loas_cycles(x, w, pes=0)
    with pytest.raises(ValueError, match="fiber"):
        B.loas_cycles(x, w, fiber=12)
    with pytest.raises(ValueError, match="tile_n"):
        B.gamma_s_cycles(x, w, tile_n=-1)
    with pytest.raises(ValueError, match="lockstep"):
        B.loas_cycles(x, w, lockstep=None)
    with pytest.raises(ValueError, match="weights must have K"):
        B.sparten_s_cycles(x, w[:7])
    with pytest.raises(ValueError, match="spikes must be binary"):
        B.gospa_s_cycles(x * 3, w)


# ------------------------------------------------------------------------------------ energy


def test_energy_formula_hand_example():
    # 800 cycles = 1 µs at 800 MHz; LoAS P_leak = 124.98 mW, E_op = 5.8 pJ
    assert E.energy("loas", 800, 10, 100, 5) == pytest.approx(124.98 + 29.0 + 6.81 + 29.0)
    assert E.energy("sparten_s", 0, 0, 0, 2) == pytest.approx(12.3)
    assert E.energy("gospa_s", 1600, 0, 0, 1) == pytest.approx(2 * 179 + 1.34 * 1.3)
    assert E.energy("gamma_s", 800, 1, 0, 8) == pytest.approx(148.32 + 2.9 + 4.98 * 6)
    assert E.energy("loas", 0, 1, 0, 0, dram_factor=E.DRAM_FACTOR_ANN) == pytest.approx(9.6)
    with pytest.raises(ValueError, match="design must be one of"):
        E.energy("eyeriss", 1, 1, 1, 1)
    with pytest.raises(ValueError, match="cycles"):
        E.energy("loas", -1, 1, 1, 1)
    with pytest.raises(ValueError, match="ops"):
        E.energy("loas", 1, 1, 1, float("nan"))


# ------------------------------------------------------------------------------------ workloads


@pytest.mark.parametrize("name", ["A-L4", "V-L8", "R-L19"])
def test_synthetic_layer_statistics(name):
    x, w = W.synthetic_layer(name, T=4, seed=0)
    tgt = W.TABLE_II[name]
    M, K, N = tgt.shape
    assert x.shape == (4, M, K) and x.dtype == torch.uint8
    assert w.shape == (K, N) and w.dtype == torch.int8
    st = W.layer_stats(x, w)
    for key in ("spike_sparsity", "silent_normal", "silent_strong", "weight_sparsity"):
        assert st[key] == pytest.approx(getattr(tgt, key), abs=0.015), key
    vals = w[w != 0].long()
    assert vals.min() >= -128 and vals.max() <= 127


def test_synthetic_layer_deterministic_and_shapes():
    a = W.synthetic_layer("R-L19", seed=3, shape=(4, 100, 7))
    b = W.synthetic_layer("R-L19", seed=3, shape=(4, 100, 7))
    c = W.synthetic_layer("R-L19", seed=4, shape=(4, 100, 7))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], c[0])
    assert a[0].shape == (4, 4, 100) and a[1].shape == (100, 7)
    custom = W.WorkloadStats(0.5, 0.3, 0.4, 0.9)
    x, w = W.synthetic_layer(custom, shape=(8, 64, 8))
    assert x.shape == (4, 8, 64)
    with pytest.raises(ValueError, match="shape"):
        W.synthetic_layer(custom)
    with pytest.raises(ValueError, match="name_or_stats"):
        W.synthetic_layer("LeNet")
    with pytest.raises(ValueError, match="silent_strong"):
        W.WorkloadStats(0.5, 0.4, 0.3, 0.9)


@pytest.mark.parametrize("T", [1, 2, 3, 4, 6, 8])
def test_popcount_distribution(T):
    for name, st in W.TABLE_II.items():
        P = W.popcount_distribution(name, T)
        assert len(P) == T + 1 and all(p >= 0 for p in P)
        assert sum(P) == pytest.approx(1.0)
        assert P[0] == pytest.approx(st.silent_normal)
        if T == 4:
            mean = sum(j * p for j, p in enumerate(P))
            assert mean / T == pytest.approx(1 - st.spike_sparsity)
            assert P[1] == pytest.approx(st.silent_strong - st.silent_normal)
    x, _ = W.synthetic_layer("V-L8", T=T, shape=(8, 256, 4))
    assert x.shape == (T, 8, 256)


# ------------------------------------------------------------------------------------ cache model


def test_fifo_cache_hit_and_counters():
    c = B.FifoCache(10)
    assert c.access("a", 4) is False
    assert c.access("a", 4) is True
    assert c.access("b", 6) is False and c.used == 10
    assert c.access("b", 6) is True
    assert (c.hits, c.misses, c.elements) == (2, 2, 10)
    assert c.stats() == {"hits": 2, "misses": 2, "elements": 10}
    with pytest.raises(ValueError, match="capacity"):
        B.FifoCache(0)
    with pytest.raises(ValueError, match="size"):
        c.access("z", -1)


def test_fifo_cache_evicts_oldest_first_and_ignores_hits():
    c = B.FifoCache(10)
    for key in "abc":
        c.access(key, 3)
    assert c.access("a", 3) is True          # a hit does not move "a" to the back (FIFO, not LRU)
    c.access("d", 3)                          # 12 > 10: evict the oldest block, "a"
    assert c.blocks == ("b", "c", "d") and "a" not in c and c.used == 9
    c.access("e", 5)                          # needs two evictions: "b" then "c"
    assert c.blocks == ("d", "e") and c.used == 8
    assert c.access("a", 3) is False          # "a" was evicted: a miss again
    assert c.blocks == ("e", "a")              # 11 > 10 evicted "d"
    assert (c.hits, c.misses, c.elements) == (1, 6, 3 * 4 + 5 + 3)


def test_fifo_cache_oversize_block_streams_through():
    c = B.FifoCache(10)
    c.access("a", 4)
    assert c.access("big", 11) is False
    assert c.access("big", 11) is False       # never kept, never a hit
    assert c.blocks == ("a",) and c.used == 4  # and it evicts nothing
    assert c.access("full", 6) is False and c.used == 10   # exactly the capacity fits
    assert (c.hits, c.misses, c.elements) == (0, 4, 4 + 22 + 6)


def random_layer(seed, T, M, K, N, p_spike=0.3, p_zero_w=0.6):
    g = torch.Generator().manual_seed(seed)
    x = (torch.rand(T, M, K, generator=g) < p_spike).to(torch.uint8)
    w = torch.randint(-128, 128, (K, N), generator=g)
    w[torch.rand(K, N, generator=g) < p_zero_w] = 0
    return x, w


def compulsory_bits(x, w):
    """DRAM bits when every block is fetched exactly once (the sums over blocks = the totals)."""
    T, M, K = x.shape
    N = w.shape[1]
    spikes, nnz = int(x.sum()), int((w != 0).sum())
    nonsilent = int((x.sum(0) != 0).sum())
    o = T * M * N
    return {
        "loas": (T * nonsilent + M * K) + (8 * nnz + K * N) + o,
        "sparten_s": T * M * K + (8 * nnz + K * N) + o,
        "gospa_s": 6 * spikes + (8 * nnz + K * N) + 2 * M * N * T * 8 + o,
        "gamma_s": (6 * spikes + 14 * nnz + o) * (1 + max(T - 3, 0) / T),
    }


MODELS = {"loas": B.loas_cycles, "sparten_s": B.sparten_s_cycles, "gospa_s": B.gospa_s_cycles,
          "gamma_s": B.gamma_s_cycles}


@pytest.mark.parametrize("big_caches", [False, True])
def test_dram_is_compulsory_when_operands_fit(big_caches):
    if big_caches:   # several blocks along every axis, caches large enough for everything
        x, w = random_layer(5, 4, 70, 600, 90)
        kw = {"weight_cache": 10**7, "spike_cache": 10**7}
    else:            # default caches: the whole operands fit each design's two caches
        x, w = random_layer(6, 4, 16, 100, 30)
        T, M, K = x.shape
        N = w.shape[1]
        for design, (wcap, xcap) in B.CACHE_ELEMENTS.items():
            assert K * N <= wcap and (M * K if design == "loas" else T * M * K) <= xcap
        kw = {}
    want = compulsory_bits(x, w)
    for design, f in MODELS.items():
        r = f(x, w, **kw)
        assert r["traffic"]["dram_bytes"] == pytest.approx(want[design] / 8), design
        for c in r["cache"].values():        # each block missed once, then only hits
            assert c["dram_bytes"] <= c["sram_bytes"]
        assert r["cache"]["spikes"]["elements"] == (x.shape[1] * x.shape[2] if design == "loas"
                                                    else x.numel())
        assert r["cache"]["weights"]["elements"] == w.numel()


def test_loas_weights_refetched_per_m_block():
    # M=64 -> 4 m-blocks; K=512, N=64 -> 4 chunks x 2 n-blocks = 8 weight blocks of 128*32, while
    # LoAS's weight cache holds 128*32 elements (one block): every weight access misses. The 4 spike
    # blocks of an m-block (4 * 16*128 elements) stay in the 128*1024 spike cache across n-blocks.
    x, w = random_layer(7, 4, 64, 512, 64, p_zero_w=0.95)
    T, M, K = x.shape
    N = w.shape[1]
    r = B.loas_cycles(x, w)
    w_bits = 8 * int((w != 0).sum()) + K * N
    x_bits = T * int((x.sum(0) != 0).sum()) + M * K
    assert r["cache"]["weights"]["dram_bytes"] == 4 * w_bits / 8
    assert r["cache"]["weights"]["hits"] == 0 and r["cache"]["weights"]["misses"] == 4 * 2 * 4
    assert r["cache"]["spikes"]["dram_bytes"] == x_bits / 8
    assert r["cache"]["spikes"]["misses"] == 16 and r["cache"]["spikes"]["hits"] == 16
    assert r["traffic"]["dram_bytes"] == (4 * w_bits + x_bits + T * M * N) / 8
    # SRAM: spikes read once per n-block, weights once per m-block, outputs once
    assert r["traffic"]["sram_bytes"] == (2 * x_bits + 4 * w_bits + T * M * N) / 8
    # a weight cache holding all 8 blocks brings the weights back to compulsory traffic
    big = B.loas_cycles(x, w, weight_cache=8 * 128 * 32)
    assert big["cache"]["weights"]["dram_bytes"] == w_bits / 8
    assert big["cycles"] == r["cycles"]


@pytest.mark.parametrize("name", ["A-L4", "V-L8", "R-L19"])
def test_sram_traffic_at_least_dram(name):
    x, w = W.synthetic_layer(name, seed=0)
    for design, f in MODELS.items():
        r = f(x, w)
        assert r["traffic"]["sram_bytes"] >= r["traffic"]["dram_bytes"] > 0, design
        for c in r["cache"].values():
            assert c["sram_bytes"] >= c["dram_bytes"] > 0
            assert c["misses"] >= 1 and c["elements"] > 0


# literal reference: plain nested loops over the tiles, a list-and-dict FIFO, bits counted per element


class RefFifo:
    def __init__(self, cap):
        self.cap, self.order, self.size = cap, [], {}
        self.hits = self.misses = self.elements = 0

    def access(self, key, size):
        if key in self.size:
            self.hits += 1
            return True
        self.misses += 1
        self.elements += size
        if size <= self.cap:
            while sum(self.size.values()) + size > self.cap:
                del self.size[self.order.pop(0)]
            self.order.append(key)
            self.size[key] = size
        return False


def rng(lo, step, hi):
    return range(lo, min(lo + step, hi))


def ref_walk(design, x, w, tiles, wcap, xcap):
    T, M, K = x.shape
    N = w.shape[1]
    xl, wl = x.tolist(), w.tolist()
    xc, wc = RefFifo(xcap), RefFifo(wcap)
    acc = {"xd": 0, "xs": 0, "wd": 0, "ws": 0}

    def visit(t, ms, ks, ns):
        if design == "loas":
            xkey = (ms[0], ks[0])
            xb = sum((T if any(xl[u][m][k] for u in range(T)) else 0) + 1 for m in ms for k in ks)
        else:
            xkey = (t, ms[0], ks[0])
            if design == "sparten_s":
                xb = len(ms) * len(ks)
            else:
                xb = sum(6 * xl[t][m][k] for m in ms for k in ks)
        if design == "gamma_s":
            wb = sum(14 * (wl[k][n] != 0) for k in ks for n in ns)
        else:
            wb = sum(8 * (wl[k][n] != 0) + 1 for k in ks for n in ns)
        acc["xs"] += xb
        acc["ws"] += wb
        if not xc.access(xkey, len(ms) * len(ks)):
            acc["xd"] += xb
        if not wc.access((ks[0], ns[0]), len(ks) * len(ns)):
            acc["wd"] += wb

    if design == "loas":                      # mntk, T packed
        pes, fiber, tile_n = tiles
        for m0 in range(0, M, pes):
            for n0 in range(0, N, tile_n):
                for k0 in range(0, K, fiber):
                    visit(None, rng(m0, pes, M), rng(k0, fiber, K), rng(n0, tile_n, N))
    elif design == "sparten_s":               # nmtk
        pes, tile_m, tile_k = tiles
        for n0 in range(0, N, pes):
            for m0 in range(0, M, tile_m):
                for t in range(T):
                    for k0 in range(0, K, tile_k):
                        visit(t, rng(m0, tile_m, M), rng(k0, tile_k, K), rng(n0, pes, N))
    elif design == "gospa_s":                 # kntm
        pes, tile_m, tile_k = tiles
        for k0 in range(0, K, tile_k):
            for n0 in range(0, N, pes):
                for t in range(T):
                    for m0 in range(0, M, tile_m):
                        visit(t, rng(m0, tile_m, M), rng(k0, tile_k, K), rng(n0, pes, N))
    else:                                     # gamma_s, mktn
        pes, tile_k, tile_n = tiles
        for m0 in range(0, M, pes):
            for k0 in range(0, K, tile_k):
                for t in range(T):
                    for n0 in range(0, N, tile_n):
                        visit(t, rng(m0, pes, M), rng(k0, tile_k, K), rng(n0, tile_n, N))
    o = T * M * N
    dram, sram = acc["xd"] + acc["wd"] + o, acc["xs"] + acc["ws"] + o
    if design == "gospa_s":
        dram, sram = dram + 2 * M * N * T * 8, sram + 2 * M * N * T * 8
    if design == "gamma_s":
        dram *= 1 + max(T - 3, 0) / T
    stats = {"spikes": (xc.hits, xc.misses, xc.elements, acc["xd"] / 8, acc["xs"] / 8),
             "weights": (wc.hits, wc.misses, wc.elements, acc["wd"] / 8, acc["ws"] / 8)}
    return dram / 8, sram / 8, stats


REF_TILES = {"loas": (3, 8, 4), "sparten_s": (4, 3, 8), "gospa_s": (2, 5, 16), "gamma_s": (3, 8, 4)}
REF_KW = {"loas": ("pes", "fiber", "tile_n"), "sparten_s": ("pes", "tile_m", "tile_k"),
          "gospa_s": ("pes", "tile_m", "tile_k"), "gamma_s": ("pes", "tile_k", "tile_n")}


@pytest.mark.parametrize("T", [2, 5])
def test_cache_walk_matches_literal_reference(T):
    x, w = random_layer(T, T, 7, 21, 9)
    caps = [(10**6, 10**6), (1, 1), (40, 30), (70, 50), (100, 130)]   # first: everything fits
    hits = refetches = 0
    distinct = {}
    for wcap, xcap in caps:
        for design, f in MODELS.items():
            tiles = REF_TILES[design]
            r = f(x, w, weight_cache=wcap, spike_cache=xcap, **dict(zip(REF_KW[design], tiles)))
            dram, sram, stats = ref_walk(design, x, w, tiles, wcap, xcap)
            assert r["traffic"]["dram_bytes"] == pytest.approx(dram, rel=1e-12), (design, wcap)
            assert r["traffic"]["sram_bytes"] == sram, (design, wcap)
            for cache, want in stats.items():
                c = r["cache"][cache]
                got = (c["hits"], c["misses"], c["elements"], c["dram_bytes"], c["sram_bytes"])
                assert got == want, (design, cache, wcap, xcap)
                # with the huge caches the misses are the distinct blocks; more misses = refetches
                n = distinct.setdefault((design, cache), c["misses"])
                hits += c["hits"]
                refetches += c["misses"] > n
    assert hits > 0 and refetches > 0          # the cases exercise both hits and refetches
