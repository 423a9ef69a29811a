"""benchmarks/dpvae.toml: per-dataset metrics of a sweep, and LP-Gen's score against scipy."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.special import logsumexp
from scipy.stats import multivariate_normal

from introzoo import plugins
from introzoo.errors import UsageError
from introzoo.priors.base import aggregate_log_posterior, lowest_posterior
from introzoo.sweeps.grid import SweepSpec, data_name, expand, load_sweep_file

DPVAE = Path(__file__).resolve().parents[1] / "benchmarks" / "dpvae.toml"


def _metric_names(task) -> list[str]:
    return [m["name"] for m in task.config["metrics"]]


def test_metrics_table_is_per_dataset():
    reg = plugins.registry()
    spec = SweepSpec(data=["8gaussians", "digits,subset=200"], objective=["vae"], metrics={"digits": ["svm,n_train=100"]})
    tasks = {t.config["data"]["name"]: t for t in expand(spec, reg)}
    assert _metric_names(tasks["digits"]) == ["svm"]
    assert tasks["digits"].config["metrics"][0]["options"]["n_train"] == 100
    # a dataset the table does not name takes every metric that applies to it
    assert set(_metric_names(tasks["8gaussians"])) >= {"kl", "jsd", "gnelbo"}
    assert spec.metrics_for("digits,subset=200") == ["svm,n_train=100"] and spec.metrics_for("8gaussians") is None
    assert data_name("fashion-mnist,subset=10") == "fashion-mnist" and data_name(" moons ") == "moons"


def test_metrics_table_naming_no_dataset_of_the_sweep_is_refused():
    spec = SweepSpec(data=["8gaussians"], objective=["vae"], metrics={"digts": ["svm"]})
    with pytest.raises(UsageError, match="metrics name dataset 'digts'.*valid: 8gaussians"):
        expand(spec, plugins.registry())


def test_dpvae_fashion_mnist_metrics_are_bounded():
    spec = load_sweep_file(DPVAE)
    tasks = expand(spec, plugins.registry())
    fm = [t for t in tasks if t.config["data"]["name"] == "fashion-mnist"]
    moons = [t for t in tasks if t.config["data"]["name"] == "moons"]
    assert len(fm) == len(moons) == 10
    for t in fm:
        opts = {m["name"]: m["options"] for m in t.config["metrics"]}
        assert set(opts) == {"fid_gen", "fid_rec", "svm", "knn5", "nll"}
        assert opts["fid_gen"]["n"] == opts["fid_rec"]["n"] == 2000
        assert opts["svm"]["n_train"] == opts["knn5"]["n_train"] == 2000
        assert opts["nll"]["k"] * opts["nll"]["n"] <= 2000
    assert {"kl", "jsd", "gnelbo"} <= set(_metric_names(moons[0]))


def test_aggregate_posterior_against_scipy_in_five_dimensions():
    """LP-Gen's score log q(z) = log 1/M sum_m N(z; mu_m, diag(exp(logvar_m))), computed apart with
    scipy's multivariate normal densities and logsumexp."""
    rng = np.random.default_rng(3)
    mu, logvar = rng.normal(size=(40, 5)), rng.normal(scale=0.5, size=(40, 5))
    z = rng.normal(scale=1.5, size=(30, 5))
    logn = np.stack([multivariate_normal(mu[m], np.diag(np.exp(logvar[m]))).logpdf(z) for m in range(40)], 1)
    want = logsumexp(logn, axis=1) - np.log(40)
    got = aggregate_log_posterior(*(torch.from_numpy(a) for a in (z, mu, logvar)), chunk=7).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)
    low = lowest_posterior(torch.from_numpy(z), 4, torch.from_numpy(mu), torch.from_numpy(logvar)).numpy()
    np.testing.assert_array_equal(low, z[np.argsort(want)[:4]])
