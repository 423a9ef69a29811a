"""``vae``: the plain (beta-)VAE, one joint step on ``beta_rec*REC(x, x_r) + beta_kl*KL(x)``
(docs/conventions.md, "Objectives")."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from .base import Objective


class VAEConfig(BaseModel):
    """Options of the ``vae`` objective."""

    model_config = ConfigDict(extra="forbid")

    beta_rec: float = Field(1.0, gt=0, description="weight of the reconstruction term REC(x, x_r)")
    beta_kl: float = Field(1.0, ge=0, description="weight of KL(q(z|x) || p(z))")


class VAEObjective(Objective):
    name = "vae"

    def step(self, x, iteration):
        return self.vae_step(x, self.config.beta_rec, self.config.beta_kl, regularize=True)


def build(config: VAEConfig, model, regularizers=None, train=None) -> VAEObjective:
    return VAEObjective(config, model, regularizers, train)


build.packable = True  # trains in a pack (introzoo.packing.loop)
