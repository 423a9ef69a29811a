r"""``mog:K``: mixture of Gaussians prior (seed 003 §3; docs/conventions.md, "Priors").

    p(z) = sum_k w_k N(z; mu_k, diag(exp(logvar_k))),   log p(z) = logsumexp_k(log w_k + log N(z; mu_k, s_k^2))

- means and log-variances learnable by default (``learn_means``, ``learn_logvars``);
- contributions ``w = softmax(e)``, learnable with ``learn_weights=true`` (uniform otherwise);
- initialisation ``random`` (mu ~ N(0, 1)/sqrt(K d), logvar ~ N(0, 1)) or ``data`` (the encoder's
  (mu, logvar) of K training points: ``data_init_points = K``, set by :meth:`init_from_posterior`
  before training);
- ``kl(mu, logvar)``: Monte Carlo ``mean_t[log q(z_t|x) - log p(z_t)]``, ``kl_samples`` draws
  (docs/conventions.md, "Shared terms");
- ``responsibilities(z)``: ``softmax_k(log w_k + log N(z; mu_k, s_k^2))`` (seed 003 Eq. 11, §C.3);
- ``sample(n, with_grad=True)`` is reparameterised per component (gradient to means and log-variances;
  the component choice itself is discrete).

It declares the :class:`~introzoo.priors.base.Mixture` and
:class:`~introzoo.priors.base.LogvarTransformable` capabilities: a log-variance transform
(``clip-logvar``) can be installed with :meth:`set_logvar_transform`; ``logvar`` always returns the
transformed value.
"""

from __future__ import annotations

import math
from typing import Callable, ClassVar, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from .base import LogvarTransformable, Mixture, Prior


def gaussian_mixture_terms(
    z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor, logw: torch.Tensor | float
) -> torch.Tensor:
    """``log w_k + log N(z_n; mu_k, diag(exp(logvar_k)))`` as an (N, K) matrix.

    The Monte Carlo KL evaluates ~10^5 points x K components per step, so the quadratic form is
    expanded into two matrix products (``z^2 @ (-iv/2)^T + z @ (mu iv)^T`` plus a per-component
    constant) instead of materialising (N, K, d) differences: a few passes over (N, K) forward and
    backward. Points and means are first centred on the mean of the component means, which keeps the
    expansion's cancellation small (absolute error ~1e-7 x (|mu - centre| / s)^2 in float32).
    """
    d = z.shape[1]
    centre = mu.detach().mean(0)
    zc, muc = z - centre, mu - centre
    inv_var = torch.exp(-logvar)
    const = -0.5 * (logvar.sum(1) + d * math.log(2 * math.pi) + (muc * muc * inv_var).sum(1)) + logw
    out = torch.addmm(
        const.unsqueeze(0)
        if isinstance(const, torch.Tensor)
        else torch.full((1, mu.shape[0]), const, dtype=z.dtype, device=z.device),
        zc * zc,
        (-0.5 * inv_var).T,
    )
    return torch.addmm(out, zc, (muc * inv_var).T)


class _QuadLogSumExp(torch.autograd.Function):
    """``out_n = logsumexp_k(c_k + [zc_n^2, zc_n] . W_k)`` with a hand-written backward: the
    exponentials and row sums kept from the forward give every gradient as one matrix product
    (``d out_n / d L_nk = E_nk / S_n``), so the (N, K) matrix is read twice and never rescaled.
    Products are laid out so that the long dimension N is the inner one of a row-major operand
    (``X^T E`` rather than ``E^T X``), several times faster on CPU for these skinny shapes."""

    @staticmethod
    def forward(ctx, zc, W, c):
        X = torch.cat([zc * zc, zc], 1)  # (N, 2d)
        L = torch.addmm(c.unsqueeze(0), X, W.T.contiguous())
        m = L.amax(1, keepdim=True)
        E = L.sub_(m).exp_()
        S = E.sum(1, keepdim=True)
        out = (m + torch.log(S)).squeeze(1)
        ctx.save_for_backward(X, E, S, W)
        return out

    @staticmethod
    def backward(ctx, g):
        X, E, S, W = ctx.saved_tensors
        d = X.shape[1] // 2
        gs = g.unsqueeze(1) / S  # (N, 1): g_n / S_n
        grad_zc = grad_W = grad_c = None
        if ctx.needs_input_grad[0]:
            GW = (E @ W).mul_(gs)  # (N, 2d)
            grad_zc = 2 * X[:, d:] * GW[:, :d] + GW[:, d:]
        if ctx.needs_input_grad[1] or ctx.needs_input_grad[2]:
            T = torch.cat([X * gs, gs], 1).T @ E  # (2d + 1, K)
            grad_W, grad_c = T[: 2 * d].T, T[2 * d]
        return grad_zc, grad_W, grad_c


