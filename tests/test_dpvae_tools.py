"""Seed 004's toy data and network, its training protocol per regularizer, LP-Gen, traversals and
interpolations, and the FactorVAE metric on hand-worked cases."""

from __future__ import annotations

import math

import pytest
import torch
from PIL import Image
from pydantic import BaseModel, ConfigDict

from introzoo import hookimpl, plugins
from introzoo.cli import main
from introzoo.config import RunConfig, resolve
from introzoo.data.factors import Factors2D, Factors2DConfig
from introzoo.data.toy2d import MOONS_CENTRE, Moons, MoonsConfig, two_moons
from introzoo.figures.latent import interpolation_latents, traversal_latents
from introzoo.metrics.factor import FactorScoreConfig, factor_score, majority_vote_accuracy
from introzoo.priors.base import LowPosteriorSampler, aggregate_log_posterior
from introzoo.priors.flow import FlowPrior
from introzoo.priors.gaussian import StandardGaussian


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


# -- moons and the seed 004 2D network ---------------------------------------------------------------


def test_moons_shape_range_and_geometry():
    x = Moons(MoonsConfig(noise=0.0)).sample(4001, gen())
    assert x.shape == (4001, 2)
    p = x + torch.tensor(MOONS_CENTRE)  # back to scikit-learn's coordinates
    upper, lower = p[:2000], p[2000:]
    # noise-free: the upper moon is the unit half circle, the lower one its copy centred at (1, 0.5)
    assert torch.allclose(upper.norm(dim=1), torch.ones(2000), atol=1e-5) and (upper[:, 1] >= -1e-6).all()
    assert torch.allclose((lower - torch.tensor([1.0, 0.5])).norm(dim=1), torch.ones(2001), atol=1e-5)
    assert (lower[:, 1] <= 0.5 + 1e-6).all()
    noisy = Moons().sample(20000, gen(1))
    assert noisy.abs().max() < Moons.metric_range  # the metric square holds the data
    assert abs(float(noisy.mean(0)[0])) < 0.03  # centred
    assert torch.equal(two_moons(8, gen(3)), two_moons(8, gen(3)))


def test_moons_defaults_backbone_and_protocol():
    run = resolve(RunConfig(objective="vae", data="moons", prior="flow:6"), plugins.registry())
    assert run.backbone.component.name == "mlp" and run.backbone.config.hidden == [100, 50]
    assert run.train["lr"] == 1e-4 and run.train["iterations"] == 100_000 and run.train["zdim"] == 2
    assert {"gnelbo", "kl", "jsd"} <= {m.component.name for m in run.metrics}
    assert "factor_score" not in {m.component.name for m in run.metrics}  # moons has no factors


def test_mlp_width_list_builds_the_seed_004_network():
    from introzoo.backbones.mlp import MLPConfig, build

    enc, dec = build(MLPConfig(hidden=[100, 50]), (2,), 2)
    sizes = lambda m: [(lin.in_features, lin.out_features) for lin in m.modules() if isinstance(lin, torch.nn.Linear)]  # noqa: E731
    assert sizes(enc) == [(2, 100), (100, 50), (50, 4)]
    assert sizes(dec) == [(2, 50), (50, 100), (100, 2)]
    enc, _ = build(MLPConfig(), (2,), 2)  # the int form is unchanged: 256 wide, 3 hidden layers
    assert sizes(enc) == [(2, 256)] + [(256, 256)] * 3 + [(256, 4)]
    with pytest.raises(ValueError):
        MLPConfig(hidden=[])


# -- training defaults per regularizer ---------------------------------------------------------------


