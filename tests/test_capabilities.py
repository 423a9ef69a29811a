"""The prior capabilities of introzoo.priors.base: a plugin prior that declares one gets the behaviour
that needs it, one that does not is refused by the regularizer that needs it, and the contract checks
hold a declared capability to what it promises."""

from __future__ import annotations

import math

import pytest
import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from introzoo import hookimpl
from introzoo.cli import main
from introzoo.errors import UsageError
from introzoo.priors.base import LogvarTransformable, Mixture, Prior
from introzoo.priors.gaussian import StandardGaussian
from introzoo.priors.mog import MixturePrior
from introzoo.priors.vamp import VampPrior
from introzoo.regularizers.clip_logvar import ClipLogvar, ClipLogvarConfig
from introzoo.regularizers.resp_entropy import RespEntropy, RespEntropyConfig
from introzoo.testing import check_component, tiny_model

FAST = ["-n", "4", "--metric", "kl,n_samples=200", "-q", "--threads", "1"]


class BumpsConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    K: int = Field(3, gt=0, description="number of bumps")
    init: str = Field("fixed", description="fixed, or data (posteriors of K training points)")


class Bumps(Prior):
    """A fixed mixture of K Gaussians on the first axis (``torch.distributions``), declaring ``Mixture``
    structurally (it does not subclass it) and data initialisation; it has no ``logvar`` transform."""

    kl_samples = 20

    def __init__(self, zdim: int, K: int = 3, init: str = "fixed", defect: str = "") -> None:
        super().__init__(zdim)
        self.K, self.defect, self.received = K, defect, []
        mu = torch.zeros(K, zdim)
        mu[:, 0] = torch.linspace(-1.5, 1.5, K)
        self.register_buffer("means", mu)
        self.register_buffer("lv", torch.full((K, zdim), math.log(0.3)))
        self.data_init_points = K if init == "data" else 0

    def _dist(self):
        mix = torch.distributions.Categorical(logits=torch.zeros(self.K, dtype=self.means.dtype, device=self.means.device))
        comp = torch.distributions.Independent(torch.distributions.Normal(self.means, torch.exp(0.5 * self.lv)), 1)
        return torch.distributions.MixtureSameFamily(mix, comp)

    def sample(self, n, with_grad=False):
        return self._dist().sample((n,))

    def log_prob(self, z, stop_gradient=False):
        return self._dist().log_prob(z)

    def components(self, stop_gradient=False):
        mu = self.means + (0.2 if self.defect == "components" else 0.0)
        return mu, self.lv, torch.full((self.K,), -math.log(self.K), dtype=mu.dtype, device=mu.device)

    def responsibilities(self, z, stop_gradient=False):
        d = self._dist()
        r = torch.softmax(d.component_distribution.log_prob(z.unsqueeze(1)), 1)
        return r.flip(1) if self.defect == "responsibilities" else r

    def init_from_posterior(self, mu, logvar):
        self.received.append((mu.clone(), logvar.clone()))
        self.means.copy_(mu[: self.K])
        self.lv.copy_(logvar[: self.K])

    def on_warmup_end(self):
        return None if self.defect == "warmup" else False


class OnlyResponsibilities(StandardGaussian):
    """Has ``K`` and ``responsibilities`` but no ``components``: not a Mixture."""

    K = 2

    def responsibilities(self, z, stop_gradient=False):
        return torch.full((z.shape[0], 2), 0.5)


def plugin(name, factory, config=BumpsConfig):
    class P:
        pass

    P.__name__ = f"plugin-{name}"

    @hookimpl
    def introzoo_register_priors(register):
        register(name, factory, config, "A test prior.")

    P.introzoo_register_priors = staticmethod(introzoo_register_priors)
    return P


@pytest.fixture
def bumps(register_plugin):
    register_plugin(plugin("bumps", lambda c, zdim: Bumps(zdim, c.K, c.init)))


def test_capabilities_are_declared_by_members_or_by_subclassing():
    b, sg = Bumps(2), StandardGaussian(2)
    assert isinstance(b, Mixture) and not isinstance(b, LogvarTransformable)  # structural: no subclassing
    assert not isinstance(sg, Mixture) and not isinstance(sg, LogvarTransformable)
    assert not isinstance(OnlyResponsibilities(2), Mixture)
    mog = MixturePrior(2, K=3)
    vamp = VampPrior(2, K=3)
    tiny_model(vamp)  # a VampPrior has components once attached to its model
    for p in (mog, vamp):
        assert isinstance(p, Mixture) and isinstance(p, LogvarTransformable)
    assert mog.data_init_points == 0 and MixturePrior(2, K=4, init="data").data_init_points == 4
    assert sg.data_init_points == 0 and sg.on_warmup_end() is False


def test_mixture_components_are_the_density_of_the_builtins():
    """``components()`` of mog and vamp (before and after to_mog) against an independent float64 sum."""
    from introzoo.losses import gaussian_log_prob

    vamp = VampPrior(2, K=4, to_mog=True)
    tiny_model(vamp).double()
    mog = MixturePrior(2, K=3, learn_weights=True).double()
    with torch.no_grad():
        mog.logits.copy_(torch.tensor([0.3, -1.0, 0.5]))
    z = torch.randn(11, 2, dtype=torch.float64)
    for prior in (mog, vamp, "to_mog"):
        if prior == "to_mog":
            assert vamp.on_warmup_end() is True
            prior = vamp
        mu, lv, lw = prior.components()
        direct = torch.logsumexp(lw + gaussian_log_prob(z.unsqueeze(1), mu.unsqueeze(0), lv.unsqueeze(0)), 1)
        torch.testing.assert_close(prior.log_prob(z), direct)
        torch.testing.assert_close(torch.logsumexp(lw, 0), torch.tensor(0.0, dtype=torch.float64))


