"""Bounded streaming evaluation (introzoo/metrics/stream.py): every image metric gives the same value
whatever the chunk (k larger than the chunk included), never passes more than ``chunk`` images through
the model or the extractor, reports each phase to the progress reporter and records its time."""

from __future__ import annotations

import math
from contextlib import contextmanager

import pytest
import torch

from introzoo.backbones.conv import ConvConfig, build as conv
from introzoo.data import images
from introzoo.metrics.base import EvalContext
from introzoo.metrics.stream import NOISE_BLOCK, Phases, noise_key, posterior_noise
from introzoo.model import VAE
from introzoo.priors.gaussian import StandardGaussian


@pytest.fixture(scope="module", autouse=True)
def _cache(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setenv("INTROZOO_CACHE", str(tmp_path_factory.mktemp("cache")))
    yield
    mp.undo()


@pytest.fixture(scope="module")
def ds():
    return images.factory("digits")(images.ImageConfig())


def tiny(dtype=torch.float64, prior=None) -> VAE:
    torch.manual_seed(0)
    enc, dec = conv(ConvConfig(channels=[4, 8]), (1, 8, 8), 3)
    model = VAE(enc, dec, prior or StandardGaussian(3), (1, 8, 8), 3).to(dtype)
    return model.eval()


class PassSizes:
    """Records the largest batch that goes through the model's encoder and decoder."""

    def __init__(self, model: VAE) -> None:
        self.largest = 0
        for net in (model.encoder, model.decoder):
            net.register_forward_pre_hook(lambda _m, args: self._see(args[0]))

    def _see(self, x):
        self.largest = max(self.largest, x.shape[0])


class Recorder(Phases):
    """Phases with their totals and how far each got; metric timings."""

    def __init__(self) -> None:
        self.phases: list[list] = []
        self.times: dict[str, float] = {}

    @contextmanager
    def phase(self, description, total):
        entry = [description, total, 0]
        self.phases.append(entry)

        def advance(n=1):
            entry[2] += n

        yield advance

    def timed(self, name, seconds):
        self.times[name] = seconds


def ctx_for(model, ds, chunk, progress=None):
    return EvalContext(model, ds, torch.device("cpu"), seed=3, chunk=chunk, progress=progress or Phases())


def test_posterior_noise_is_the_same_however_it_is_split():
    whole = posterior_noise(7, range(5), 0, 3 * NOISE_BLOCK + 5, 2)
    parts = torch.cat([posterior_noise(7, range(5), s, 13, 2) for s in range(0, 3 * NOISE_BLOCK + 5, 13)])
    assert torch.equal(whole, parts[: whole.shape[0]])
    assert torch.equal(whole[:, 2:4], posterior_noise(7, [2, 3], 0, whole.shape[0], 2))  # by image index
    assert not torch.equal(whole, posterior_noise(8, range(5), 0, whole.shape[0], 2))  # by key
    assert abs(float(whole.mean())) < 0.1 and abs(float(whole.std()) - 1) < 0.1


def test_nll_streams_to_the_unchunked_value_with_k_above_the_chunk(ds):
    from introzoo.metrics.likelihood import NLL, NLLConfig

    model = tiny()
    cfg = NLLConfig(k=2 * NOISE_BLOCK + 9, n=12)  # 137 samples per image, chunk 10: 14 passes per image
    sizes = PassSizes(model)
    small = NLL(cfg).compute(ctx_for(model, ds, chunk=10))["nll"]
    assert sizes.largest <= 10
    big = NLL(cfg).compute(ctx_for(model, ds, chunk=100_000))["nll"]
    assert sizes.largest == cfg.k * cfg.n  # one pass: the unchunked computation
    assert small == pytest.approx(big, rel=1e-12)

    # an independent computation: the same noise, torch.distributions, one logsumexp over all k
    x = ds.to_float(ds.images("test")[0][: cfg.n]).double()
    eps = posterior_noise(noise_key(3, "nll"), range(cfg.n), 0, cfg.k, 3).double()
    with torch.no_grad():
        mu, logvar = model.encode(x)
        std = torch.exp(0.5 * logvar)
        z = mu + eps * std  # (k, n, zdim)
        x_hat = model.decode(z.reshape(-1, 3)).reshape(cfg.k, cfg.n, -1)
        normal = torch.distributions.Normal
        log_px = normal(x_hat, math.sqrt(0.5)).log_prob(x.reshape(1, cfg.n, -1)).sum(-1)
        log_w = log_px + normal(0.0, 1.0).log_prob(z).sum(-1) - normal(mu, std).log_prob(z).sum(-1)
        expected = -(torch.logsumexp(log_w, 0) - math.log(cfg.k)).mean()
    assert small == pytest.approx(float(expected), rel=1e-10)


@pytest.mark.parametrize("score", ["elbo", "iw"])
def test_ood_scores_do_not_depend_on_the_chunk(ds, score):
    from introzoo.metrics.likelihood import scores

    model = tiny()
    x = ds.images("test")[0][:11]
    sizes = PassSizes(model)
    a = scores(model, x, score, 70, "cpu", chunk=4, key=5)
    assert sizes.largest <= 4
    b = scores(model, x, score, 70, "cpu", chunk=10_000, key=5)
    assert torch.allclose(a, b, rtol=1e-12, atol=1e-10)


def test_probes_encode_and_score_in_chunks_with_the_same_accuracy(ds):
    from introzoo.metrics.probes import SVM, ProbeConfig, SVMConfig, knn

    model = tiny()
    sizes = PassSizes(model)
    small = ctx_for(model, ds, chunk=17)
    got = {**knn(5)(ProbeConfig(n_train=300)).compute(small), **SVM(SVMConfig(n_train=300, max_iter=200)).compute(small)}
    assert sizes.largest <= 17
    big = ctx_for(model, ds, chunk=100_000)
    want = {**knn(5)(ProbeConfig(n_train=300)).compute(big), **SVM(SVMConfig(n_train=300, max_iter=200)).compute(big)}
    assert got == pytest.approx(want, abs=1e-12)


@pytest.mark.parametrize("which", ["gen", "rec"])
def test_fid_streams_to_the_unchunked_value(ds, which):
    from introzoo.metrics.fid import FIDConfig, FIDGen, FIDRec

    model = tiny(torch.float32)
    cfg = FIDConfig(features="classifier,epochs=1", n=120, batch_size=60)
    metric = (FIDGen if which == "gen" else FIDRec)(cfg)
    sizes = PassSizes(model)
    small = metric.compute(ctx_for(model, ds, chunk=16))[metric.key]
    assert sizes.largest <= 16
    big = metric.compute(ctx_for(model, ds, chunk=100_000))[metric.key]
    assert small == pytest.approx(big, rel=1e-4) and small > 0


def test_resp_entropy_does_not_depend_on_the_chunk(ds):
    from introzoo.metrics.prior import RespEntropyMetric, RespEntropyMetricConfig
    from introzoo.priors.mog import MoGConfig, build

    torch.manual_seed(1)
    model = tiny(prior=build(MoGConfig(K=4), zdim=3).double())
    metric = RespEntropyMetric(RespEntropyMetricConfig(n_data=200))
    a = metric.compute(ctx_for(model, ds, chunk=7))
    b = metric.compute(ctx_for(model, ds, chunk=100_000))
    assert a == pytest.approx(b, rel=1e-12)


def test_every_phase_is_reported_and_every_metric_timed(ds):
    from introzoo.metrics.fid import FIDConfig, FIDGen
    from introzoo.metrics.likelihood import NLL, NLLConfig
    from introzoo.metrics.probes import ProbeConfig, knn
    from introzoo.training.lifecycle import evaluate

    rec = Recorder()
    ctx = ctx_for(tiny(torch.float32), ds, chunk=32, progress=rec)
    metrics = [
        NLL(NLLConfig(k=5, n=20)),
        knn(5)(ProbeConfig(n_train=100)),
        FIDGen(FIDConfig(features="classifier,epochs=1,seed=7", n=50)),
    ]
    values, _ = evaluate(metrics, ctx)
    names = " | ".join(d for d, _, _ in rec.phases)
    for part in (
        "nll",
        "encoding train",
        "encoding test",
        "knn5: fitting",
        "knn5: scoring",
        "training the FID classifier",
        "FID classifier: test accuracy",
        "real images",
        "fid_gen@classifier",
    ):
        assert part in names, part
    for description, total, done in rec.phases:
        assert done == total, description  # each bar reaches its end
    assert set(rec.times) == set(ctx.times) == {"nll", "knn5", "fid_gen@classifier"} == set(values)
    assert all(t >= 0 for t in ctx.times.values())
