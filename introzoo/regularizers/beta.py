r"""``beta-h`` and ``beta-b``: the two beta-VAE forms of seed 004 Table 1 (Higgins et al. 2017; Burgess
et al. 2018), as replacements of the objective's real-data KL term (see :mod:`.base`).

``beta-h`` (seed 004 Eq. 19; Higgins et al. 2017)::

    kl_term = beta * mean_batch KL(q(z|x) || p(z)),                           beta = 4

``beta-b`` (capacity schedule; seed 004 §2 defers to Burgess et al. 2018, their objective with a
controlled capacity C increased linearly during training)::

    kl_term = gamma * | mean_batch KL(q(z|x) || p(z)) - C(t) |,
    C(t)    = min(C_max, C_max * (t + 1) / C_stop),          gamma = 15, C_max = 25 nats, C_stop = 100,000

``t`` is the training iteration (0-based, as the objective counts it; the warm-up of an introspective
objective counts too). ``t + 1``: the reference code of Burgess et al.'s objective (1Konny/Beta-VAE
``solver.py``, the capacity from its iteration counter incremented before the step) and the dpVAE
authors' code both take the first iteration as 1, so the first step already has capacity C_max/C_stop. The absolute value is of the batch-mean KL, as in Burgess et al.'s objective
``gamma |KL - C|`` with the KL an expectation over the data.

With the decoupled prior (``flow:L``) the KL is the prior's, computed through ``g_eta`` (seed 004
Eq. 18): ``-0.5 sum(logvar) + 0.5 ||g(z)||^2 - log|det dg/dz| - d/2`` with ``z ~ q(z|x)``, which gives
seed 004 Eq. 20 for ``beta-h`` (beta times both of its KL terms) and the same substitution inside
``|KL - C(t)|`` for ``beta-b``; nothing else changes (no sampling).
"""

from __future__ import annotations

from typing import ClassVar

import torch
from pydantic import BaseModel, ConfigDict, Field

from .base import Regularizer


class BetaHConfig(BaseModel):
    """Options of ``beta-h``."""

    model_config = ConfigDict(extra="forbid")
    primary: ClassVar[str] = "beta"

    beta: float = Field(4.0, ge=0, description="weight of KL(q(z|x) || p(z)) (dpVAE Table 1: 4)")


class BetaBConfig(BaseModel):
    """Options of ``beta-b``."""

    model_config = ConfigDict(extra="forbid")
    primary: ClassVar[str] = "gamma"

    gamma: float = Field(15.0, ge=0, description="weight of |KL - C(t)| (dpVAE Table 1: 15)")
    C_max: float = Field(25.0, ge=0, description="final capacity C in nats (dpVAE Table 1: 25)")
    C_stop: int = Field(100_000, gt=0, description="iteration at which C reaches C_max (dpVAE Table 1: 100,000)")


def capacity(iteration: int, C_max: float, C_stop: int) -> float:
    """C(t) = min(C_max, C_max * (t + 1) / C_stop) at the 0-based iteration t (Burgess et al. 2018, as
    their reference code and the dpVAE code count: the first iteration is 1)."""
    return min(C_max, C_max * (iteration + 1) / C_stop)


class BetaH(Regularizer):
    name = "beta-h"
    replaces_kl = True

    def __init__(self, config: BetaHConfig) -> None:
        self.beta = config.beta

    def kl_term(self, model, mu, logvar, z, iteration):
        return self.beta * model.kl(mu, logvar).mean()


class BetaB(Regularizer):
    name = "beta-b"
    replaces_kl = True

    def __init__(self, config: BetaBConfig) -> None:
        self.config = config
        self._logs: dict[str, torch.Tensor] = {}

    def kl_term(self, model, mu, logvar, z, iteration):
        c = capacity(iteration, self.config.C_max, self.config.C_stop)
        kl = model.kl(mu, logvar).mean()
        self._logs = {"capacity": torch.tensor(c), "kl_raw": kl.detach()}
        return self.config.gamma * (kl - c).abs()

    def after_step(self, model, x, iteration):
        logs, self._logs = self._logs, {}
        return logs


def build_beta_h(config: BetaHConfig) -> BetaH:
    return BetaH(config)


def build_beta_b(config: BetaBConfig) -> BetaB:
    return BetaB(config)
