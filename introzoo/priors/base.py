r"""The prior contract (docs/conventions.md, "Priors"; docs/hooks.md) and the capabilities a prior may
declare.

Every prior subclasses :class:`Prior`: ``sample(n)``, ``log_prob(z)``, ``kl(mu, logvar)`` and the flags
and lifecycle methods below, all with defaults, so that the model, the objectives and the trainer call
them on any prior without asking which one they hold:

- ``learnable``: the prior has parameters an objective may train;
- ``closed_form_kl`` and ``kl_samples``: :meth:`Prior.kl` is exact, or a Monte Carlo estimate with
  ``kl_samples`` draws (an evaluation may lower it);
- :meth:`Prior.attach`: called once by the VAE that holds the prior (priors built from the encoder);
- :meth:`Prior.on_warmup_end`: called once when the VAE warm-up ends; ``True`` if it replaced parameters;
- ``data_init_points`` and :meth:`Prior.init_from_posterior`: before training, the posteriors of that
  many training points are handed to the prior (0: none).

Two capabilities are structural and optional; a regularizer or metric that needs one checks for it with
``isinstance`` (the protocols are runtime-checkable, so a plugin prior only has to have the members):

- :class:`Mixture`: K weighted Gaussian components (``resp-entropy``, the ``resp_entropy`` metric, the
  components drawn in ``latent.png``);
- :class:`LogvarTransformable`: the components' log-variances can be passed through a transform
  (``clip-logvar``);
- :class:`LowPosteriorSampler`: samples from the prior's low-posterior region (LP-Gen of seed 004,
  ``introzoo sample RUN --low-posterior``); :func:`aggregate_log_posterior` is the score it ranks by.
"""

from __future__ import annotations

import math
from typing import Any, Callable, ClassVar, Optional, Protocol, runtime_checkable

import torch
from torch import nn


class Prior(nn.Module):
    """A latent prior p(z). Objectives never ask which prior they hold.

    Subclasses implement :meth:`sample` and :meth:`log_prob`; :meth:`kl` defaults to the Monte Carlo
    estimate ``mean_t[log q(z_t|x) - log p(z_t)]`` with ``z_t ~ q(z|x)`` (docs/conventions.md, "Shared terms")
    and is overridden where a closed form exists.
    """

    #: whether the prior has parameters an objective may train
    learnable: bool = False
    #: Monte Carlo samples per posterior for :meth:`kl` when there is no closed form
    kl_samples: int = 100
    #: whether :meth:`kl` is exact (no Monte Carlo)
    closed_form_kl: bool = False
    #: training points whose posteriors :meth:`init_from_posterior` receives before training (0: none)
    data_init_points: int = 0
    #: a batched form for a pack (:mod:`introzoo.packing.model`): a classmethod ``pack_view(view)`` returning an
    #: object with the prior's interface over the view's members (``sg``); ``None``: a pack runs each
    #: member's own prior object, member by member (:mod:`introzoo.packing.members`)
    pack_view: ClassVar[Optional[Callable[[Any], Any]]] = None

    def __init__(self, zdim: int) -> None:
        super().__init__()
        self.zdim = zdim

    def sample(self, n: int, with_grad: bool = False) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def log_prob(self, z: torch.Tensor, stop_gradient: bool = False) -> torch.Tensor:  # pragma: no cover
        """log p(z) per row; ``stop_gradient``: no gradient reaches the prior's parameters (it still
        flows to ``z``)."""
        raise NotImplementedError

    def kl(self, mu: torch.Tensor, logvar: torch.Tensor, stop_gradient: bool = False) -> torch.Tensor:
        """KL(q(z|x) || p(z)) per sample (Monte Carlo, ``kl_samples`` draws). ``stop_gradient``: the
        prior as a KL *target* with its gradient stopped (``sg[p]`` of seed 003)."""
        t = self.kl_samples
        eps = torch.randn((t,) + tuple(mu.shape), device=mu.device, dtype=mu.dtype)
        z = mu.unsqueeze(0) + torch.exp(0.5 * logvar).unsqueeze(0) * eps
        # log q(z_t|x) written with eps = (z_t - mu)/s: the same value and the same path-wise gradient
        log_q = -0.5 * (eps * eps + logvar.unsqueeze(0) + math.log(2 * math.pi)).sum(-1)
        log_p = self.log_prob(z.reshape(-1, mu.shape[-1]), stop_gradient).reshape(t, mu.shape[0])
        return (log_q - log_p).mean(0)

    # -- lifecycle: called on every prior, no-ops by default ------------------------------------
    def attach(self, model: nn.Module) -> None:
        """Called once by the VAE holding this prior (``model.encode``, ``model.data_shape``); a prior
        built from the encoder (``vamp``) creates its parameters here. Keep ``model`` out of the
        module's registered children (its weights are not the prior's)."""

    def on_warmup_end(self) -> bool:
        """Called once when the VAE warm-up ends; return ``True`` if the prior replaced or froze
        parameters (the objective then rebuilds its optimisers)."""
        return False

    def init_from_posterior(self, mu: torch.Tensor, logvar: torch.Tensor) -> None:
        """Called before training with the encoder's posteriors ``(data_init_points, zdim)`` of as many
        training points when ``data_init_points > 0`` (``mog,init=data``)."""
        raise NotImplementedError(
            f"{type(self).__name__} declares data_init_points = {self.data_init_points} "
            "but does not implement init_from_posterior(mu, logvar)"
        )