def test_a_declared_mixture_gets_resp_entropy_and_clip_logvar_is_refused(bumps, capsys, tmp_path):
    assert (
        main(
            [
                "run",
                "-p",
                "bumps",
                "--reg",
                "resp-entropy",
                "-n",
                "4",
                "--metric",
                "resp_entropy,n_data=500",
                "--threads",
                "1",
                "--json",
                "--out",
                str(tmp_path / "run"),
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert '"resp_entropy"' in out and '"active_components"' in out
    assert main(["run", "-p", "bumps", "--reg", "clip-logvar", *FAST, "--out", str(tmp_path / "refused")]) == 2
    err = capsys.readouterr().err
    assert "regularizer 'clip-logvar' needs a mixture prior with log-variances" in err
    assert "Bumps does not declare LogvarTransformable" in err


def test_resp_entropy_refuses_what_is_not_a_mixture_of_two():
    with pytest.raises(UsageError, match="OnlyResponsibilities is not a Mixture"):
        RespEntropy(RespEntropyConfig()).check(OnlyResponsibilities(2))
    with pytest.raises(UsageError, match="Bumps is K = 1"):
        RespEntropy(RespEntropyConfig()).check(Bumps(2, K=1))
    RespEntropy(RespEntropyConfig()).check(Bumps(2, K=2))
    with pytest.raises(UsageError, match="StandardGaussian does not declare LogvarTransformable"):
        ClipLogvar(ClipLogvarConfig()).check(StandardGaussian(2))


def test_data_initialisation_receives_the_posteriors_of_training_points(bumps):
    """``data_init_points = K``: the trainer hands the encoder's posteriors of K training points drawn with
    the run's seed (recomputed here from the built, untrained model)."""
    import introzoo

    built = introzoo.build(prior="bumps,init=data,K=4", data="8gaussians", seed=5, device="cpu")
    prior = built.model.prior
    assert len(prior.received) == 1
    mu, logvar = prior.received[0]
    g = torch.Generator().manual_seed(5)
    with torch.no_grad():
        mu2, lv2 = built.model.encode(built.dataset.sample(4, g))
    torch.testing.assert_close(mu, mu2)
    torch.testing.assert_close(logvar, lv2)
    torch.testing.assert_close(prior.components()[0], mu2)
    assert introzoo.build(prior="bumps", data="8gaussians", device="cpu").model.prior.received == []


class Swaps(StandardGaussian):
    """Replaces its (learnable) parameter when the warm-up ends and records the model it is attached to."""

    learnable = True

    def __init__(self, zdim):
        super().__init__(zdim)
        self.shift = nn.Parameter(torch.zeros(zdim))
        self.attached = None

    def attach(self, model):
        self.attached = [model]

    def on_warmup_end(self):
        self.shift = nn.Parameter(torch.ones(self.zdim))
        return True


def test_attach_and_a_parameter_replacing_warmup_end_reach_the_objective():
    from introzoo.objectives.base import TrainSettings
    from introzoo.objectives.soft import SoftConfig, SoftIntroVAE

    prior = Swaps(2)
    model = tiny_model(prior)
    assert prior.attached[0] is model
    obj = SoftIntroVAE(SoftConfig(num_vae=1), model, [], TrainSettings())
    old = obj.optimizers["prior"].param_groups[0]["params"][0]
    x = torch.randn(8, 2)
    obj.train_step(x, 0)
    obj.train_step(x, 1)  # the warm-up ended: the optimisers were rebuilt around the new parameter
    params = obj.optimizers["prior"].param_groups[0]["params"]
    assert params[0] is prior.shift and params[0] is not old


@pytest.mark.parametrize(
    "factory,match",
    [
        (lambda c, zdim: Bumps(zdim, defect="components"), "log_prob differs from the mixture of its components"),
        (lambda c, zdim: Bumps(zdim, defect="responsibilities"), r"responsibilities\(z\) is not softmax"),
        (lambda c, zdim: Bumps(zdim, defect="warmup"), r"on_warmup_end\(\) must return True or False"),
        (lambda c, zdim: nn.Identity(), "must return an introzoo.priors.base.Prior"),
    ],
)
def test_contract_checks_hold_a_declared_capability_to_its_promise(register_plugin, factory, match):
    register_plugin(plugin("bad", factory))
    with pytest.raises(AssertionError, match=match):
        check_component("priors", "bad", n=20_000)


def test_a_correct_plugin_mixture_with_data_initialisation_passes_the_contract(register_plugin):
    register_plugin(plugin("bumps", lambda c, zdim: Bumps(zdim, c.K, c.init)))
    check_component("priors", "bumps", n=20_000, options={"init": "data"})


def test_latent_plot_draws_the_components_of_a_mixture(tmp_path, monkeypatch):
    from introzoo.figures import pictures as plots

    seen = {}
    monkeypatch.setattr(
        plots, "save_latent_figure", lambda out, z, dens, half, c, caption="": seen.update(c=c) or "latent.png"
    )
    for prior, expected in ((Bumps(2), Bumps(2).means.double().numpy()), (StandardGaussian(2), None)):
        plots.save_latent_plot(tiny_model(prior), torch.randn(50, 2).numpy(), tmp_path)
        if expected is None:
            assert seen["c"] is None
        else:
            assert seen["c"].shape == (3, 2) and (seen["c"] == expected).all()
