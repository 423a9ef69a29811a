r"""``resp-entropy``: responsibility-entropy regularisation (seed 003 §4.2.3, Eq. 11, §C.3; SPEC §4).

``c_k`` = mean over the real batch's posterior samples of the responsibility of prior component k;
``H_n = -sum_k c_k log(c_k + 1e-8) / log K``. The encoder maximises it: ``-s * r_entropy * H_n`` is added
to ``L_E`` (which is minimised). The prior is a frozen target here (no gradient to it).
"""

from __future__ import annotations

import math
from typing import ClassVar

import torch
from pydantic import BaseModel, ConfigDict, Field

from ..errors import UsageError
from ..priors.base import Mixture
from .base import Regularizer


class RespEntropyConfig(BaseModel):
    """Options of ``resp-entropy``."""

    model_config = ConfigDict(extra="forbid")
    primary: ClassVar[str] = "r_entropy"

    r_entropy: float = Field(1.0, ge=0, description="weight of the normalised responsibility entropy")


def normalized_entropy(c: torch.Tensor) -> torch.Tensor:
    """H_n(C) = -sum c_k log(c_k + 1e-8) / log K for a responsibility vector C of K >= 2 entries."""
    return -(c * torch.log(c + 1e-8)).sum() / math.log(c.shape[-1])


class RespEntropy(Regularizer):
    name = "resp-entropy"

    def __init__(self, config: RespEntropyConfig) -> None:
        self.r_entropy = config.r_entropy

    def check(self, prior) -> None:
        if not isinstance(prior, Mixture) or prior.K < 2:
            what = f"K = {prior.K}" if isinstance(prior, Mixture) else "not a Mixture (introzoo.priors.base)"
            raise UsageError(f"regularizer 'resp-entropy' needs a prior of at least 2 components (mog:K or vamp:K); "
                             f"{type(prior).__name__} is {what}")

    def encoder_loss(self, model, mu, logvar, z):
        c = model.prior.responsibilities(z, stop_gradient=True).mean(0)
        return -model.s * self.r_entropy * normalized_entropy(c)


def build(config: RespEntropyConfig) -> RespEntropy:
    return RespEntropy(config)
