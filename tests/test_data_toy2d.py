"""Statistical tests of the four 2D generators against their definitions (docs/conventions.md, "Data").

Every test draws from an explicitly seeded ``torch.Generator`` (so results are reproducible) with
n = 20,000-50,000; tolerances are a few (>= 5) standard errors of the quantity checked, so the tests
are deterministic and meaningful at the same time.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from introzoo.data.toy2d import Toy2D, checkerboard, eight_gaussians, rings, two_spirals

GENS = {"8gaussians": eight_gaussians, "2spirals": two_spirals, "checkerboard": checkerboard, "rings": rings}
N = 40_000


def gen(seed: int) -> torch.Generator:
    g = torch.Generator()
    g.manual_seed(seed)
    return g


def draw(name: str, n: int = N, seed: int = 1234) -> np.ndarray:
    x = GENS[name](n, gen(seed))
    assert isinstance(x, torch.Tensor)
    assert x.shape == (n, 2)
    assert torch.isfinite(x).all()
    return x.double().numpy()


# --------------------------------------------------------------------------------------------------
# 8gaussians: centres 2*(±1,0), 2*(0,±1), 2*(±1/√2, ±1/√2), + N(0, 0.02²), all / 1.414
# --------------------------------------------------------------------------------------------------

S2 = 1.0 / math.sqrt(2.0)
CENTRES_8G = 2.0 * np.array([(1, 0), (-1, 0), (0, 1), (0, -1), (S2, S2), (S2, -S2), (-S2, S2), (-S2, -S2)]) / 1.414
STD_8G = 0.02 / 1.414


def _assign_8g(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    d = np.linalg.norm(x[:, None, :] - CENTRES_8G[None, :, :], axis=2)  # (n, 8)
    k = d.argmin(1)
    return k, x - CENTRES_8G[k]


def test_8gaussians_points_near_a_centre():
    x = draw("8gaussians")
    k, resid = _assign_8g(x)
    # 80,000 standard normal coordinates: P(|z| > 6) ~ 2e-9 each, so none should be beyond 6 std.
    assert np.abs(resid).max() < 6 * STD_8G
    # ... and the noise is really there (not a point mass on the centres).
    assert np.abs(resid).max() > 3 * STD_8G
    # Everything lies on the circle of radius 2/1.414 up to noise.
    r = np.linalg.norm(x, axis=1)
    assert np.abs(r - 2 / 1.414).max() < 6 * STD_8G


def test_8gaussians_modes_uniform():
    x = draw("8gaussians")
    k, _ = _assign_8g(x)
    counts = np.bincount(k, minlength=8)
    expected = N / 8
    sd = math.sqrt(N * (1 / 8) * (7 / 8))  # binomial std ~ 66
    assert (np.abs(counts - expected) < 5 * sd).all(), counts


def test_8gaussians_within_mode_std_and_mean():
    x = draw("8gaussians")
    _, resid = _assign_8g(x)
    # 2N residual coordinates; relative std error of the std ~ 1/sqrt(4N) ~ 0.25%: allow 2%.
    std = resid.std()
    assert std == pytest.approx(STD_8G, rel=0.02)
    # Both coordinates separately, and centred on the centre (se of mean = STD/sqrt(N)).
    for j in range(2):
        assert resid[:, j].std() == pytest.approx(STD_8G, rel=0.03)
        assert abs(resid[:, j].mean()) < 5 * STD_8G / math.sqrt(N)


# --------------------------------------------------------------------------------------------------
# 2spirals: t = sqrt(U)*3π; arm 1 (-cos t * t + 0.5U', sin t * t + 0.5U''), arm 2 = -arm 1; /3; + 0.1 N(0,I)
# --------------------------------------------------------------------------------------------------


def _spirals_reference(n: int, rng: np.random.Generator, noise: bool = True) -> np.ndarray:
    """Independent numpy implementation of the documented formula (not the code under test)."""
    h = n // 2
    t = np.sqrt(rng.random(h)) * 3 * np.pi
    a = np.stack([-np.cos(t) * t + 0.5 * rng.random(h), np.sin(t) * t + 0.5 * rng.random(h)], axis=1)
    x = np.concatenate([a, -a]) / 3
    if noise:
        x = x + 0.1 * rng.standard_normal(x.shape)
    return x


def test_2spirals_point_symmetric_mean_zero():
    x = draw("2spirals")
    # The noise-free parts of the two arms cancel exactly, so the mean is the mean of the noise:
    # standard error 0.1/sqrt(N) = 5e-4 per coordinate.
    assert np.abs(x.mean(0)).max() < 5 * 0.1 / math.sqrt(N)
    # Distribution-level point symmetry: the quadrant counts of x and -x agree.
    q = (x[:, 0] > 0).astype(int) * 2 + (x[:, 1] > 0).astype(int)
    counts = np.bincount(q, minlength=4)
    # quadrant of -x is 3 - q
    sd = math.sqrt(N * 0.25)
    assert abs(counts[0] - counts[3]) < 5 * sd * math.sqrt(2)
    assert abs(counts[1] - counts[2]) < 5 * sd * math.sqrt(2)


def test_2spirals_arm_pairs_and_noise_level():
    # As in the official code, the first half is arm 1 and the second half its negation, noise added
    # afterwards: x[i] + x[i + n/2] = noise_i + noise_{i+n/2} ~ N(0, 2 * 0.1²) per coordinate.
    x = draw("2spirals")
    s = x[: N // 2] + x[N // 2 :]
    sd = 0.1 * math.sqrt(2)
    assert abs(s.mean()) < 5 * sd / math.sqrt(N)
    assert s.std() == pytest.approx(sd, rel=0.03)  # 0.1 Gaussian noise is visible and has std 0.1
    assert np.abs(s).max() < 6 * sd


def test_2spirals_radius_range():
    x = draw("2spirals")
    r = np.linalg.norm(x, axis=1)
    # Noise-free radius <= (3π + 0.5*√2)/3 ~ 3.38; plus the noise (Rayleigh(0.1): P(> 0.6) ~ 1.5e-8).
    r_max_clean = (3 * np.pi + 0.5 * math.sqrt(2)) / 3
    assert r.max() < r_max_clean + 0.6
    # t reaches close to 3π (P(sqrt(U) < 0.99 for all N/2 draws) is nil), so radii reach ~π.
    assert r.max() > 3 * np.pi / 3 - 0.1
    # Small radii exist too (t ~ 0 near the centre).
    assert r.min() < 0.3


def test_2spirals_radius_quantiles_match_monte_carlo():
    x = draw("2spirals")
    r = np.linalg.norm(x, axis=1)
    ref = np.linalg.norm(_spirals_reference(400_000, np.random.default_rng(7)), axis=1)
    qs = [0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.999]
    got, want = np.quantile(r, qs), np.quantile(ref, qs)
    # Radius density is ~ linear in r on [0, 3.4]; quantile standard errors are <= ~0.01 for N = 40k.
    np.testing.assert_allclose(got, want, atol=0.04)
    # Two-sample KS statistic: critical value at alpha = 1e-4 is ~ 2.2 * sqrt(1/N + 1/M) ~ 0.011.
    from scipy.stats import ks_2samp

    assert ks_2samp(r, ref).statistic < 0.015
    # The 0.1 noise is visible in the outer tail: noise-free radii never exceed (3π + 0.5√2)/3 ~ 3.377,
    # but with the noise ~ 0.1% of the points lie beyond ~ 3.43 (Monte Carlo above).
    r_max_clean = (3 * np.pi + 0.5 * math.sqrt(2)) / 3
    clean = np.linalg.norm(_spirals_reference(400_000, np.random.default_rng(8), noise=False), axis=1)
    assert clean.max() <= r_max_clean
    assert np.quantile(r, 0.999) > r_max_clean + 0.02
    assert r.max() > r_max_clean + 0.1


def test_2spirals_first_coordinate_distribution_matches_monte_carlo():
    from scipy.stats import ks_2samp

    x = draw("2spirals")
    ref = _spirals_reference(400_000, np.random.default_rng(9))
    for j in range(2):
        assert ks_2samp(x[:, j], ref[:, j]).statistic < 0.015
    # Swapping the roles of cos and sin (a plausible bug) gives a different spiral.
    swapped = ref[:, ::-1]
    assert max(ks_2samp(x[:, j], swapped[:, j]).statistic for j in range(2)) > 0.03


# --------------------------------------------------------------------------------------------------
# checkerboard: x1 = 4U - 2; x2 = U - 2 Bernoulli(0.5) + (floor(x1) mod 2); return 2 (x1, x2)
#
# Working out the pattern (unscaled): floor(x1) = f in {-2, -1, 0, 1}, f mod 2 = 0, 1, 0, 1 (floored mod),
# x2 in [f mod 2, f mod 2 + 1) or [f mod 2 - 2, f mod 2 - 1), so floor(x2) in {f mod 2, f mod 2 - 2} and
# floor(x1) + floor(x2) = f + f mod 2 (- 2) = -2, 0, 0, 2 (- 2): always even. After scaling by 2 the
# cells are 2x2 squares: floor(X1/2) + floor(X2/2) is even for every point; X1 in [-4, 4), X2 in [-4, 4).
# Occupied cells (i, j) = (floor(X1/2), floor(X2/2)): i + j even, i, j in {-2..1}: 8 of 16 squares.
# --------------------------------------------------------------------------------------------------


def _checkerboard_reference_cells() -> set[tuple[int, int]]:
    cells = set()
    for f in (-2, -1, 0, 1):
        for b in (0, 1):
            cells.add((f, (f % 2) - 2 * b))
    return cells


def test_checkerboard_reference_pattern_is_even_parity():
    cells = _checkerboard_reference_cells()
    assert len(cells) == 8
    assert all((i + j) % 2 == 0 for i, j in cells)
    assert cells == {(i, j) for i in range(-2, 2) for j in range(-2, 2) if (i + j) % 2 == 0}


def test_checkerboard_range_and_parity():
    x = draw("checkerboard", seed=99)
    assert (x[:, 0] >= -4).all() and (x[:, 0] < 4).all()
    assert (x[:, 1] >= -4).all() and (x[:, 1] <= 4).all()
    i = np.floor(x[:, 0] / 2).astype(int)
    j = np.floor(x[:, 1] / 2).astype(int)
    assert ((i + j) % 2 == 0).all()
    assert set(zip(i.tolist(), j.tolist())) == _checkerboard_reference_cells()


def test_checkerboard_uniform_coverage():
    x = draw("checkerboard", seed=99)
    i = np.floor(x[:, 0] / 2).astype(int) + 2
    j = np.floor(x[:, 1] / 2).astype(int) + 2
    counts = np.zeros((4, 4), dtype=int)
    np.add.at(counts, (i, j), 1)
    occupied = (np.add.outer(np.arange(4), np.arange(4)) % 2) == 0
    assert (counts[~occupied] == 0).all()
    sd = math.sqrt(N * (1 / 8) * (7 / 8))
    assert (np.abs(counts[occupied] - N / 8) < 5 * sd).all(), counts
    # Uniform within a square: fractional position in the 2x2 cell ~ U[0, 1) in both axes.
    frac = x / 2 - np.floor(x / 2)
    se_mean = math.sqrt(1 / 12 / N)
    assert np.abs(frac.mean(0) - 0.5).max() < 5 * se_mean
    assert frac.var(0) == pytest.approx([1 / 12, 1 / 12], rel=0.03)
    # and finer: 4x4 sub-bins of each square equally filled (each ~ N/16).
    sub = np.floor(frac * 4).astype(int)
    sub_counts = np.bincount(sub[:, 0] * 4 + sub[:, 1], minlength=16)
    sd16 = math.sqrt(N * (1 / 16) * (15 / 16))
    assert (np.abs(sub_counts - N / 16) < 5 * sd16).all(), sub_counts


# --------------------------------------------------------------------------------------------------
# rings: radii 3, 2.25, 1.5, 0.75, n/4 points each at evenly spaced angles, resampled, + N(0, 0.08²)
# --------------------------------------------------------------------------------------------------

RADII = np.array([3.0, 2.25, 1.5, 0.75])


def test_rings_radii_and_noise():
    x = draw("rings", seed=5)
    r = np.linalg.norm(x, axis=1)
    k = np.abs(r[:, None] - RADII[None, :]).argmin(1)
    dev = r - RADII[k]
    # Rings are 0.75 apart, noise 0.08: every point is well within a ring (no point in the gaps).
    assert np.abs(dev).max() < 6 * 0.08
    assert r.max() < 3 + 6 * 0.08 and r.min() > 0.75 - 6 * 0.08
    counts = np.bincount(k, minlength=4)
    sd = math.sqrt(N * 0.25 * 0.75)
    assert (np.abs(counts - N / 4) < 5 * sd).all(), counts
    for ring in range(4):
        d = dev[k == ring]
        # Radial deviation of an isotropic 2D Gaussian ~ N(0, 0.08²) (+ a tiny 0.08²/(2R) bias).
        assert d.std() == pytest.approx(0.08, rel=0.05), ring
        assert abs(d.mean()) < 0.01, ring


def test_rings_angles_uniform():
    x = draw("rings", seed=5)
    ang = np.arctan2(x[:, 1], x[:, 0])
    counts = np.histogram(ang, bins=8, range=(-np.pi, np.pi))[0]
    sd = math.sqrt(N * (1 / 8) * (7 / 8))
    assert (np.abs(counts - N / 8) < 5 * sd).all(), counts


# --------------------------------------------------------------------------------------------------
# Reproducibility, odd n
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(GENS))
def test_same_seed_same_batch_different_seed_differs(name):
    f = GENS[name]
    a = f(1000, gen(3))
    b = f(1000, gen(3))
    c = f(1000, gen(4))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert (a != c).float().mean() > 0.5
    # A generator advances: two consecutive batches from one generator differ.
    g = gen(3)
    assert not torch.equal(f(1000, g), f(1000, g))


@pytest.mark.parametrize("name", sorted(GENS))
@pytest.mark.parametrize("n", [1, 3, 7, 1001])
def test_odd_n(name, n):
    x = GENS[name](n, gen(0))
    assert x.shape == (n, 2)
    assert torch.isfinite(x).all()


# --------------------------------------------------------------------------------------------------
# The Toy2D dataset declarations (docs/conventions.md, "Data";
# docs/conventions.md, "2D protocol and defaults (Soft-IntroVAE Table 5)"; table written out here independently)
# --------------------------------------------------------------------------------------------------

TABLE = {
    #               vae (beta_rec, beta_kl)  intro (beta_rec, beta_kl, beta_neg, m)  soft (beta_rec, beta_kl, beta_neg)
    "8gaussians": ((0.8, 0.05), (0.3, 0.5, 1.0, 1.0), (0.2, 0.3, 0.9)),
    "2spirals": ((1.0, 0.05), (0.2, 0.5, 0.5, 2.0), (0.2, 0.5, 1.0)),
    "checkerboard": ((0.8, 0.1), (0.4, 0.2, 0.2, 8.0), (0.2, 0.1, 0.2)),
    "rings": ((0.8, 0.05), (0.8, 0.5, 0.5, 5.0), (0.2, 0.2, 1.0)),
}
RANGES = {"8gaussians": 2.0, "2spirals": 4.0, "checkerboard": 4.0, "rings": 4.0}


@pytest.mark.parametrize("name", sorted(GENS))
def test_toy2d_declarations(name):
    ds = Toy2D(name)
    assert tuple(ds.shape) == (2,)
    assert ds.kind == "2d"
    assert ds.metric_range == RANGES[name]
    x = ds.sample(501, gen(0))
    assert x.shape == (501, 2)
    assert torch.equal(x, GENS[name](501, gen(0)))


@pytest.mark.parametrize("name", sorted(GENS))
def test_toy2d_defaults_match_spec_table(name):
    vae, intro, soft = TABLE[name]
    ds = Toy2D(name)
    d_vae, d_intro, d_soft = ds.defaults_for("vae"), ds.defaults_for("intro"), ds.defaults_for("soft")
    assert {k: d_vae[k] for k in ("beta_rec", "beta_kl")} == dict(zip(("beta_rec", "beta_kl"), vae))
    assert "beta_neg" not in d_vae and "m" not in d_vae
    assert {k: d_intro[k] for k in ("beta_rec", "beta_kl", "beta_neg", "m")} == dict(
        zip(("beta_rec", "beta_kl", "beta_neg", "m"), intro)
    )
    assert {k: d_soft[k] for k in ("beta_rec", "beta_kl", "beta_neg")} == dict(
        zip(("beta_rec", "beta_kl", "beta_neg"), soft)
    )
    assert "m" not in d_soft
    # The only other key allowed is the 2D VAE warm-up (2,000 iterations).
    for d, keys in (
        (d_vae, {"beta_rec", "beta_kl"}),
        (d_intro, {"beta_rec", "beta_kl", "beta_neg", "m"}),
        (d_soft, {"beta_rec", "beta_kl", "beta_neg"}),
    ):
        extra = set(d) - keys
        assert extra <= {"num_vae"}, extra
        if "num_vae" in d:
            assert d["num_vae"] == 2000
    # defaults_for returns a copy: mutating it does not change the dataset's defaults.
    d_soft["beta_rec"] = 123.0
    assert ds.defaults_for("soft")["beta_rec"] == soft[0]
