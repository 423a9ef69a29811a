"""The prior contract (SPEC §3): ``sample(n)``, ``log_prob(z)``, ``kl(mu, logvar)``, ``learnable``."""

from __future__ import annotations

import math

import torch
from torch import nn



class Prior(nn.Module):
    """A latent prior p(z). Objectives never ask which prior they hold.

    Subclasses implement :meth:`sample` and :meth:`log_prob`; :meth:`kl` defaults to the Monte Carlo
    estimate ``mean_t[log q(z_t|x) - log p(z_t)]`` with ``z_t ~ q(z|x)`` (SPEC §1) and is overridden
    where a closed form exists.
    """

    #: whether the prior has parameters an objective may train
    learnable: bool = False
    #: Monte Carlo samples per posterior for :meth:`kl` when there is no closed form
    kl_samples: int = 100
    #: whether :meth:`kl` is exact (no Monte Carlo)
    closed_form_kl: bool = False

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
