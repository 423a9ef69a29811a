"""The VAE that every objective trains: backbone encoder/decoder plus a prior (docs/conventions.md, "Shared terms").

``E(x) -> (mu, logvar)`` (the encoder's ``2*zdim`` outputs split in half), ``z = mu + exp(0.5 logvar) eps``,
``D(z) -> x_hat``. ``kl(mu, logvar)`` is KL(q(z|x) || p(z)) per sample, delegated to the prior.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from .losses import rec

from .priors.base import Prior


def grouped(*tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """The tensors through one identity view each, so that the gradients of every use inside a call
    (a mixture prior's Monte Carlo KL uses ``mu`` twice; a regularizer may too) are summed there first
    and reach the tensor as one contribution. A pack hands each member its slice through one ``unbind``
    (:mod:`introzoo.packing.members`), which groups the same way; with the same grouping alone and in a
    pack, float32 gradient sums associate alike and a packed member is its solo run bit for bit."""
    return tuple(t.view_as(t) for t in tensors)


class DataShaped:
    """``input_dim`` and ``s`` of a model from its ``data_shape`` (the VAE and a pack member's view)."""

    data_shape: tuple[int, ...]

    @property
    def input_dim(self) -> int:
        return math.prod(self.data_shape)

    @property
    def s(self) -> float:
        """The normalising factor s = 1 / input_dim of Soft-IntroVAE (docs/conventions.md, "Shared terms")."""
        return 1.0 / self.input_dim

    #: the per-sample distance of the objectives' REC terms: ``None`` is REC(x, y), the summed squared error
    #: (:func:`introzoo.losses.rec`); ``--rec-loss perceptual,weights=FILE`` sets LORD's VGG distance
    #: (:mod:`introzoo.perceptual`) with :meth:`set_rec_loss`
    rec_loss: Any = None

    def rec(self, x: torch.Tensor, y: torch.Tensor, lead: int = 0) -> torch.Tensor:
        """REC(x, y) of every objective, one value per sample: :attr:`rec_loss` when set, else the summed
        squared error (``lead``: leading member dimensions, :func:`introzoo.losses.rec`)."""
        if self.rec_loss is None:
            return rec(x, y, lead)
        if lead:
            raise RuntimeError("a reconstruction distance other than mse does not run in a pack")
        return self.rec_loss(x, y)

    def set_rec_loss(self, distance: Any) -> None:
        """Use ``distance(x, y) -> (B,)`` for REC; kept outside the module's parameters and state (a frozen
        feature network is not part of the checkpoint)."""
        object.__setattr__(self, "rec_loss", distance)


class VAE(DataShaped, nn.Module):
    #: leading member dimensions of the model's tensors: 0, ``(B, ...)``; a pack's view of its members
    #: has 1, ``(k, B, ...)`` (:mod:`introzoo.objectives.members` reads it)
    lead: int = 0

    def __init__(self, encoder: nn.Module, decoder: nn.Module, prior: Prior, data_shape: tuple[int, ...], zdim: int) -> None:
        super().__init__()
        self.encoder = encoder
        self.decoder = decoder
        self.prior = prior
        self.data_shape = tuple(data_shape)
        self.zdim = zdim
        prior.attach(self)  # a no-op unless the prior is built from the model (VampPrior)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, logvar = self.encoder(x).chunk(2, dim=1)
        return mu, logvar

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)

    def reparameterize(self, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        return mu + self.noise(mu) * torch.exp(0.5 * logvar)

    def noise(self, like: torch.Tensor) -> torch.Tensor:
        """Standard normal noise shaped like ``like`` (data-parallel runs draw the whole batch's and keep
        their rows, :mod:`introzoo.training.distributed`)."""
        return torch.randn_like(like)

    def kl(self, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        if type(self.prior).pack_view is None:  # a pack runs it member by member: group
            mu, logvar = grouped(mu, logvar)
        return self.prior.kl(mu, logvar)

    def forward(self, x: torch.Tensor, deterministic: bool = False):
        mu, logvar = self.encode(x)
        z = mu if deterministic else self.reparameterize(mu, logvar)
        return mu, logvar, z, self.decode(z)

    @torch.no_grad()
    def sample(self, n: int) -> torch.Tensor:
        return self.decode(self.prior.sample(n))

    def parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        """encoder / decoder / prior parameters (the prior's only if it is learnable and has any)."""
        groups = {"encoder": list(self.encoder.parameters()), "decoder": list(self.decoder.parameters())}
        prior = [p for p in self.prior.parameters() if p.requires_grad]
        if self.prior.learnable and prior:
            groups["prior"] = prior
        return groups
