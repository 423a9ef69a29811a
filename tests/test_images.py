"""Image path: datasets, backbones, FID, probes, likelihoods, OOD and saved runs (issue: images)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from torch import nn

from introzoo.cli import main
from introzoo.data import images
from introzoo.errors import UsageError
from introzoo.metrics.base import EvalContext
from introzoo.model import VAE
from introzoo.priors.gaussian import StandardGaussian

HAVE_FMNIST = all((images.DEBIAN_FASHION_MNIST / f"{f}.gz").exists() for f in images.FASHION_FILES)
needs_fmnist = pytest.mark.skipif(not HAVE_FMNIST, reason="Debian's dataset-fashion-mnist is not installed")


@pytest.fixture(scope="module", autouse=True)
def _cache(tmp_path_factory):
    """One extractor cache and data root for the module (the classifier trains once)."""
    mp = pytest.MonkeyPatch()
    mp.setenv("INTROZOO_CACHE", str(tmp_path_factory.mktemp("cache")))
    mp.setenv("INTROZOO_DATA_ROOT", str(tmp_path_factory.mktemp("data")))
    yield
    mp.undo()


def digits(**kw):
    return images.factory("digits")(images.ImageConfig(**kw))


# -- datasets ------------------------------------------------------------------------------------
def test_digits_splits_and_pixels():
    from sklearn.datasets import load_digits

    ds = digits()
    x, y = ds.images("train")
    xt, yt = ds.images("test")
    assert x.shape == (1437, 1, 8, 8) and xt.shape == (360, 1, 8, 8) and x.dtype == torch.uint8
    ref = load_digits()
    # pixel values 0..16 scaled to [0, 1] (as uint8 0..255): the float image is within rounding of v/16
    assert torch.allclose(ds.to_float(x[:5]).squeeze(1).double(), torch.from_numpy(ref.images[:5] / 16.0), atol=0.5 / 255)
    assert torch.equal(yt, torch.from_numpy(ref.target[1437:]))


def test_batches_follow_epochs_and_keep_the_last_partial_batch():
    ds = digits(subset=100)
    g = torch.Generator().manual_seed(0)
    it = ds.batches(32, g)
    epoch = [next(it) for _ in range(4)]
    assert [b.shape[0] for b in epoch] == [32, 32, 32, 4]
    seen = torch.cat(epoch).flatten(1)
    full = ds.to_float(ds.images("train")[0]).flatten(1)
    # every training image exactly once per epoch
    match = (seen[:, None, :] == full[None, :, :]).all(-1)
    assert torch.equal(match.sum(0).clamp(max=1).sum(), torch.tensor(len(torch.unique(full, dim=0))))
    assert ds.steps_per_epoch(32) == 4


@needs_fmnist
def test_fashion_mnist_loads_offline_from_debian(tmp_path, monkeypatch):
    monkeypatch.setenv("INTROZOO_DATA_ROOT", str(tmp_path))
    ds = images.factory("fashion-mnist")(images.ImageConfig(subset=1000, download=False))
    x, y = ds.images("train")
    xt, yt = ds.images("test")
    assert x.shape == (1000, 1, 28, 28) and xt.shape == (10_000, 1, 28, 28)
    assert set(y.tolist()) == set(range(10)) and (tmp_path / "FashionMNIST" / "raw" / "train-images-idx3-ubyte").exists()


def test_missing_dataset_fails_with_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("INTROZOO_DATA_ROOT", str(tmp_path))
    with pytest.raises(UsageError, match=r"dataset 'cifar10' is not under .*\(download=false\); download it"):
        images.factory("cifar10")(images.ImageConfig(download=False)).images("train")
    rc = main(["run", "-d", "mnist,download=false", "-n", "1", "--data-root", str(tmp_path), "-q"])
    err = capsys.readouterr().err
    assert rc == 2 and "dataset 'mnist' is not under" in err and "Traceback" not in err


# -- backbones -----------------------------------------------------------------------------------
@pytest.mark.parametrize("shape,channels", [((1, 28, 28), [64, 128]), ((3, 32, 32), [64, 128, 256]), ((1, 8, 8), [8, 16])])
def test_resnet_shapes_and_structure(shape, channels):
    from introzoo.backbones.resnet import ResNetConfig, ResidualBlock, build

    enc, dec = build(ResNetConfig(channels=channels), shape, 16)
    x = torch.rand(3, *shape)
    assert enc(x).shape == (3, 32)
    assert dec(torch.randn(3, 16)).shape == (3, *shape)
    # docs/conventions.md, "Backbones": Conv5x5 first, one AvgPool per stage, one residual block per further stage + a final one
    first = enc.main[0]
    assert isinstance(first, nn.Conv2d) and first.kernel_size == (5, 5)
    assert sum(isinstance(m, nn.AvgPool2d) for m in enc.main) == len(channels)
    assert sum(isinstance(m, ResidualBlock) for m in enc.main) == len(channels)
    assert sum(isinstance(m, nn.Upsample) for m in dec.main) == len(channels)
    assert isinstance(dec.main[-1], nn.Conv2d) and dec.main[-1].kernel_size == (5, 5)  # no output activation


def test_resnet_norm_choice_removes_the_train_eval_dependence():
    from introzoo.backbones.resnet import ResNetConfig, build

    torch.manual_seed(0)
    x = torch.rand(4, 1, 8, 8)
    for norm, differs in (("batch", True), ("none", False)):
        enc, _ = build(ResNetConfig(channels=[8, 16], norm=norm), (1, 8, 8), 4)
        a = enc.train()(x)
        b = enc.eval()(x)
        assert (not torch.allclose(a, b)) is differs
        assert any(isinstance(m, nn.BatchNorm2d) for m in enc.modules()) is (norm == "batch")


def test_backbone_that_cannot_take_the_image_size_is_a_usage_error(capsys):
    rc = main(["run", "-d", "digits", "-b", "resnet,channels=[8,16,32,64]", "-n", "1", "-q"])
    err = capsys.readouterr().err
    assert rc == 2 and "not divisible" in err


# -- FID -----------------------------------------------------------------------------------------
def frechet_scipy(a: np.ndarray, b: np.ndarray) -> float:
    from scipy import linalg

    m1, m2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = linalg.sqrtm(s1 @ s2).real
    return float(((m1 - m2) ** 2).sum() + np.trace(s1 + s2 - 2 * covmean))


class Pixels(nn.Module):
    """Features = the pixels that vary over the digits (constant corners would make covariances singular)."""

    def __init__(self, keep: torch.Tensor) -> None:
        super().__init__()
        self.keep = keep
        self.num_features = int(keep.sum())

    def forward(self, x):
        return x.flatten(1)[:, self.keep].double()


def test_fid_maths_match_scipy_and_vanish_for_identical_sets():
    from torchmetrics.image.fid import FrechetInceptionDistance

    x = digits().to_float(digits().images("train")[0][:600])
    noisy = (x + 0.2 * torch.randn(x.shape, generator=torch.Generator().manual_seed(1))).clamp(0, 1)
    extractor = Pixels(x.flatten(1).std(0) > 0)
    fid = FrechetInceptionDistance(feature=extractor, reset_real_features=False)
    fid.update(x, real=True)
    fid.update(noisy, real=False)
    ours = float(fid.compute())
    ref = frechet_scipy(extractor(x).numpy(), extractor(noisy).numpy())
    assert ours == pytest.approx(ref, rel=1e-4) and ours > 0.1
    fid.reset()
    fid.update(x, real=False)
    assert abs(float(fid.compute())) < 1e-3


def test_fid_metric_is_zero_for_the_data_itself_and_grows_with_noise():
    from introzoo.metrics.fid import FIDConfig, FIDGen

    ds = digits()
    pool = ds.to_float(ds.images("train")[0])

    class Echo(nn.Module):
        """A 'model' whose samples are the training images plus noise of a chosen size."""

        def __init__(self, sigma):
            super().__init__()
            self.sigma, self.i = sigma, 0
            self.prior = StandardGaussian(2)

        def decode(self, z):
            n = z.shape[0]
            out = pool[self.i : self.i + n]
            self.i += n
            return out + self.sigma * torch.randn(out.shape, generator=torch.Generator().manual_seed(self.i))

    values = []
    for sigma in (0.0, 0.1, 0.3):
        model = Echo(sigma)
        ctx = EvalContext(model, ds, torch.device("cpu"), 0)
        # real statistics from the same 1,437 images the echo model replays (n = the whole split)
        cfg = FIDConfig(features="(classifier,epochs=20)", n=1437, batch_size=1437)
        values.append(FIDGen(cfg).compute(ctx)["fid_gen@classifier"])
        assert ctx.info["fid_gen@classifier"]["test_accuracy"] > 0.8  # the extractor is a real classifier
    assert abs(values[0]) < 1e-2 and values[0] < values[1] < values[2]


def test_inception_extractor_needs_weights_and_loads_torchvision_files(tmp_path, monkeypatch):
    from introzoo.extractors.inception import InceptionConfig, build

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    with pytest.raises(UsageError, match="needs weights"):
        build(InceptionConfig(kind="torchvision"))
    from torchvision.models import inception_v3

    torch.manual_seed(0)
    path = tmp_path / "hub" / "checkpoints" / "inception_v3_google-0cc3c7bd.pth"
    path.parent.mkdir(parents=True)
    torch.save(inception_v3(weights=None, aux_logits=True, init_weights=False).state_dict(), path)
    net = build(InceptionConfig(kind="torchvision"))
    assert net(torch.rand(2, 1, 28, 28)).shape == (2, 2048) and net.info["weights"] == str(path)


# -- likelihoods ---------------------------------------------------------------------------------
class Linear(nn.Module):
    def __init__(self, w, b):
        super().__init__()
        self.w, self.b = w, b

    def forward(self, z):
        return z @ self.w.T + self.b


class FixedEncoder(nn.Module):
    """q(z|x) = N(A x + c, diag(exp(logvar))): a Gaussian encoder with chosen parameters."""

    def __init__(self, a, c, logvar):
        super().__init__()
        self.a, self.c, self.logvar = a, c, logvar

    def forward(self, x):
        mu = x.flatten(1) @ self.a.T + self.c
        return torch.cat([mu, self.logvar.expand_as(mu)], 1)


def linear_gaussian(exact_posterior: bool):
    """x = W z + b + N(0, I/2), z ~ N(0, I), d = 4, zdim = 2; W has orthogonal columns so the exact
    posterior is diagonal: cov = (I + 2 W^T W)^-1, mean = cov 2 W^T (x - b)."""
    w = torch.tensor([[1.0, 0.0], [0.0, 2.0], [1.0, 0.0], [0.0, 0.5]], dtype=torch.float64)
    b = torch.tensor([0.1, -0.2, 0.3, 0.0], dtype=torch.float64)
    cov = torch.linalg.inv(torch.eye(2, dtype=torch.float64) + 2 * w.T @ w)
    if exact_posterior:
        a = 2 * cov @ w.T
        enc = FixedEncoder(a, -(a @ b), torch.log(torch.diagonal(cov)))
    else:
        enc = FixedEncoder(0.3 * w.T, torch.zeros(2, dtype=torch.float64), torch.tensor([-1.0, -0.5], dtype=torch.float64))
    model = VAE(enc, Linear(w, b), StandardGaussian(2), (4,), 2).double()
    marginal = torch.distributions.MultivariateNormal(b, w @ w.T + 0.5 * torch.eye(4, dtype=torch.float64))
    return model, marginal


def test_importance_weighted_bound_is_exact_with_the_true_posterior():
    from introzoo.metrics.likelihood import iw_log_likelihood

    model, marginal = linear_gaussian(exact_posterior=True)
    x = marginal.sample((6,))
    torch.manual_seed(0)
    for k in (1, 7):  # the weights are constant: every K gives log p(x) exactly
        assert torch.allclose(iw_log_likelihood(model, x, k), marginal.log_prob(x), atol=1e-9)


def test_importance_weighted_bound_is_above_the_elbo_and_tightens_with_k():
    from introzoo.metrics.likelihood import elbo, iw_log_likelihood

    model, marginal = linear_gaussian(exact_posterior=False)
    torch.manual_seed(0)
    x = marginal.sample((200,))
    exact = marginal.log_prob(x).mean()
    e = torch.stack([elbo(model, x) for _ in range(50)]).mean()
    k1 = torch.stack([iw_log_likelihood(model, x, 1) for _ in range(50)]).mean()
    assert abs(k1 - e) < 0.02 * abs(e)  # K = 1 is the ELBO in expectation
    # means of 10 estimates (one estimate of K = 100 is within its noise, ~0.01, of K = 5000)
    bounds = [torch.stack([iw_log_likelihood(model, x, k).mean() for _ in range(10)]).mean() for k in (1, 10, 100)]
    big = iw_log_likelihood(model, x, 5000).mean()
    assert e < bounds[1] < bounds[2] < exact + 1e-2 and abs(big - exact) < 1e-2
    assert exact - big < 0.1 * (exact - e)  # and approaches log p(x)


def test_auroc_matches_a_hand_count():
    from introzoo.metrics.likelihood import auroc

    s_in, s_out = torch.tensor([3.0, 4.0, 5.0]), torch.tensor([1.0, 2.0, 3.5])
    # pairs (in, out) ranked correctly: 3 beats 1, 2 (not 3.5); 4 and 5 beat all three -> 8 of 9
    assert auroc(s_in, s_out) == pytest.approx(8 / 9)
    assert auroc(torch.tensor([1.0, 2.0]), torch.tensor([1.0, 2.0])) == pytest.approx(0.5)  # ties count half


# -- probes --------------------------------------------------------------------------------------
def test_knn_probe_matches_a_direct_nearest_neighbour_count():
    from introzoo.metrics.probes import ProbeConfig, knn

    ds = digits()
    torch.manual_seed(0)
    d = 16
    enc = FixedEncoder(
        torch.randn(d, 64, dtype=torch.float64), torch.zeros(d, dtype=torch.float64), torch.zeros(d, dtype=torch.float64)
    )
    model = VAE(enc, Linear(torch.zeros(64, d), torch.zeros(64)), StandardGaussian(d), (1, 8, 8), d).double()
    model.encode = lambda x: enc(x.double()).chunk(2, 1)
    ctx = EvalContext(model, ds, torch.device("cpu"), 0)
    got = knn(5)(ProbeConfig(n_train=1000)).compute(ctx)["knn5"]
    xtr, ytr = ds.images("train")
    xte, yte = ds.images("test")
    ztr = enc(ds.to_float(xtr[:1000]).double())[:, :d]
    zte = enc(ds.to_float(xte).double())[:, :d]
    nearest = torch.cdist(zte, ztr).topk(5, largest=False).indices
    votes = torch.nn.functional.one_hot(ytr[:1000][nearest], 10).sum(1)
    # majority vote; ties go to the nearest neighbours' first class in sklearn, so compare where no tie
    top2 = votes.topk(2, dim=1).values
    clear = top2[:, 0] > top2[:, 1]
    pred = votes.argmax(1)
    expected_clear = (pred[clear] == yte[clear]).double().mean().item()
    assert got == pytest.approx(expected_clear, abs=(~clear).double().mean().item() + 1e-9)
    assert got > 0.8  # a random projection of digits keeps the classes apart


def test_a_probe_that_cannot_be_fitted_reports_why_not_a_failure():
    """knn100 on a training split of 60 images (a small folder of the reader's own) gives no value and says
    why, where scikit-learn would stop the evaluation (n_neighbors > n_samples_fit)."""
    from introzoo.metrics.probes import ProbeConfig, knn

    ds = digits()
    d = 4
    enc = FixedEncoder(
        torch.randn(d, 64, dtype=torch.float64), torch.zeros(d, dtype=torch.float64), torch.zeros(d, dtype=torch.float64)
    )
    model = VAE(enc, Linear(torch.zeros(64, d), torch.zeros(64)), StandardGaussian(d), (1, 8, 8), d).double()
    model.encode = lambda x: enc(x.double()).chunk(2, 1)
    ctx = EvalContext(model, ds, torch.device("cpu"), 0)
    assert knn(100)(ProbeConfig(n_train=60, n_test=20)).compute(ctx) == {}
    assert ctx.info["knn100"] == {"skipped": "100-NN needs at least 100 training images; the training split has 60"}
    assert set(knn(5)(ProbeConfig(n_train=60, n_test=20)).compute(ctx)) == {"knn5"}


# -- end to end ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "digits-soft"
    rc = main(
        [
            "run",
            "-d",
            "digits",
            "-o",
            "soft,beta_neg=64",
            "--epochs",
            "2",
            "--metric",
            "fid_gen,features=(classifier,epochs=20)",
            "--metric",
            "fid_rec,features=(classifier,epochs=20)",
            "--metric",
            "svm,max_iter=500",
            "--metric",
            "knn5",
            "--metric",
            "nll,k=8,n=50",
            "--out",
            str(out),
            "-q",
        ]
    )
    assert rc == 0
    return out


def test_image_run_leaves_grids_checkpoint_and_image_metrics(digits_run):
    m = json.loads((digits_run / "metrics.json").read_text())
    assert set(m["metrics"]) == {"fid_gen@classifier", "fid_rec@classifier", "svm", "knn5", "nll"}
    assert m["metric_info"]["fid_gen@classifier"]["bn_mode"] == "eval"
    assert 0 < m["metrics"]["knn5"] <= 1 and math.isfinite(m["metrics"]["nll"])
    cfg = json.loads((digits_run / "config.json").read_text())
    assert (
        cfg["backbone"]["name"] == "conv" and cfg["train"]["epochs"] == 2 and cfg["train"]["iterations"] == 2 * 45
    )  # batch 32
    for f in ("samples.png", "reconstructions.png", "checkpoint.pt"):
        assert (digits_run / f).is_file()
    names = sorted(p.name for p in (digits_run / "progress").glob("iter_*.png"))
    assert names == ["iter_0000025.png", "iter_0000045.png", "iter_0000090.png"]  # an early grid, then one per epoch


def test_the_early_progress_grid_leaves_the_run_unchanged(tmp_path, monkeypatch):
    """The early grid (iteration 25, within minutes on a CPU) draws without touching the run's random
    streams: the run's history and weights equal a run without it, bit for bit."""
    from introzoo.training import lifecycle

    base = [
        "run",
        "-d",
        "digits",
        "-o",
        "soft,beta_neg=64",
        "-n",
        "40",
        "--log-every",
        "5",
        "--metric",
        "knn5",
        "--threads",
        "1",
        "-q",
    ]
    assert main([*base, "--out", str(tmp_path / "early")]) == 0
    monkeypatch.setattr(lifecycle, "EARLY_GRID", 0)
    assert main([*base, "--out", str(tmp_path / "none")]) == 0
    assert sorted(p.name for p in (tmp_path / "early" / "progress").iterdir()) == ["iter_0000025.png", "iter_0000040.png"]
    assert sorted(p.name for p in (tmp_path / "none" / "progress").iterdir()) == ["iter_0000040.png"]
    hist = [
        [
            {k: v for k, v in json.loads(line).items() if k != "time_s"}
            for line in (tmp_path / d / "history.jsonl").read_text().splitlines()
        ]
        for d in ("early", "none")
    ]
    assert hist[0] == hist[1]
    a, b = (torch.load(tmp_path / d / "checkpoint.pt", weights_only=True)["model"] for d in ("early", "none"))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_saved_run_reloads_to_identical_outputs(digits_run, capsys):
    before = json.loads((digits_run / "metrics.json").read_text())["metrics"]
    assert main(["eval", str(digits_run), "--json", "--no-save"]) == 0
    again = json.loads(capsys.readouterr().out)["metrics"]
    assert again == before
    a, b = digits_run / "a.pt", digits_run / "b.pt"
    assert main(["sample", str(digits_run), "--n", "9", "--out", str(a), "--seed", "5"]) == 0
    assert main(["sample", str(digits_run), "--n", "9", "--out", str(b), "--seed", "5"]) == 0
    assert torch.equal(torch.load(a), torch.load(b)) and torch.load(a).shape == (9, 1, 8, 8)
    assert main(["sample", str(digits_run), "--n", "16"]) == 0
    assert (digits_run / "samples_n16_s0.png").is_file()


def test_eval_records_new_metrics(digits_run):
    assert main(["eval", str(digits_run), "--metric", "knn100"]) == 0
    m = json.loads((digits_run / "metrics.json").read_text())
    assert "knn100" in m["metrics"] and "fid_gen@classifier" in m["metrics"]


@needs_fmnist
def test_ood_reports_auroc(digits_run, capsys):
    assert main(["ood", str(digits_run), "--against", "fashion-mnist,subset=10", "--n", "200", "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert 0 <= row["auroc"] <= 1 and row["n_in"] == 200 and "converted" in row["note"]


def test_ood_and_eval_bad_input(digits_run, tmp_path, capsys):
    assert main(["ood", str(digits_run), "--against", "8gaussians"]) == 2
    assert main(["ood", str(digits_run), "--against", "digits", "--score", "xx"]) == 2
    assert main(["eval", str(tmp_path), "--metric", "knn5"]) == 2
    assert main(["eval", str(digits_run), "--metric", "gnelbo"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "not a run directory" in err and "does not apply" in err