class _NoOpts(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _RegPlugin:
    """A regularizer without dataset defaults and a dataset declaring training settings for the
    built-in 'tcvae'."""

    @hookimpl
    def introzoo_register_regularizers(self, register):
        register("other", lambda config, **kw: None, _NoOpts, "stand-in without defaults")

    @hookimpl
    def introzoo_register_datasets(self, register):
        def build(config):
            ds = Factors2D()
            ds.name = "regdata"
            ds.train_defaults = {"zdim": 2, "lr": 3e-4, "batch_size": 64, "iterations": 500}
            ds.regularizer_defaults = {"tcvae": {"lr": 1e-4, "batch_size": 100}}
            return ds

        register("regdata", build, _NoOpts, "factors2d with per-regularizer defaults")


def test_regularizer_defaults_precedence(register_plugin):
    reg = register_plugin(_RegPlugin(), name="regplugin").registry

    def train(**kw):
        return resolve(RunConfig(objective="vae", data="regdata", **kw), reg).train

    plain = train()
    assert (plain["lr"], plain["batch_size"], plain["iterations"]) == (3e-4, 64, 500)  # dataset < introzoo
    assert plain["lr_gamma"] == 0.1  # introzoo's default where the dataset says nothing
    assert train(regularizers=["other"])["lr"] == 3e-4  # no defaults for that one
    t = train(regularizers=["tcvae"])
    assert (t["lr"], t["batch_size"], t["iterations"]) == (1e-4, 100, 500)  # dataset-for-tcvae < dataset
    t = train(regularizers=["tcvae"], lr=5e-5)
    assert (t["lr"], t["batch_size"]) == (5e-5, 100)  # explicit options win


def test_mnist_and_svhn_take_seed_004_settings_with_a_dpvae_regularizer(register_plugin):
    reg = register_plugin(_RegPlugin(), name="regplugin").registry
    base = resolve(RunConfig(objective="vae", data="mnist"), reg).train
    assert base["lr"] == 2e-4 and base["epochs"] == 200
    t = resolve(RunConfig(objective="vae", data="mnist", regularizers=["tcvae"]), reg).train
    assert (t["lr"], t["batch_size"], t["iterations"], t["epochs"]) == (1e-4, 100, 100_000, None)
    t = resolve(RunConfig(objective="vae", data="svhn", regularizers=["tcvae"]), reg).train
    assert (t["lr"], t["batch_size"], t["iterations"]) == (1e-4, 50, 100_000)
    t = resolve(RunConfig(objective="vae", data="mnist", regularizers=["tcvae"], iterations=300), reg).train
    assert t["iterations"] == 300


# -- LP-Gen --------------------------------------------------------------------------------------------


def test_lp_gen_is_a_flow_capability_only():
    assert isinstance(FlowPrior(2, L=2), LowPosteriorSampler)
    assert not isinstance(StandardGaussian(2), LowPosteriorSampler)


def test_aggregate_log_posterior_against_a_direct_sum():
    torch.manual_seed(0)
    mu, logvar, z = (
        torch.randn(7, 3, dtype=torch.float64),
        torch.randn(7, 3, dtype=torch.float64) * 0.3,
        torch.randn(5, 3, dtype=torch.float64),
    )
    direct = torch.stack(
        [
            torch.log(
                sum(torch.distributions.Normal(mu[m], torch.exp(0.5 * logvar[m])).log_prob(zi).sum().exp() for m in range(7))
                / 7
            )
            for zi in z
        ]
    )
    assert torch.allclose(aggregate_log_posterior(z, mu, logvar, chunk=2), direct)


def test_lp_gen_keeps_the_lowest_aggregate_posterior_candidates_of_the_flow():
    torch.manual_seed(1)
    prior = FlowPrior(2, L=4).double()
    mu = torch.randn(50, 2, dtype=torch.float64) * 0.5 + torch.tensor([1.0, 0.0], dtype=torch.float64)
    logvar = torch.full((50, 2), -2.0, dtype=torch.float64)
    torch.manual_seed(7)
    got = prior.sample_low_posterior(8, mu, logvar, candidates=5)
    # the definition, computed apart: z = g^{-1}(z0) for 40 draws z0 ~ N(0, I), ranked by q(z)
    torch.manual_seed(7)
    z0 = torch.randn(40, 2, dtype=torch.float64)
    with torch.no_grad():
        cand = prior.g_inverse(z0)
        assert torch.allclose(prior.g(cand)[0], z0, atol=1e-10)  # the candidates are the prior's draws
    q = torch.stack(
        [
            sum(torch.distributions.Normal(mu[m], torch.exp(0.5 * logvar[m])).log_prob(c).sum().exp() for m in range(50))
            / 50
            for c in cand
        ]
    )
    order = q.argsort()
    assert torch.allclose(got, cand[order[:8]])
    assert q[order[:8]].max() <= q[order[8:]].min()


# -- traverse / interpolate latents -------------------------------------------------------------------


def test_traversal_and_interpolation_latents():
    c = torch.tensor([0.5, -1.0, 2.0])
    z = traversal_latents(c, 2.0, 5).reshape(3, 5, 3)
    for d in range(3):
        assert torch.allclose(z[d, :, d], c[d] + torch.linspace(-2, 2, 5))
        others = [e for e in range(3) if e != d]
        assert torch.equal(z[d][:, others], c[others].expand(5, 2))
    a, b = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 2.0]])
    lin = interpolation_latents(a, b, 3, "linear")
    assert torch.allclose(lin, torch.tensor([[1.0, 0.0], [0.5, 1.0], [0.0, 2.0]]))
    sph = interpolation_latents(a, b, 3, "spherical")
    # slerp at t = 1/2 of vectors 90 degrees apart: (a + b) sin(pi/4) / sin(pi/2)
    assert torch.allclose(sph, torch.tensor([[1.0, 0.0], [math.sqrt(0.5), 2 * math.sqrt(0.5)], [0.0, 2.0]]), atol=1e-6)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("dpvae")
    fast = ["-n", "20", "-q", "--threads", "1", "--metric", "kl,n_samples=200"]
    assert main(["run", "-o", "vae", "-p", "flow:2", "-d", "moons", "--out", str(root / "moons"), *fast]) == 0
    assert (
        main(
            [
                "run",
                "-o",
                "vae",
                "-d",
                "digits",
                "--zdim",
                "3",
                "--epochs",
                "1",
                "--out",
                str(root / "digits"),
                "-q",
                "--threads",
                "1",
                "--metric",
                "svm,n_train=100,n_test=50",
            ]
        )
        == 0
    )
    return root


