"""The digits ViT: attention reuse's semantics, the reuse search, the integer model (its
LayerNorm, requantization, agreement with float), and the integer model on the RTL units equal
to it bit for bit."""

import pytest
import torch

from snnforge.flows import run_job
from snnforge.golden.common.digits import load_digits_split
from snnforge.golden.trex.params import XbarParams
from snnforge.golden.trex.vit import (DigitsViT, ViTConfig, evaluate, finetune, patches,
                                      reuse_sources, search_reuse, train_vit)
from snnforge.golden.trex.vit_int import (GoldenOps, IntViT, int_layernorm, requant, rescale)
from snnforge.sim.trex.vit_rtl import RtlOps, encoders_on_core

SMALL = ViTConfig(dim=16, heads=2, mlp=32, depth=3)
#: A tile that holds the small model's layers in one or two loads.
TILE = XbarParams(rows=32, cols=64, cell_bits=2, cols_per_adc=4)


@pytest.fixture(scope="module")
def digits():
    return load_digits_split()


@pytest.fixture(scope="module")
def trained(digits):
    x_train, y_train, _, _ = digits
    return train_vit(x_train, y_train, SMALL, epochs=20)


def test_patches_keep_the_pixels():
    images = torch.arange(2 * 64, dtype=torch.float32).reshape(2, 8, 8)
    p = patches(images, 2)
    assert p.shape == (2, 16, 4) and p[0, 1].tolist() == [2, 3, 10, 11]
    assert sorted(p[1].reshape(-1).tolist()) == images[1].reshape(-1).tolist()


def test_reuse_takes_the_latest_computing_encoder():
    assert reuse_sources((1, 2), 4) == {1: 0, 2: 0}
    assert reuse_sources((1, 3), 4) == {1: 0, 3: 2}
    with pytest.raises(ValueError, match="encoder 0 computes"):
        reuse_sources((0,), 4)


def test_a_reusing_encoder_skips_its_attention():
    """The reusing encoder's attention weights do not matter; the TB's do."""
    torch.manual_seed(0)
    model = DigitsViT(SMALL).eval()
    images = torch.rand(3, 8, 8) * 16
    with torch.no_grad():
        before = model(images, reuse=(2,))
        for p in model.encoders[2].attn.parameters():
            p.add_(1.0)
        assert torch.equal(model(images, reuse=(2,)), before)
        model.encoders[2].tb[1].weight.add_(1.0)
        assert not torch.equal(model(images, reuse=(2,)), before)


def test_training_learns_and_reuse_keeps_most_of_it(digits, trained):
    x_train, y_train, x_test, y_test = digits
    base = evaluate(trained, x_test, y_test)
    assert base > 0.8
    tuned = finetune(trained, x_train, y_train, (2,), epochs=3)
    assert evaluate(tuned, x_test, y_test, (2,)) > 0.7


def test_search_picks_the_most_accurate_set_within_the_target(digits, trained):
    x_train, y_train, x_test, y_test = digits
    cost = lambda reuse: 10 - len(reuse)
    rows = search_reuse(trained, x_train[:200], y_train[:200], x_test, y_test, cost, 8.5,
                        epochs=1)
    assert len(rows) == 4 and sum(r.get("chosen", False) for r in rows) == 1
    assert [r["within_target"] for r in rows] == [False, False, False, True]
    assert rows[-1]["chosen"] and rows[-1]["reuse"] == [1, 2]


def test_integer_layernorm_and_requantization():
    x = torch.tensor([[-263, -1218, -352, 120, -932, -26, 927, -28]])
    got = int_layernorm(x, torch.full((8,), 40 << 8), torch.zeros(8, dtype=torch.long))
    want = torch.nn.functional.layer_norm(x.double(), (8,)) * 40
    assert (got - want).abs().max() <= 1
    assert int_layernorm(torch.full((1, 4), 7), torch.ones(4, dtype=torch.long) << 8,
                         torch.tensor([1, 2, 3, 4])).tolist() == [[1, 2, 3, 4]]
    M, S = rescale(0.3)
    assert abs(M / 2 ** S - 0.3) < 1e-4 and M < 1 << 16
    assert requant(torch.tensor([1000, -1000, 10]), M, S).tolist() == [127, -128, 3]


def test_integer_model_agrees_with_float(digits, trained):
    x_train, _, x_test, y_test = digits
    model = IntViT(trained, x_train[:200], tile=TILE)
    ops = GoldenOps(TILE, model.attn, adc_shift=0)
    pred = model.predict(x_test[:150], ops)
    with torch.no_grad():
        float_pred = trained(x_test[:150]).argmax(1)
    assert float((pred == float_pred).float().mean()) >= 0.9
    assert ops.counts["attention_rows"] == 150 * SMALL.heads * SMALL.tokens * SMALL.depth


def test_integer_model_on_the_rtl_units_equals_the_golden_backend(digits, trained):
    """Every crossbar matmul on the xbar core and every head on the attn core, under
    Verilator: the logits equal the golden backend's bit for bit (encoders 0 and 1 compute
    their attention, encoder 2 reuses encoder 1's)."""
    x_train, _, x_test, _ = digits
    model = IntViT(trained, x_train[:100], (2,), tile=TILE)
    golden = GoldenOps(TILE, model.attn, adc_shift=0)
    rtl = RtlOps(run_job, TILE, model.attn, adc_shift=0, dma_width=64)
    assert torch.equal(model.logits(x_test[:2], rtl), model.logits(x_test[:2], golden))
    assert rtl.counts["xbar_reads"] == golden.counts["reads"]
    assert rtl.counts["attn_rows"] == golden.counts["attention_rows"] == 2 * 2 * 16 * 2
    assert rtl.counts["attn_macs"] == golden.counts["attention_macs"]


def test_encoder_stack_on_the_trex_core_equals_the_golden_backend(digits, trained):
    """The whole encoder stack (encoder 2 reusing encoder 1's attention) on the encoder core
    under Verilator: the logits equal the integer golden model's bit for bit."""
    x_train, _, x_test, _ = digits
    model = IntViT(trained, x_train[:100], (2,), tile=TILE)
    golden = GoldenOps(TILE, model.attn, adc_shift=0)
    logits, done = encoders_on_core(run_job, model, x_test[:3], golden, dma_width=64,
                                    adc_shift=0)
    assert torch.equal(logits, model.logits(x_test[:3], GoldenOps(TILE, model.attn,
                                                                  adc_shift=0)))
    c = done.result.counters
    assert (c["computed"], c["reused"]) == (3 * 2, 3 * 1)
    assert c["attention_rows"] == 3 * 2 * SMALL.heads * SMALL.tokens