def mixture_log_prob(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor, logw: torch.Tensor | float) -> torch.Tensor:
    """``log sum_k w_k N(z; mu_k, diag(exp(logvar_k)))`` per row of z: the quadratic form expanded into
    matrix products around the centre of the means (see :func:`gaussian_mixture_terms`), with an
    efficient fused log-sum-exp; gradients reach z, mu, logvar and logw through ordinary autograd on
    the small (K, d) coefficients."""
    d = z.shape[1]
    centre = mu.detach().mean(0)
    zc, muc = z - centre, mu - centre
    inv_var = torch.exp(-logvar)
    c = -0.5 * (logvar.sum(1) + d * math.log(2 * math.pi) + (muc * muc * inv_var).sum(1)) + logw
    if not isinstance(c, torch.Tensor) or c.dim() == 0:
        c = torch.as_tensor(c, dtype=z.dtype, device=z.device).expand(mu.shape[0])
    return _QuadLogSumExp.apply(zc, torch.cat([-0.5 * inv_var, muc * inv_var], 1), c)


class MoGConfig(BaseModel):
    """Options of the ``mog`` prior."""

    model_config = ConfigDict(extra="forbid")
    primary: ClassVar[str] = "K"

    K: int = Field(10, gt=0, description="number of components")
    learn_means: bool = Field(True, description="means are learnable")
    learn_logvars: bool = Field(True, description="log-variances are learnable")
    learn_weights: bool = Field(False, description="learnable contributions w = softmax(e) (uniform otherwise)")
    init: Literal["random", "data"] = Field("random", description="random, or the encoder outputs of K training points")
    kl_samples: int = Field(100, gt=0, description="Monte Carlo samples for KL(q || p)")


class MixturePrior(Prior, Mixture, LogvarTransformable):
    def __init__(
        self,
        zdim: int,
        K: int,
        learn_means: bool = True,
        learn_logvars: bool = True,
        learn_weights: bool = False,
        init: str = "random",
        kl_samples: int = 100,
    ) -> None:
        super().__init__(zdim)
        self.K, self.init, self.kl_samples = K, init, kl_samples
        self.mu = nn.Parameter(torch.randn(K, zdim) / math.sqrt(K * zdim), requires_grad=learn_means)
        self.raw_logvar = nn.Parameter(torch.randn(K, zdim), requires_grad=learn_logvars)
        self.logits = nn.Parameter(torch.zeros(K), requires_grad=learn_weights)
        self._transform: Callable[[torch.Tensor], torch.Tensor] | None = None

    @property
    def learnable(self) -> bool:  # type: ignore[override]
        return any(p.requires_grad for p in (self.mu, self.raw_logvar, self.logits))

    @property
    def data_init_points(self) -> int:  # type: ignore[override]
        return self.K if self.init == "data" else 0

    # -- parameters ---------------------------------------------------------------------------
    @property
    def logvar(self) -> torch.Tensor:
        return self._transform(self.raw_logvar) if self._transform is not None else self.raw_logvar

    def set_logvar_transform(self, fn: Callable[[torch.Tensor], torch.Tensor] | None) -> None:
        self._transform = fn

    def log_weights(self) -> torch.Tensor:
        return torch.log_softmax(self.logits, dim=0)

    @torch.no_grad()
    def init_from_posterior(self, mu: torch.Tensor, logvar: torch.Tensor) -> None:
        """``init=data``: components at the posteriors of K training points."""
        self.mu.copy_(mu[: self.K])
        self.raw_logvar.copy_(logvar[: self.K])

    def components(self, stop_gradient: bool = False) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        mu, logvar, logw = self.mu, self.logvar, self.log_weights()
        return (mu.detach(), logvar.detach(), logw.detach()) if stop_gradient else (mu, logvar, logw)

    # -- the prior contract -------------------------------------------------------------------
    def component_log_prob(self, z: torch.Tensor, stop_gradient: bool = False) -> torch.Tensor:
        """log w_k + log N(z; mu_k, s_k^2) for every z (rows) and k (columns)."""
        return gaussian_mixture_terms(z, *self.components(stop_gradient))

    def log_prob(self, z: torch.Tensor, stop_gradient: bool = False) -> torch.Tensor:
        return mixture_log_prob(z, *self.components(stop_gradient))

    def responsibilities(self, z: torch.Tensor, stop_gradient: bool = False) -> torch.Tensor:
        return torch.softmax(self.component_log_prob(z, stop_gradient), dim=1)

    def sample(self, n: int, with_grad: bool = False) -> torch.Tensor:
        with torch.set_grad_enabled(with_grad and torch.is_grad_enabled()):
            k = torch.multinomial(torch.softmax(self.logits.detach(), 0), n, replacement=True)
            eps = torch.randn(n, self.zdim, device=self.mu.device, dtype=self.mu.dtype)
            z = self.mu[k] + torch.exp(0.5 * self.logvar[k]) * eps
        return z if with_grad else z.detach()


def build(config: MoGConfig, zdim: int) -> MixturePrior:
    return MixturePrior(
        zdim, config.K, config.learn_means, config.learn_logvars, config.learn_weights, config.init, config.kl_samples
    )


build.packable = True  # trains in a pack (introzoo.packing.loop)
