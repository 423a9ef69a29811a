r"""``factor``: FactorVAE (Kim & Mnih 2018; seed 004 Eqs. 21-22), a replacement of the objective's
real-data KL term (see :mod:`.base`) by the KL plus a total-correlation penalty::

    kl_term = mean_batch KL(q(z|x) || p(z)) + gamma * TC,     TC = mean_i log(D(z_i) / (1 - D(z_i)))

``gamma = 1000`` (seed 004 Table 1). ``D`` is the regularizer's own discriminator (seed 004 §3): 5 fully
connected layers of 1000 units (``layers``, ``hidden``), each followed by LeakyReLU(0.2), and a linear
output; it returns the logit of "z is a sample of q(z)" against "of prod_k q(z_k)", so TC is the batch
mean of the logit. (Kim & Mnih's code has two outputs whose difference is this logit; one output is the
same family.) Its gradient reaches the encoder through ``z``; the discriminator's parameters are held
fixed in that term (they are never in the model's groups).

After every training step that used the term (:meth:`after_step`), the discriminator takes one step of
its own Adam (lr 1e-4, betas (0.5, 0.9), Kim & Mnih's settings) on the binary cross-entropy between the
step's samples ``z`` (label 1) and permuted latents (label 0): each dimension permuted independently
across the batch (Kim & Mnih Algorithm 1). Kim & Mnih's Algorithm 2 draws the permuted latents from a
second batch; introzoo uses the two halves of the step's batch: the first half as samples of q(z), the
second half permuted. The discriminator and its optimiser are in the objective's checkpoint state.

With the decoupled prior (``flow:L``, seed 004 Eq. 22) only the KL changes: it is computed through
``g_eta`` (seed 004 Eq. 18). TC and the permutations are on the representation ``z``.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field
from torch import nn
from torch.func import functional_call

from .base import Regularizer


class FactorConfig(BaseModel):
    """Options of ``factor``."""

    model_config = ConfigDict(extra="forbid")
    primary: ClassVar[str] = "gamma"

    gamma: float = Field(1000.0, ge=0, description="weight of the total correlation (dpVAE Table 1: 1000)")
    layers: int = Field(5, gt=0, description="hidden layers of the discriminator (dpVAE: 5)")
    hidden: int = Field(1000, gt=0, description="units per discriminator layer (dpVAE: 1000)")
    lr: float = Field(1e-4, gt=0, description="discriminator Adam learning rate (Kim & Mnih: 1e-4)")
    beta1: float = Field(0.5, ge=0, lt=1, description="discriminator Adam beta1 (Kim & Mnih: 0.5)")
    beta2: float = Field(0.9, ge=0, lt=1, description="discriminator Adam beta2 (Kim & Mnih: 0.9)")
    #: options added after runs were recorded, at the value those runs had (left out of the run hash)
    hash_neutral: ClassVar[dict[str, Any]] = {"batch_weighting": "paper"}
    batch_weighting: Literal["paper", "authors"] = Field(
        "paper",
        description="paper: every term a batch mean; authors: the dpVAE code's weighting, the TC term divided by the "
        "batch size (their reconstruction and KL are batch sums, this term a batch mean)",
    )


def discriminator(zdim: int, layers: int = 5, hidden: int = 1000) -> nn.Sequential:
    mods: list[nn.Module] = []
    width = zdim
    for _ in range(layers):
        mods += [nn.Linear(width, hidden), nn.LeakyReLU(0.2)]
        width = hidden
    return nn.Sequential(*mods, nn.Linear(width, 1))


def permute_dims(z: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Each column of ``z`` permuted independently across the rows (Kim & Mnih Algorithm 1)."""
    b = z.shape[0]
    cols = [z[torch.randperm(b, generator=generator).to(z.device), k] for k in range(z.shape[1])]
    return torch.stack(cols, dim=1)


class Factor(Regularizer):
    name = "factor"
    replaces_kl = True

    def __init__(self, config: FactorConfig) -> None:
        self.config = config
        self.disc: nn.Sequential | None = None
        self.optimizer: torch.optim.Optimizer | None = None
        self._z: torch.Tensor | None = None  # the step's samples, for the discriminator's step
        self._tc: torch.Tensor | None = None

    def bind(self, model) -> None:
        p = next(model.parameters())
        c = self.config
        self.disc = discriminator(model.zdim, c.layers, c.hidden).to(device=p.device, dtype=p.dtype)
        self.optimizer = torch.optim.Adam(self.disc.parameters(), lr=c.lr, betas=(c.beta1, c.beta2))

    def parameters(self) -> list[nn.Parameter]:
        return list(self.disc.parameters()) if self.disc is not None else []

    def logit(self, z: torch.Tensor, fixed: bool = False) -> torch.Tensor:
        """The discriminator's logit per row; ``fixed``: no gradient to its parameters (it still flows
        to ``z``)."""
        if not fixed:
            return self.disc(z).squeeze(-1)
        params = {k: v.detach() for k, v in self.disc.named_parameters()}
        return functional_call(self.disc, params, (z,)).squeeze(-1)

    def tc(self, z: torch.Tensor) -> torch.Tensor:
        """TC estimate: batch mean of the log-odds ``log D(z)/(1 - D(z))``."""
        return self.logit(z, fixed=True).mean()

    def kl_term(self, model, mu, logvar, z, iteration):
        self._z = z.detach()
        tc = self.tc(z)
        self._tc = tc.detach()
        scale = 1.0 / z.shape[0] if self.config.batch_weighting == "authors" else 1.0
        return model.kl(mu, logvar).mean() + self.config.gamma * scale * tc

    def train_discriminator(self, z: torch.Tensor) -> torch.Tensor:
        """One step of the discriminator on samples ``z`` of q(z): first half label 1, second half
        permuted label 0. Returns its loss."""
        h = z.shape[0] // 2
        joint, perm = z[:h], permute_dims(z[h : 2 * h])
        logits = self.logit(torch.cat([joint, perm]))
        labels = torch.cat([torch.ones(h), torch.zeros(h)]).to(logits)
        loss = F.binary_cross_entropy_with_logits(logits, labels)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return loss.detach()

    def after_step(self, model, x, iteration):
        if self._z is None or self._z.shape[0] < 2:  # the step had no such term (a warm-up step)
            return None
        z, self._z = self._z, None
        with torch.enable_grad():
            loss = self.train_discriminator(z)
        return {"tc": self._tc, "d_loss": loss}

    def state_dict(self):
        return {"discriminator": self.disc.state_dict(), "optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state):
        self.disc.load_state_dict(state["discriminator"])
        self.optimizer.load_state_dict(state["optimizer"])

    def report(self, model) -> dict:
        return {"discriminator": f"{self.config.layers} x {self.config.hidden}, LeakyReLU(0.2)"}


def build(config: FactorConfig) -> Factor:
    return Factor(config)