@runtime_checkable
class Mixture(Protocol):
    """A mixture of K diagonal Gaussians ``p(z) = sum_k w_k N(z; mu_k, diag(exp(logvar_k)))``.

    ``components()`` is the mixture that ``log_prob`` evaluates (the contract checks compare them);
    ``responsibilities(z)`` is ``softmax_k(log w_k + log N(z; mu_k, s_k^2))`` per row (seed 003 Eq. 11).
    """

    #: number of components
    K: int

    def components(self, stop_gradient: bool = False) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(mu, logvar, log_w)``: means and log-variances ``(K, zdim)``, log-weights ``(K,)``."""
        ...

    def responsibilities(self, z: torch.Tensor, stop_gradient: bool = False) -> torch.Tensor:
        """``(N, K)`` posterior probabilities of the components for each row of ``z``; rows sum to 1."""
        ...


@runtime_checkable
class LogvarTransformable(Protocol):
    """Components' log-variances that can be passed through a transform (``clip-logvar``, seed 003
    §4.2.2): ``logvar`` is ``(K, zdim)`` and always the transformed value; ``set_logvar_transform(fn)``
    installs ``fn`` (applied to the untransformed log-variances; ``None`` removes it)."""

    @property
    def logvar(self) -> torch.Tensor: ...

    def set_logvar_transform(self, fn: Callable[[torch.Tensor], torch.Tensor] | None) -> None: ...


@runtime_checkable
class LowPosteriorSampler(Protocol):
    """Low-posterior samples (LP-Gen): ``candidates * n`` draws from the prior are ranked by the aggregate
    posterior ``q(z) = 1/M sum_m N(z; mu_m, diag(exp(logvar_m)))`` of M encoded data points, and the
    ``n`` with the lowest ``q(z)`` are returned ``(n, zdim)``, lowest first.

    Seed 004 shows them (§5, Figs. 3-6, "LP-Gen") and defers their definition to §4.1 of the dpVAE paper,
    the "low posterior samples" of Rosca et al. 2018. The dpVAE authors' code (github.com/iyerkrithika21/dpVAE,
    ``trainers/trainer.py``, ``Trainer.low_posterior``) computes them this way: ``z0 ~ N(0, I)``, mapped by
    ``g^{-1}`` for the decoupled prior, ranked by ``log q(z)`` of encoded data, the lowest kept (500 draws
    for 100 samples). introzoo scores with the exact mixture density above; that code's score keeps only
    the first two latent dimensions and divides by the log-variance where the variance belongs."""

    def sample_low_posterior(self, n: int, mu: torch.Tensor, logvar: torch.Tensor, candidates: int = 10) -> torch.Tensor: ...


def aggregate_log_posterior(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor, chunk: int = 256) -> torch.Tensor:
    """``log q(z) = logsumexp_m log N(z; mu_m, exp(logvar_m)) - log M`` per row of ``z`` (chunked)."""
    out = []
    for zc in z.split(chunk):
        d = zc.unsqueeze(1) - mu.unsqueeze(0)  # (c, M, zdim)
        log_n = -0.5 * (d * d * torch.exp(-logvar) + logvar + math.log(2 * math.pi)).sum(-1)
        out.append(torch.logsumexp(log_n, 1) - math.log(mu.shape[0]))
    return torch.cat(out)


def lowest_posterior(z: torch.Tensor, n: int, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """The ``n`` rows of ``z`` with the lowest aggregate posterior, lowest first."""
    order = aggregate_log_posterior(z, mu, logvar).argsort()
    return z[order[:n]]
