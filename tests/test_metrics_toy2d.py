"""The 2D metrics (docs/conventions.md, "2D metrics"): histogram KL / official 'JSD', the histogram and grid helpers, gnELBO, and
the golden values of the authors' code for two trained models (/work/shared/golden)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from introzoo.metrics.base import EvalContext
from introzoo.metrics.toy2d import (
    JSD,
    KL,
    Gnelbo,
    GnelboConfig,
    grid_points,
    hist_jsd,
    hist_kl,
    histogram,
    neg_elbo,
)

EPS = 1e-14
LN = math.log


# --------------------------------------------------------------------------------------------------
# hist_kl / hist_jsd by hand
# --------------------------------------------------------------------------------------------------


def test_hist_kl_hand_2x2_with_p_zero_and_q_zero():
    p = np.array([[0.2, 0.3], [0.0, 0.5]])
    q = np.array([[0.4, 0.1], [0.5, 0.0]])
    # bin (0,0): 0.2 * (ln 0.2 - ln 0.4) = 0.2 ln 0.5 = -0.138629
    # bin (0,1): 0.3 * (ln 0.3 - ln 0.1) = 0.3 ln 3   =  0.329584
    # bin (1,0): p = 0 -> contributes 0 (even though q = 0.5)
    # bin (1,1): q = 0 -> 0.5 * (ln 0.5 - ln(0 + 1e-14)) = 0.5 * (-0.693147 + 32.236191) = 15.771522
    # sum = 15.962477, divided by the 2 rows (batchmean) = 7.981238
    expected = (0.2 * LN(0.5) + 0.3 * LN(3) + 0.0 + 0.5 * (LN(0.5) - LN(1e-14))) / 2
    assert expected == pytest.approx(7.981238, abs=1e-6)
    assert hist_kl(p, q) == pytest.approx(expected, rel=1e-12)


def test_hist_kl_hand_3x3_divides_by_rows():
    # P uniform over 3 bins of the first row, Q uniform over all 9: each bin 1/3 * ln((1/3)/(1/9)) = ln3 / 3,
    # three bins -> ln 3 = 1.098612, divided by 3 rows -> ln3 / 3 = 0.366204.
    p = np.zeros((3, 3))
    p[0] = 1 / 3
    q = np.full((3, 3), 1 / 9)
    assert hist_kl(p, q) == pytest.approx(LN(3) / 3, rel=1e-12)
    # Same numbers laid out as a 1x9 array: one row, so no division: ln 3.
    assert hist_kl(p.reshape(1, 9), q.reshape(1, 9)) == pytest.approx(LN(3), rel=1e-12)
    # KL(P||P) = 0.
    assert hist_kl(q, q) == pytest.approx(0.0, abs=1e-12)


def test_hist_kl_is_not_symmetric():
    p = np.array([[0.2, 0.3], [0.0, 0.5]])
    q = np.array([[0.4, 0.1], [0.5, 0.0]])
    # KL(Q||P): (0,0) 0.4 ln 2 = 0.277259; (0,1) 0.1 ln(1/3) = -0.109861;
    # (1,0) p = 0: 0.5 (ln 0.5 - ln 1e-14) = 15.771522; (1,1) q = 0 -> 0. Sum 15.938920 / 2 = 7.969460
    expected = (0.4 * LN(2) + 0.1 * LN(1 / 3) + 0.5 * (LN(0.5) - LN(1e-14))) / 2
    assert hist_kl(q, p) == pytest.approx(expected, rel=1e-12)
    assert abs(hist_kl(q, p) - hist_kl(p, q)) > 1e-3


def test_hist_jsd_hand_with_zeros():
    p = np.array([[0.5, 0.5], [0.0, 0.0]])
    q = np.array([[0.5, 0.0], [0.5, 0.0]])
    # M = [[0.5, 0.25], [0.25, 0]]
    # KL(M||P) = 0.5 ln(0.5/0.5) + 0.25 ln(0.25/0.5) + 0.25 (ln 0.25 - ln 1e-14) + 0 (M = 0)
    #          = 0 - 0.173287 + 7.712474 = 7.539187 (before dividing by rows); KL(M||Q) is the same by symmetry.
    # official 'JSD' = 0.5 * (7.539187 + 7.539187) / 2 rows = 3.769594
    kl_mp = 0.25 * LN(0.5) + 0.25 * (LN(0.25) - LN(1e-14))
    assert hist_jsd(p, q) == pytest.approx(0.5 * (kl_mp + kl_mp) / 2, rel=1e-12)
    assert hist_jsd(p, q) == pytest.approx(3.769594, abs=1e-6)
    # textbook JSD (with the same per-row scaling): KL(P||M) = 0.5 ln 1 + 0.5 ln 2 = 0.346574, same for Q,
    # -> 0.5 * (0.346574 + 0.346574) / 2 = 0.173287: the conventions differ by a factor > 20 here.
    textbook = 0.5 * (hist_kl(p, 0.5 * (p + q)) + hist_kl(q, 0.5 * (p + q)))
    assert textbook == pytest.approx(0.5 * LN(2) / 2, rel=1e-12)
    assert hist_jsd(p, q) > 20 * textbook


def test_hist_jsd_official_differs_from_textbook_without_zeros():
    # No empty bins (so the epsilon plays no role), asymmetric p and q, one row:
    p = np.array([[0.7, 0.2, 0.1]])
    q = np.array([[0.1, 0.3, 0.6]])
    np.testing.assert_allclose(0.5 * (p + q), [[0.4, 0.25, 0.35]])  # M, the mixture
    # official: 0.5 * (KL(M||P) + KL(M||Q))
    kl_mp = (
        0.4 * LN(0.4 / 0.7) + 0.25 * LN(0.25 / 0.2) + 0.35 * LN(0.35 / 0.1)
    )  # = -0.223846 + 0.055786 + 0.438467 = 0.270407
    kl_mq = (
        0.4 * LN(0.4 / 0.1) + 0.25 * LN(0.25 / 0.3) + 0.35 * LN(0.35 / 0.6)
    )  # = 0.554518 - 0.045580 - 0.188649 = 0.320289
    official = 0.5 * (kl_mp + kl_mq)  # = 0.295348
    # textbook: 0.5 * (KL(P||M) + KL(Q||M))
    kl_pm = 0.7 * LN(0.7 / 0.4) + 0.2 * LN(0.2 / 0.25) + 0.1 * LN(0.1 / 0.35)  # = 0.391731 - 0.044629 - 0.125276 = 0.221826
    kl_qm = 0.1 * LN(0.1 / 0.4) + 0.3 * LN(0.3 / 0.25) + 0.6 * LN(0.6 / 0.35)  # = -0.138629 + 0.054696 + 0.323398 = 0.239465
    textbook = 0.5 * (kl_pm + kl_qm)  # = 0.230645
    assert official == pytest.approx(0.295348, abs=1e-6)
    assert textbook == pytest.approx(0.230645, abs=1e-6)
    assert hist_jsd(p, q) == pytest.approx(official, rel=1e-10)
    assert abs(hist_jsd(p, q) - textbook) > 0.05
    # symmetric in its two arguments (both conventions are)
    assert hist_jsd(q, p) == pytest.approx(hist_jsd(p, q), rel=1e-12)
    assert hist_jsd(p, p) == pytest.approx(0.0, abs=1e-12)


def _random_hist(rng: np.random.Generator, shape=(100, 100), zero_frac=0.3) -> np.ndarray:
    h = rng.exponential(size=shape)
    h[rng.random(shape) < zero_frac] = 0.0
    # density-like scaling as numpy.histogram2d(density=True) over [-4, 4]^2 with 100 bins: sum*0.08^2 = 1
    return h / (h.sum() * 0.08**2)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_hist_kl_and_jsd_match_official_torch_formulas(seed):
    rng = np.random.default_rng(seed)
    p, q = _random_hist(rng), _random_hist(rng)
    tp, tq = torch.from_numpy(p), torch.from_numpy(q)
    # official KL: F.kl_div(log(q + 1e-14), p, reduction="batchmean") = sum p (log p - log(q+eps)) / rows
    ref_kl = F.kl_div(torch.log(tq + EPS), tp, reduction="batchmean").item()
    assert hist_kl(p, q) == pytest.approx(ref_kl, rel=1e-10)
    # official JSD: 0.5 * (kl_div(log(P+eps), M) + kl_div(log(Q+eps), M)) = 0.5 (KL(M||P) + KL(M||Q))
    tm = 0.5 * (tp + tq)
    ref_jsd = (
        0.5
        * (
            F.kl_div(torch.log(tp + EPS), tm, reduction="batchmean")
            + F.kl_div(torch.log(tq + EPS), tm, reduction="batchmean")
        ).item()
    )
    assert hist_jsd(p, q) == pytest.approx(ref_jsd, rel=1e-10)
    # ...and it is not the textbook JSD 0.5 (KL(P||M) + KL(Q||M)).
    textbook = (
        0.5
        * (
            F.kl_div(torch.log(tm + EPS), tp, reduction="batchmean")
            + F.kl_div(torch.log(tm + EPS), tq, reduction="batchmean")
        ).item()
    )
    assert abs(hist_jsd(p, q) - textbook) > 0.01 * abs(textbook)


# --------------------------------------------------------------------------------------------------
# histogram and grid helpers
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("r, bins", [(2.0, 100), (4.0, 100), (1.0, 7)])
def test_histogram_density_integrates_to_one(r, bins):
    rng = np.random.default_rng(0)
    pts = rng.uniform(-r, r, size=(5000, 2)) * 0.999
    h = histogram(pts, bins, r)
    assert h.shape == (bins, bins)
    area = (2 * r / bins) ** 2
    assert h.sum() * area == pytest.approx(1.0, rel=1e-12)
    # same as numpy.histogram2d(..., density=True) over [-r, r]^2
    ref, _, _ = np.histogram2d(pts[:, 0], pts[:, 1], bins=bins, range=[[-r, r], [-r, r]], density=True)
    np.testing.assert_array_equal(h, ref)
    # points outside the range are ignored (the density is normalised over the points inside)
    h2 = histogram(np.concatenate([pts, [[10 * r, 0.0], [0.0, -10 * r]]]), bins, r)
    np.testing.assert_allclose(h2, h, rtol=1e-12)


def test_histogram_orientation_and_value():
    # One point in bin (x index 3, y index 0) of a 4x4 histogram over [-2, 2]^2: bins have area 1,
    # so that bin's density is 1 / (1 point * area 1) = 1 and the first index is the x coordinate.
    h = histogram(np.array([[1.5, -1.5]]), 4, 2.0)
    expected = np.zeros((4, 4))
    expected[3, 0] = 1.0
    np.testing.assert_array_equal(h, expected)


def test_grid_points_ij_order_and_corners():
    r, n = 3.0, 5
    g = grid_points(r, n)
    assert g.shape == (n * n, 2)
    t = np.linspace(-r, r, n)
    # 'ij': the first coordinate varies slowest, the second fastest
    expected = np.array([(a, b) for a in t for b in t])
    np.testing.assert_allclose(g.numpy(), expected, atol=1e-6)
    assert g[0].tolist() == [-r, -r]
    assert g[n - 1].tolist() == [-r, r]
    assert g[n].tolist() == pytest.approx([-r + 2 * r / (n - 1), -r])
    assert g[-n].tolist() == [r, -r]
    assert g[-1].tolist() == [r, r]


# --------------------------------------------------------------------------------------------------
# gnELBO on a hand-made model
# --------------------------------------------------------------------------------------------------


class _ToyModel:
    """encode(x) = (x, 0); decode(z) = 0; kl = 0.5 |mu|^2, so negELBO(x) = 0.5|x|^2 + |x - 0|^2 = 1.5 |x|^2."""

    def __init__(self):
        self.eval_calls = 0

    def eval(self):
        self.eval_calls += 1
        return self

    def encode(self, x):
        return x.clone(), torch.zeros_like(x)

    def decode(self, z):
        return z * 0

    def kl(self, mu, logvar):
        return 0.5 * mu.pow(2).sum(1)


class _FixedData:
    kind = "2d"
    metric_range = 1.0

    def __init__(self, pts):
        self.pts = torch.as_tensor(pts, dtype=torch.float32)
        self.requests = []

    def sample(self, n, generator=None):
        self.requests.append(n)
        assert isinstance(generator, torch.Generator)
        return self.pts[:n].clone()


def test_neg_elbo_toy_model():
    x = torch.tensor([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]])
    # 1.5 |x|^2 = 1.5, 6, 3
    np.testing.assert_allclose(neg_elbo(_ToyModel(), x).numpy(), [1.5, 6.0, 3.0], rtol=1e-6)
    # chunking does not change anything
    np.testing.assert_allclose(neg_elbo(_ToyModel(), x, batch_size=2).numpy(), [1.5, 6.0, 3.0], rtol=1e-6)


def test_gnelbo_by_hand():
    data = [[1.0, 0.0], [0.0, 2.0], [1.0, 1.0], [5.0, 5.0]]
    ds = _FixedData(data)
    model = _ToyModel()
    ctx = EvalContext(model, ds, torch.device("cpu"), seed=0)
    value = Gnelbo(GnelboConfig(grid=4, n_data=3)).compute(ctx)["gnelbo"]
    assert ds.requests == [3]  # only the first 3 (fixed) points are used
    # Grid 4x4 over [-1, 1]^2: t = (-1, -1/3, 1/3, 1); sum of 1.5 (x^2 + y^2) over the 16 points
    #   = 1.5 * 2 * 4 * (1 + 1/9 + 1/9 + 1) = 12 * 20/9 = 80/3 = 26.6667
    # data: negELBO = 1.5, 6, 3 -> sum 10.5, mean 3.5
    # gnELBO = mean(data) / (sum grid + sum data) * 1e7 = 3.5 / (80/3 + 10.5) * 1e7 = 941704.0...
    expected = 3.5 / (80 / 3 + 10.5) * 1e7
    assert value == pytest.approx(expected, rel=1e-6)
    # the same thing computed independently with numpy
    t = np.linspace(-1, 1, 4)
    gx, gy = np.meshgrid(t, t, indexing="ij")
    grid_ne = 1.5 * (gx**2 + gy**2)
    d = np.asarray(data[:3])
    data_ne = 1.5 * (d**2).sum(1)
    assert value == pytest.approx(data_ne.mean() / (grid_ne.sum() + data_ne.sum()) * 1e7, rel=1e-6)
    assert model.eval_calls >= 1


def test_gnelbo_uses_metric_range_and_grid_size():
    ds = _FixedData([[0.5, 0.5], [1.0, -1.0]])
    ds.metric_range = 2.0
    ctx = EvalContext(_ToyModel(), ds, torch.device("cpu"), seed=3)
    value = Gnelbo(GnelboConfig(grid=3, n_data=2)).compute(ctx)["gnelbo"]
    # grid 3x3 over [-2, 2]^2: t = (-2, 0, 2); sum of |x|^2 = 2 * 3 * (4 + 0 + 4) = 48 -> negELBO sum 72
    # data negELBO: 1.5 * 0.5 = 0.75, 1.5 * 2 = 3 -> sum 3.75, mean 1.875
    assert value == pytest.approx(1.875 / (72 + 3.75) * 1e7, rel=1e-6)


# --------------------------------------------------------------------------------------------------
# Golden values of the authors' code for two trained models
# --------------------------------------------------------------------------------------------------

GOLDEN = Path(__file__).resolve().parent / "data" / "golden"  # see its README.md


def _load_golden(name: str):
    weights, meta = GOLDEN / f"{name}_mlp.pt", GOLDEN / f"{name}_golden.json"
    from introzoo.backbones.mlp import MLPConfig, build, load_sequential_weights
    from introzoo.model import VAE
    from introzoo.priors.gaussian import StandardGaussian

    state = torch.load(weights, map_location="cpu")
    enc, dec = build(MLPConfig(), (2,), 2)
    load_sequential_weights(enc, state, "encoder")
    load_sequential_weights(dec, state, "decoder")
    model = VAE(enc, dec, StandardGaussian(2), (2,), 2)
    model.eval()
    return model, json.loads(meta.read_text())


@pytest.mark.slow
@pytest.mark.parametrize("name", ["8gaussians", "rings"])
def test_golden(name):
    from introzoo.data.toy2d import Toy2D
    from introzoo.metrics.toy2d import HistConfig

    model, gold = _load_golden(name)
    fp = gold["fixed_points"]
    x = torch.tensor(fp["x"], dtype=torch.float32)
    with torch.no_grad():
        mu, logvar = model.encode(x)
        dm = model.decode(mu)
    ne = neg_elbo(model, x)
    for got, key in ((mu, "mu"), (logvar, "logvar"), (dm, "decoded_mean"), (ne, "neg_elbo")):
        np.testing.assert_allclose(got.double().numpy(), np.asarray(fp[key]), rtol=1e-4, atol=1e-4, err_msg=key)

    ctx = EvalContext(model, Toy2D(name), torch.device("cpu"), seed=0)
    got = {}
    got.update(Gnelbo(GnelboConfig()).compute(ctx))
    got.update(KL(HistConfig()).compute(ctx))
    got.update(JSD(HistConfig()).compute(ctx))
    ms = gold["mean_std"]
    for key, gkey in (("gnelbo", "gnelbo_x1e7"), ("kl", "kl"), ("jsd", "jsd")):
        mean, std = ms[gkey]
        assert abs(got[key] - mean) <= 4 * std, f"{name} {key}: {got[key]} vs golden {mean} +- {std}"