def test_runs_leave_traversal_and_lp_samples(runs):
    assert (runs / "moons" / "traverse.png").is_file() and (runs / "moons" / "lp_samples.png").is_file()
    assert (runs / "digits" / "traverse.png").is_file() and not (runs / "digits" / "lp_samples.png").exists()


def test_low_posterior_refused_for_sg(runs, capsys):
    assert main(["sample", str(runs / "digits"), "--low-posterior"]) == 2
    err = capsys.readouterr().err
    assert "prior 'sg' has no low-posterior sampling" in err and "flow" in err and "Traceback" not in err
    assert main(["sample", str(runs / "moons"), "--low-posterior", "--n", "30", "--out", str(runs / "lp.pt")]) == 0
    assert torch.load(runs / "lp.pt").shape == (30, 2)


def _fits_grid(path, rows: int, cols: int) -> bool:
    """The PNG holds a grid of ``rows`` x ``cols`` digits under a caption line, beside a label column: digits are
    8x8, enlarged x4 to 32x32; make_grid pads by 2: W = cols*34 + 2, H = rows*34 + 2."""
    from introzoo.figures.layout import FONT_SIZE

    w, h = Image.open(path).size
    return h == FONT_SIZE + 6 + rows * 34 + 2 and w > cols * 34 + 2


def test_traverse_and_interpolate_image_grids(runs, tmp_path):
    out = tmp_path / "t.png"
    assert main(["traverse", str(runs / "digits"), "--steps", "7", "--range", "2", "--out", str(out)]) == 0
    assert _fits_grid(out, 3, 7)  # one row per latent dim (zdim 3)
    assert (
        main(["traverse", str(runs / "digits"), "--around", "test", "--index", "5", "--steps", "4", "--out", str(out)]) == 0
    )
    assert _fits_grid(out, 3, 4)
    out = tmp_path / "i.png"
    for mode in ("linear", "spherical"):
        assert (
            main(["interpolate", str(runs / "digits"), "--pairs", "3", "--steps", "6", "--mode", mode, "--out", str(out)])
            == 0
        )
        assert _fits_grid(out, 3, 6)


def test_traverse_and_interpolate_2d(runs, tmp_path, capsys):
    out = tmp_path / "t.png"
    assert main(["traverse", str(runs / "moons"), "--out", str(out)]) == 0
    assert Image.open(out).size[0] > 2 * 384  # one panel per latent dimension
    assert main(["interpolate", str(runs / "moons"), "--pairs", "2", "--out", str(out)]) == 0
    assert main(["interpolate", str(runs / "moons"), "--mode", "cubic"]) == 2
    assert "unknown interpolation 'cubic'; known: linear, spherical" in capsys.readouterr().err


# -- factor_score -------------------------------------------------------------------------------------


def test_majority_vote_accuracy_by_hand():
    # dim 0 voted for factor 0 three times and factor 1 once; dim 1 for factor 1 twice: (3 + 2) / 6
    assert majority_vote_accuracy(torch.tensor([0, 0, 0, 0, 1, 1]), torch.tensor([0, 0, 0, 1, 1, 1]), 2, 2) == 5 / 6


def _score(encode, seed=0, **kw):
    return factor_score(encode, Factors2D(), FactorScoreConfig(**kw), gen(seed))[0]


def test_factor_score_hand_cases():
    assert _score(lambda x: x) == 1.0  # coordinates are the factors
    assert _score(lambda x: x.flip(1)) == 1.0  # the classifier is a majority vote: a permutation is fine
    # z = (x0, x0 + x1): with factor 1 fixed both dims vary as x0, but dim 1's std over the data is sqrt(2)
    # times larger, so after normalisation dim 1 has the lower variance: still 1 (normalisation matters)
    assert _score(lambda x: torch.stack([x[:, 0], x.sum(1)], 1)) == 1.0
    # both dims read x0 + x1: equal variances, argmin is always dim 0, right for one factor of two
    assert _score(lambda x: torch.stack([x.sum(1), x.sum(1)], 1)) == 0.5


