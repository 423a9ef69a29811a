"""The MMD regularizer against a direct double sum over pairs (numpy, scipy's distances)."""

import math

import numpy as np
import pytest
import torch
from scipy.spatial.distance import cdist

from introzoo.priors.gaussian import StandardGaussian
from introzoo.testing import tiny_model
from introzoo_example.mmd import MMD, MMDConfig, mmd2


def mmd2_by_pairs(z, y, kernel, c):
    k = (lambda d2: c / (c + d2)) if kernel == "imq" else (lambda d2: np.exp(-d2 / c))
    n, m = len(z), len(y)
    kzz, kyy, kzy = k(cdist(z, z, "sqeuclidean")), k(cdist(y, y, "sqeuclidean")), k(cdist(z, y, "sqeuclidean"))
    zz = sum(kzz[i, j] for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    yy = sum(kyy[i, j] for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    return zz + yy - 2 * kzy.sum() / (n * m)


@pytest.mark.parametrize("kernel", ["imq", "rbf"])
@pytest.mark.parametrize("c", [None, 0.7])
def test_mmd2_against_a_double_sum(kernel, c):
    rng = np.random.default_rng(0)
    z, y = rng.normal(size=(9, 3)), rng.normal(1.0, 2.0, size=(7, 3))
    got = mmd2(torch.tensor(z), torch.tensor(y), kernel, c).item()
    assert got == pytest.approx(mmd2_by_pairs(z, y, kernel, 2 * 3 if c is None else c), rel=1e-12)


def test_mmd2_is_unbiased_zero_for_equal_distributions_and_positive_otherwise():
    torch.manual_seed(0)
    same = torch.stack([mmd2(torch.randn(50, 2), torch.randn(50, 2)) for _ in range(400)])
    assert abs(same.mean().item()) < 4 * same.std().item() / math.sqrt(400)
    assert mmd2(torch.randn(200, 2), torch.randn(200, 2) + 2.0).item() > 0.1


def test_encoder_term_is_s_weight_mmd2_and_reaches_the_encoder_only():
    model = tiny_model(StandardGaussian(2))
    x = torch.randn(32, 2)
    mu, logvar = model.encode(x)
    z = model.reparameterize(mu, logvar)
    reg = MMD(MMDConfig(weight=4.0))
    torch.manual_seed(5)
    term = reg.encoder_loss(model, mu, logvar, z)
    torch.manual_seed(5)
    y = torch.randn(32, 2)  # what StandardGaussian.sample draws with that seed
    expected = 0.5 * 4.0 * mmd2_by_pairs(z.detach().double().numpy(), y.double().numpy(), "imq", 4.0)
    assert term.item() == pytest.approx(expected, rel=1e-5)
    term.backward()
    assert all(p.grad is None for p in model.decoder.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.encoder.parameters())
