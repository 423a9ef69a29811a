"""Per-sample loss terms shared by the objectives and metrics (docs/conventions.md, "Shared terms").

- ``rec(x, y)``: per-sample **sum** of squared errors over all data dimensions (no 1/2, no log 2π).
- ``kl_standard_normal(mu, logvar)``: ``-0.5 * sum_j (1 + logvar - mu^2 - exp(logvar))`` per sample.
Batch losses are the batch means of these.
"""

from __future__ import annotations

import math

import torch

#: log 2π as a Python float: exact in the tensor's own dtype (a ``torch.tensor`` of it would be float32)
LOG_2PI = math.log(2 * math.pi)


def rec(x: torch.Tensor, y: torch.Tensor, lead: int = 0) -> torch.Tensor:
    """REC(x, y) = sum over data dimensions of (x - y)^2, one value per sample (docs/conventions.md,
    "Shared terms"). ``lead``: leading dimensions before the batch dimension (1 for a pack of members,
    see :mod:`introzoo.packing.model`)."""
    return (x - y).pow(2).reshape(tuple(x.shape[: lead + 1]) + (-1,)).sum(-1)


def kl_standard_normal(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, exp(logvar)) || N(0, I)) per sample, summed over latent dims
    (docs/conventions.md, "Shared terms")."""
    return -0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(-1)


def gaussian_log_prob(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """log N(z; mu, diag(exp(logvar))), summed over the last dimension."""
    return -0.5 * (((z - mu).pow(2) / logvar.exp()) + logvar + LOG_2PI).sum(-1)
