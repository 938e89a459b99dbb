"""Weight quantizers: exact integer outputs on small known tensors, and their use by
quantize_synapses (integer weights and scales of the compiled model)."""
import numpy as np
import pytest
import torch
from torch import nn

from snncc import nn as snn
from snncc.compiler import compile_graph, trace
from snncc.config import CompileConfig
from snncc.errors import SnnccError
from snncc.passes import quantizers as Q
from snncc.reference import interpreter as R

W = np.array([[0.5, -0.2, 0.1, 0.0],
              [1.0, 0.3, -0.6, 0.05]])


def eq(a, b):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


# ------------------------------------------------------------------------ uniform
def test_uniform_symmetric_per_channel_and_tensor():
    q = Q.uniform(W, 2)                       # q = 1, scale = max|w| per row
    eq(q.w_int, [[1, 0, 0, 0], [1, 0, -1, 0]])
    np.testing.assert_allclose(q.scale, [0.5, 1.0])
    q = Q.uniform(W, 3)                       # q = 3: scale = max / 3
    eq(q.w_int, [[3, -1, 1, 0], [3, 1, -2, 0]])
    np.testing.assert_allclose(q.scale, [0.5 / 3, 1.0 / 3])
    q = Q.uniform(W, 4, per_channel=False)    # one scale 1/7
    eq(q.w_int, [[4, -1, 1, 0], [7, 2, -4, 0]])
    np.testing.assert_allclose(q.scale, [1 / 7, 1 / 7])
    assert q.storage_bits == 4 and q.levels.shape == (2, 15)
    q = Q.uniform(W, 8)
    eq(q.w_int, [[127, -51, 25, 0], [127, 38, -76, 6]])


def test_uniform_rounds_half_away_from_zero():
    eq(Q.uniform(np.array([[1.0, 0.5, -0.5, 0.25]]), 2).w_int, [[1, 1, -1, 0]])


def test_uniform_mse_clipping_search():
    q = Q.uniform(W, 2, clip="mse")           # BRECQ's search clips row 1 to 0.8
    np.testing.assert_allclose(q.scale, [0.5, 0.8])
    eq(q.w_int, [[1, 0, 0, 0], [1, 0, -1, 0]])
    # the search never does worse than max|w| in lp error
    rng = np.random.default_rng(0)
    w = rng.normal(size=(8, 50))
    e = [np.abs(w - Q.uniform(w, 3, clip=c).dequantize()) ** 2.4 for c in ("max", "mse")]
    assert np.all(e[1].sum(1) <= e[0].sum(1) + 1e-12)


def test_asymmetric_folds_zero_point_into_integer_weights():
    q = Q.asymmetric(W, 2)
    # row 0: scale 0.7/3, z = round(0.2 / scale) = 1: codes {0..3} -> integers {-1..2}
    np.testing.assert_allclose(q.scale, [0.7 / 3, 1.6 / 3])
    eq(q.w_int, [[2, -1, 0, 0], [2, 1, -1, 0]])
    eq(q.levels, [[-1, 0, 1, 2], [-1, 0, 1, 2]])
    assert q.storage_bits == 3              # [-1, 2] is not a 2-bit two's-complement range
    # w ~= scale * (code - z) and zero stays exactly zero
    assert np.all(np.abs(q.dequantize() - W) <= q.scale[:, None] / 2 + 1e-12)
    q8 = Q.asymmetric(W, 8)
    eq(q8.w_int, [[182, -73, 36, 0], [159, 48, -96, 8]])


def test_ternary_twn():
    q = Q.ternary(W)
    # row 0: delta = 0.7 * 0.2 = 0.14 keeps 0.5, -0.2 -> alpha 0.35; row 1 keeps 1.0, -0.6
    eq(q.w_int, [[1, -1, 0, 0], [1, 0, -1, 0]])
    np.testing.assert_allclose(q.scale, [0.35, 0.8])
    assert q.storage_bits == 2
    assert Q.quantize("ternary", W, 8).w_int.tolist() == q.w_int.tolist()  # always 3 levels


