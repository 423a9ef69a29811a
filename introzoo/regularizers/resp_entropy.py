r"""``resp-entropy``: responsibility-entropy regularisation (seed 003 §4.2.3, Eq. 11, §C.3;
docs/conventions.md, "Prior learning").

Eq. 11: ``c_k = E_x E_{z~q(z|x)}[w_k N(z; mu_k, s_k^2) / sum_l w_l N(z; mu_l, s_l^2)]`` and
``H_n = -sum_k c_k log(c_k + 1e-8) / log K``. The encoder maximises it: ``-s * r_entropy * H_n`` is added
to ``L_E`` (which is minimised). The prior is a frozen target here (no gradient to it); the gradient
reaches the encoder through the posterior samples.

Two choices follow the seed 003 official code (the 2D and image training scripts, the encoder update):

- ``samples=100`` (default): the inner expectation over ``q(z|x)`` is estimated with 100 fresh
  reparameterised draws per real point (the posterior parameters tiled 100 times, as the official
  ``reparameterize(mu.repeat(MC, 1), logvar.repeat(MC, 1))``), responsibilities averaged over all of
  them. ``samples=0`` uses the batch's single training sample ``z`` instead (same expectation, noisier).
- ``normalize="official"`` (default): the entropy is divided by ``log K`` only when ``log K > 1``, i.e.
  for K >= 3 (the official ``if torch.log(K) > 1``); for K = 2 it is not normalised.
  ``normalize="always"`` divides by ``log K`` for every K, as the paper's footnote to §4.2.3 and Eq. 11
  write it. The two agree for every K >= 3.
"""

from __future__ import annotations

import math
from typing import ClassVar, Literal

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
    samples: int = Field(
        100, ge=0, description="fresh posterior draws per real point (official: 100); 0 = the training sample z"
    )
    normalize: Literal["official", "always"] = Field(
        "official", description="official: divide by log K only when log K > 1 (K >= 3); always: every K"
    )


def normalized_entropy(c: torch.Tensor, normalize: str = "always") -> torch.Tensor:
    """H_n(C) = -sum c_k log(c_k + 1e-8) / log K for a responsibility vector C of K >= 2 entries.
    ``normalize="official"``: the division by log K only when log K > 1 (seed 003 official code)."""
    h = -(c * torch.log(c + 1e-8)).sum()
    log_k = math.log(c.shape[-1])
    return h / log_k if normalize == "always" or log_k > 1 else h


class RespEntropy(Regularizer):
    name = "resp-entropy"

    def __init__(self, config: RespEntropyConfig) -> None:
        self.r_entropy = config.r_entropy
        self.samples = config.samples
        self.normalize = config.normalize

    def check(self, prior) -> None:
        if not isinstance(prior, Mixture) or prior.K < 2:
            what = f"K = {prior.K}" if isinstance(prior, Mixture) else "not a Mixture (introzoo.priors.base)"
            raise UsageError(
                f"regularizer 'resp-entropy' needs a prior of at least 2 components (mog:K or vamp:K); "
                f"{type(prior).__name__} is {what}"
            )

    def encoder_loss(self, model, mu, logvar, z):
        if self.samples > 0:  # draw t of point i is row t*B + i
            z = model.reparameterize(mu.repeat(self.samples, 1), logvar.repeat(self.samples, 1))
        c = model.prior.responsibilities(z, stop_gradient=True).mean(0)
        return -model.s * self.r_entropy * normalized_entropy(c, self.normalize)


def build(config: RespEntropyConfig) -> RespEntropy:
    return RespEntropy(config)


build.packable = True  # trains in a pack (introzoo.packing.loop)