def test_factor_score_rotated_45_degrees_is_chance():
    """Rotated by 45 degrees, the dims have the same expected variance whichever factor is fixed, so the
    argmin is a fair coin: with N votes (N/2 per factor) the score is 0.5 + |D| / N, D the difference of
    two Binomial(N/2, 1/2), E|D| = sqrt(N / (2 pi)) (normal approximation): 0.528 for N = 200."""
    r = torch.tensor([[1.0, -1.0], [1.0, 1.0]]) / math.sqrt(2)
    scores = [_score(lambda x: x @ r.T, seed=s, votes=200, L=50) for s in range(12)]
    assert min(scores) >= 0.5
    expected = 0.5 + math.sqrt(200 / (2 * math.pi)) / 200
    assert abs(sum(scores) / len(scores) - expected) < 0.035  # 3 std of the mean of 12


def test_factor_score_random_encoder_about_one_over_k():
    g = gen(5)
    scores = [_score(lambda x: torch.randn(len(x), 4, generator=g), seed=s, votes=200) for s in range(8)]
    # four random dims, two factors: each vote's argmin is uniform over 4 dims whatever k, about 1/K
    assert 0.5 <= sum(scores) / len(scores) < 0.62


def test_factor_score_prunes_collapsed_dims():
    enc = lambda x: torch.cat([torch.zeros(len(x), 1), x], 1)  # noqa: E731  dim 0 never moves
    assert _score(enc) == 1.0
    assert factor_score(enc, Factors2D(), FactorScoreConfig(), gen())[1]["active_dims"] == 2


def test_factor_score_needs_factors(capsys):
    assert main(["run", "-d", "moons", "--metric", "factor_score", "-n", "5", "-q"]) == 2
    err = capsys.readouterr().err
    assert "metric 'factor_score' does not apply to dataset 'moons': dataset 'moons' has no ground-truth factors" in err


def test_factors2d_sample_with_factor():
    ds = Factors2D(Factors2DConfig(levels=4, noise=0.0))
    x = ds.sample_with_factor(1, 3, 50, gen())
    assert torch.all(x[:, 1] == 1.5) and set(x[:, 0].tolist()) <= {-1.5, -0.5, 0.5, 1.5}
    assert ds.factor_sizes == (4, 4)


# -- benchmarks/dpvae.toml and the published regularizer x prior rows ---------------------------------

DPVAE_REGS = ("beta-h", "beta-b", "tcvae", "factor", "info")


def test_dpvae_benchmark_expands_regularizer_by_prior(capsys):
    from pathlib import Path

    from introzoo import plugins
    from introzoo.sweeps.grid import expand, load_sweep_file

    reg = plugins.registry()
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "dpvae.toml"
    spec = load_sweep_file(path)
    tasks = expand(spec, reg)
    combos = {
        (t.config["data"]["name"], t.config["prior"]["name"], tuple(r["name"] for r in t.config["regularizers"]))
        for t in tasks
    }
    assert len(tasks) == 20 and combos == {
        (d, p, (r,)) for d in ("moons", "fashion-mnist") for p in ("sg", "flow") for r in DPVAE_REGS
    }
    fm = next(t for t in tasks if t.config["data"]["name"] == "fashion-mnist")
    assert (fm.config["train"]["lr"], fm.config["train"]["batch_size"], fm.config["train"]["iterations"]) == (
        1e-4,
        100,
        100_000,
    )
    assert main(["sweep", str(path), "--dry-run", "--iterations", "300"]) == 0
    assert "20 runs" in capsys.readouterr().out
    assert spec.published["fashion-mnist"]["vae + tcvae @ flow"]["factor_score"] == 0.96


def test_published_rows_carry_regularizer_and_prior():
    from introzoo.sweeps.leaderboard import metric_direction, published_rows

    spec = {"published": {"mnist": {"vae + beta-h @ flow": {"factor_score": 0.85}, "soft": {"kl": [1.0, 0.1]}}}}
    rows = {r.label: r for r in published_rows(spec, {"mnist"})}
    row = rows["vae + beta-h (published)"]
    assert (row.objective, row.prior, row.stats["factor_score"][0]) == ("vae", "flow", 0.85)
    assert rows["soft (published)"].prior == "" and rows["soft (published)"].stats["kl"][:2] == (1.0, 0.1)
    assert published_rows(spec, {"moons"}) == []
    assert metric_direction("factor_score") == "max" and metric_direction("kl") == "min"