# ---------------------------------------------------------------------- QP-SNN
def test_qpsnn_vanilla_eq4_6():
    q = Q.vanilla(W, 2)       # s = 3: code = round(1.5 (clamp(w) + 1)); w_int = 2 code - 3
    eq(q.w_int, [[1, -1, 1, 1], [3, 1, -1, 1]])
    np.testing.assert_allclose(q.scale, [1 / 3, 1 / 3])
    # Eq. 5: w_hat = 2 code / s - z with z = 1
    code = (q.w_int + 3) // 2
    np.testing.assert_allclose(q.dequantize(), 2 * code / 3 - 1)
    eq(q.levels[0], [-3, -1, 1, 3])
    assert q.storage_bits == 3
    # clamp to [-1, 1] in model units: a weight of 5 (unit 2 -> 2.5 model units) saturates
    eq(Q.vanilla(np.array([[5.0, -0.5]]), 2, unit=2.0).w_int, [[3, -1]])


def test_rescaw_gamma_options():
    for gamma, g, want in (("mean", 0.34375, [[3, -1, 1, 1], [3, 3, -3, 1]]),
                           ("max", 1.0, [[1, -1, 1, 1], [3, 1, -1, 1]]),
                           ("percentile", 0.65, [[3, -1, 1, 1], [3, 1, -3, 1]])):
        assert Q.rescaw_gamma(W, gamma, per_channel=False, percentile=0.9)[0] == pytest.approx(g)
        q = Q.rescaw(W, 2, per_channel=False, gamma=gamma, percentile=0.9)
        eq(q.w_int, want)
        np.testing.assert_allclose(q.scale, [g / 3, g / 3])
    # default gamma is mean|W|; per channel gives one gamma per row
    q = Q.rescaw(W, 3, per_channel=True)
    eq(q.w_int, [[7, -7, 3, 1], [7, 5, -7, 1]])
    np.testing.assert_allclose(q.scale, [0.2 / 7, 0.4875 / 7])
    with pytest.raises(ValueError):
        Q.rescaw_gamma(W, "median")


def test_rescaw_uses_the_bit_width_better_than_vanilla():
    """Eq. 8 on a narrow Gaussian layer: vanilla uses few of the 2^b codes, ReScaW all."""
    w = np.random.default_rng(0).normal(0, 0.05, (16, 64))
    van = Q.r_utilize(Q.vanilla(w, 4).w_int, 4, "vanilla")
    res = Q.r_utilize(Q.rescaw(w, 4).w_int, 4, "rescaw")
    assert van < 0.5 and res == 1.0
    assert Q.r_utilize_estimate(w, 4) < 0.5 < Q.r_utilize_estimate(w, 4, gamma=np.abs(w).mean())


# ---------------------------------------------------------------- PoT / APoT
def test_pot_levels_and_weights():
    eq(Q.pot_levels(2), [0, 1])
    eq(Q.pot_levels(3), [0, 1, 2, 4])
    eq(Q.pot_levels(4), [0, 1, 2, 4, 8, 16, 32, 64])
    eq(Q.pot_levels(8), Q.pot_levels(4))     # exponents capped: integers fit 8 bits
    q = Q.pot(W, 3)                          # alpha a power of two: 0.5 and 1.0
    eq(q.w_int, [[4, -2, 1, 0], [4, 1, -2, 0]])
    np.testing.assert_allclose(q.scale, [0.5 / 4, 1.0 / 4])
    q = Q.pot(W, 4, alpha="max")
    eq(q.w_int, [[64, -32, 16, 0], [64, 16, -32, 4]])
    assert q.storage_bits == 8
    # every non-zero integer weight is a power of two
    m = np.abs(q.w_int[q.w_int != 0])
    assert np.all(m & (m - 1) == 0)


def test_pot_alpha_is_a_power_of_two():
    w = np.random.default_rng(1).normal(0, 0.3, (4, 30))
    q = Q.pot(w, 4)
    alpha = q.scale * Q.pot_levels(4).max()
    np.testing.assert_array_equal(np.log2(alpha), np.round(np.log2(alpha)))


def test_apot_levels():
    eq(Q.apot_levels(2), [0, 1])                    # ternary
    eq(Q.apot_levels(3), Q.pot_levels(3))           # one term: PoT
    eq(Q.apot_levels(4), [0, 1, 4, 8, 9, 12, 16, 24])
    eq(Q.apot_levels(5), [0, 1, 2, 3, 4, 6, 8, 9, 12, 16, 18, 24, 32, 33, 36, 48])
    assert len(Q.apot_levels(8)) == 128             # 2^(b-1) magnitudes, 2^b - 1 levels
    # each level is a sum of at most ceil((b-1)/2) powers of two
    for b in range(2, 9):
        assert max(bin(int(v)).count("1") for v in Q.apot_levels(b)) <= b // 2  # ceil((b - 1) / 2) terms
    q = Q.apot(W, 4, alpha="max")
    eq(q.w_int, [[24, -9, 4, 0], [24, 8, -16, 1]])
    np.testing.assert_allclose(q.scale, [0.5 / 24, 1.0 / 24])


