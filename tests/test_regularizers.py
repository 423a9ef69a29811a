"""clip-logvar and resp-entropy against their formulas (docs/conventions.md, "Prior learning") and
hand-worked values."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from introzoo.errors import UsageError
from introzoo.priors.gaussian import StandardGaussian
from introzoo.priors.mog import MixturePrior
from introzoo.regularizers.clip_logvar import ClipLogvar, ClipLogvarConfig, soft_clip
from introzoo.regularizers.resp_entropy import RespEntropy, RespEntropyConfig, normalized_entropy


def spec_clip(l, lo, hi, K):
    """The clipping function written out with numpy (float64, log1p(exp(.)) via logaddexp for stability), with the seed 003
    official code's sharpness b = K/(|hi - lo| + 1e-8)."""
    b = K / (np.abs(hi - lo) + 1e-8)
    return l - np.logaddexp(0, b * (l - hi)) / b + np.logaddexp(0, b * (lo - l)) / b


def test_soft_clip_matches_the_spec_formula():
    lo, hi = np.array([-3.0, 0.5]), np.array([1.0, 4.0])
    l = np.linspace(-50, 50, 1001)[:, None] * np.ones(2)
    got = soft_clip(torch.tensor(l), torch.tensor(lo), torch.tensor(hi), 10.0).numpy()
    np.testing.assert_allclose(got, spec_clip(l, lo, hi, 10.0), rtol=1e-12, atol=1e-12)
    assert np.all(np.isfinite(soft_clip(torch.tensor([1e6, -1e6]), torch.tensor(0.0), torch.tensor(1.0), 10.0).numpy()))


def test_soft_clip_is_monotone_bounded_and_keeps_85_percent_of_the_range():
    lo, hi = torch.tensor(-2.0, dtype=torch.float64), torch.tensor(3.0, dtype=torch.float64)
    l = torch.linspace(-30, 30, 20001, dtype=torch.float64, requires_grad=True)
    f = soft_clip(l, lo, hi, 10.0)
    (grad,) = torch.autograd.grad(f.sum(), l)
    assert torch.all(f[1:] >= f[:-1])  # non-decreasing everywhere (f' underflows far outside the range)
    central = (l > lo - 5) & (l < hi + 5)
    assert torch.all(grad[central] > 0) and torch.all(f[1:][central[1:]] > f[:-1][central[1:]])
    assert torch.all(f >= lo) and torch.all(f <= hi)  # inside the range (equal only by rounding, far out)
    kept = (soft_clip(hi, lo, hi, 10.0) - soft_clip(lo, lo, hi, 10.0)) / (hi - lo)
    assert kept >= 0.85
    # each side loses log(2)/K of the range (hand-worked): 1 - 2*log(2)/10 = 0.8614
    assert kept.item() == pytest.approx(1 - 2 * math.log(2) / 10, abs=1e-4)


def test_clip_range_is_fixed_at_warmup_end_and_single_component_is_frozen():
    class M:
        pass

    m = M()
    m.prior = MixturePrior(2, K=3)
    with torch.no_grad():
        m.prior.raw_logvar.copy_(torch.tensor([[-1.0, 0.0], [0.5, 2.0], [0.0, 1.0]]))
    reg = ClipLogvar(ClipLogvarConfig())
    reg.check(m.prior)
    reg.on_warmup_end(m)
    torch.testing.assert_close(reg.lo, torch.tensor([-1.0, 0.0]))
    torch.testing.assert_close(reg.hi, torch.tensor([0.5, 2.0]))
    with torch.no_grad():
        m.prior.raw_logvar.fill_(100.0)
    assert torch.all(m.prior.logvar <= reg.hi)  # clipped however far the raw parameter drifts
    single = M()
    single.prior = MixturePrior(2, K=1)
    ClipLogvar(ClipLogvarConfig()).on_warmup_end(single)
    before = single.prior.logvar.detach().clone()
    with torch.no_grad():
        single.prior.raw_logvar.add_(5.0)
    torch.testing.assert_close(single.prior.logvar, before)  # lo == hi: variance frozen


def test_clip_needs_a_mixture_prior():
    with pytest.raises(UsageError, match="needs a mixture prior"):
        ClipLogvar(ClipLogvarConfig()).check(StandardGaussian(2))


@pytest.mark.parametrize(
    "c,expected",
    [
        ([0.25, 0.25, 0.25, 0.25], 1.0),
        ([0.5, 0.5, 0.0, 0.0], 0.5),  # log 2 / log 4
        ([1.0, 0.0, 0.0, 0.0], 0.0),
        ([0.7, 0.3], -(0.7 * math.log(0.7) + 0.3 * math.log(0.3)) / math.log(2)),
    ],
)
def test_normalized_entropy_by_hand(c, expected):
    assert normalized_entropy(torch.tensor(c, dtype=torch.float64)).item() == pytest.approx(expected, abs=1e-7)


def test_resp_entropy_term_is_minus_s_r_h():
    class M:
        s = 0.5

    m = M()
    m.prior = MixturePrior(2, K=4).double()
    z = torch.randn(32, 2, dtype=torch.float64, requires_grad=True)
    reg = RespEntropy(RespEntropyConfig(r_entropy=10.0, samples=0))  # samples=0: the training sample z
    term = reg.encoder_loss(m, None, None, z)
    c = m.prior.responsibilities(z).mean(0)
    expected = -0.5 * 10.0 * (-(c * torch.log(c + 1e-8)).sum() / math.log(4))
    torch.testing.assert_close(term, expected)
    term.backward()
    assert z.grad is not None and m.prior.mu.grad is None  # the encoder is regularised, the prior is not
    with pytest.raises(UsageError, match="at least 2 components"):
        reg.check(MixturePrior(2, K=1))


def test_resp_entropy_metric_on_a_hand_built_case():
    """Data at two of three well-separated components: c = (1/2, 1/2, 0), H_n = log 2 / log 3, 2 active."""
    from introzoo.metrics.base import EvalContext
    from introzoo.metrics.prior import RespEntropyMetric, RespEntropyMetricConfig

    prior = MixturePrior(2, K=3)
    with torch.no_grad():
        prior.mu.copy_(torch.tensor([[-10.0, 0.0], [10.0, 0.0], [0.0, 10.0]]))
        prior.raw_logvar.zero_()

    class Model:
        def __init__(self):
            self.prior = prior

        def eval(self):
            return self

        def encode(self, x):
            return x, torch.full_like(x, -30.0)

        def reparameterize(self, mu, logvar):
            return mu

    class Data:
        kind = "2d"

        def sample(self, n, g=None):
            half = torch.tensor([[-10.0, 0.0]]).repeat(n // 2, 1)
            return torch.cat([half, -half])

    ctx = EvalContext(Model(), Data(), torch.device("cpu"), 0)
    out = RespEntropyMetric(RespEntropyMetricConfig(n_data=100)).compute(ctx)
    assert out["active_components"] == 2
    assert out["resp_entropy"] == pytest.approx(math.log(2) / math.log(3), abs=1e-6)
    ctx.model.prior = StandardGaussian(2)
    assert RespEntropyMetric(RespEntropyMetricConfig()).compute(ctx) == {}