# ---------------------------------------------------------------- R_utilize
def test_r_utilize_eq8():
    assert Q.r_utilize(np.array([[3, -1, 1, 0]]), 3) == pytest.approx(4 / 7)
    assert Q.r_utilize(np.array([1, -1, 1]), 2, "rescaw") == pytest.approx(2 / 4)
    assert Q.r_utilize(np.array([0, 1, 4]), 3, "pot") == pytest.approx(3 / 7)
    assert Q.n_levels("apot", 4) == 15 and Q.n_levels("asymmetric", 2) == 4
    a = max(abs(np.quantile(W, 0.01)), abs(np.quantile(W, 0.99)))
    assert Q.r_utilize_estimate(W, 8) == pytest.approx((255 * a + 1) / 256)
    assert Q.r_utilize_estimate(W / 4, 2) == pytest.approx((3 * a / 4 + 1) / 4)


# ---------------------------------------------------------------- shared scales
def test_requantize_keeps_own_scale_channels_and_rounds_others():
    q = Q.uniform(W, 3)
    eq(Q.requantize(q, W, q.scale), q.w_int)
    shared = np.array([0.5 / 3, 0.5])          # channel 1 on a coarser shared scale
    eq(Q.requantize(q, W, shared), [[3, -1, 1, 0], [2, 1, -1, 0]])
    qp = Q.pot(W, 3)
    eq(Q.requantize(qp, W, np.array([0.125, 0.5])), [[4, -2, 1, 0], [2, 1, -1, 0]])


def test_nearest_and_neighbours():
    lv = np.array([-4, -2, -1, 0, 1, 2, 4])
    lo, hi = Q.neighbours(np.array([-5.0, -3.0, 0.0, 0.4, 3.0, 9.0]), lv)
    eq(lo, [-4, -4, 0, 0, 2, 4])
    eq(hi, [-4, -2, 0, 1, 4, 4])
    eq(Q.nearest(np.array([[-3.0, 3.0, 1.5, -1.5, 0.4]]), lv[None]), [[-4, 4, 2, -2, 0]])


# ------------------------------------------------------------- compiler wiring
def _mlp():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(12, 8), snn.LIF(beta=0.9), nn.Linear(8, 4)).eval()


@pytest.mark.parametrize("name", Q.QUANTIZERS)
def test_compiled_weights_are_the_quantizer_output(name):
    model = _mlp()
    cfg = CompileConfig(quantizer=name, weight_bits=3, steps=3)
    fg = trace(model, (12,), cfg)
    g = compile_graph(fg, cfg)
    syn = g.node("0")
    w_eff = model[0].weight.detach().double().numpy() * cfg.input_scale
    q = Q.quantize(name, w_eff, 3, per_channel=True, unit=cfg.input_scale,
                   alpha=None, gamma="mean", clip="max")
    eq(syn.weight, q.w_int)
    np.testing.assert_allclose(syn.scale, q.scale, rtol=1e-12)
    assert syn.weight_bits == q.storage_bits
    x = np.random.default_rng(0).integers(0, 256, (5, 12)).astype(np.uint8)
    assert R.run(g, x)["output"].shape == (5, 3, 4)


def test_uniform_mse_and_rescaw_options_reach_the_model():
    model = _mlp()
    for cfg, kw in ((CompileConfig(weight_clip="mse", weight_bits=2), dict(clip="mse")),
                    (CompileConfig(quantizer="rescaw", rescaw_gamma="percentile", rescaw_percentile=0.95),
                     dict(gamma="percentile", percentile=0.95))):
        g = compile_graph(trace(model, (12,), cfg), cfg)
        w_eff = model[0].weight.detach().double().numpy() * cfg.input_scale
        q = Q.quantize(cfg.quantizer, w_eff, cfg.weight_bits, True, **kw)
        eq(g.node("0").weight, q.w_int)


def test_bad_quantizer_options_are_refused():
    with pytest.raises(SnnccError, match="quantizer"):
        CompileConfig(quantizer="log")
    with pytest.raises(SnnccError, match="rescaw_percentile"):
        CompileConfig(rescaw_percentile=0.3)
    with pytest.raises(ValueError):
        Q.quantize("nope", W, 4)
