r"""``clip-logvar``: adaptive soft clipping of the prior's log-variances (seed 003 §4.2.2, Eq. 10, §C.1;
SPEC §4). For each latent dimension j::

    f(l) = l - (1/b_j) log(1 + exp(b_j (l - hi_j))) + (1/b_j) log(1 + exp(b_j (lo_j - l))),   b_j = K / (hi_j - lo_j)

``[lo_j, hi_j]`` is the min/max over components of the prior's log-variance in dimension j at the end of
the VAE warm-up; ``K = 10`` keeps at least 85% of the range (each side loses ``log(2)/K`` of it). The
softplus is the exact stable form ``max(x, 0) + log1p(exp(-|x|))`` (PyTorch's ``F.softplus`` switches to
the identity above a threshold, which would make f very slightly non-monotone). With a single
component (lo == hi) the variance is frozen.
"""

from __future__ import annotations

import torch
from pydantic import BaseModel, ConfigDict, Field

from ..errors import UsageError
from ..priors.base import LogvarTransformable
from .base import Regularizer


class ClipLogvarConfig(BaseModel):
    """Options of ``clip-logvar``."""

    model_config = ConfigDict(extra="forbid")

    K: float = Field(10.0, gt=0, description="sharpness of the soft clipping (10 keeps >= 85% of the range)")


def softplus(x: torch.Tensor) -> torch.Tensor:
    """log(1 + exp(x)), exact and overflow-free for any x."""
    return torch.clamp_min(x, 0) + torch.log1p(torch.exp(-x.abs()))


def soft_clip(l: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor, K: float) -> torch.Tensor:
    """The clipping function f of SPEC §4, element-wise; dimensions with lo == hi are frozen at lo."""
    width = hi - lo
    frozen = width <= 0
    b = K / torch.where(frozen, torch.ones_like(width), width)
    out = l - softplus(b * (l - hi)) / b + softplus(b * (lo - l)) / b
    return torch.where(frozen, lo.expand_as(l), out)


class ClipLogvar(Regularizer):
    name = "clip-logvar"

    def __init__(self, config: ClipLogvarConfig) -> None:
        self.K = config.K
        self.lo: torch.Tensor | None = None
        self.hi: torch.Tensor | None = None

    def check(self, prior) -> None:
        if not isinstance(prior, LogvarTransformable):
            raise UsageError(f"regularizer 'clip-logvar' needs a mixture prior with log-variances (mog or vamp); "
                             f"{type(prior).__name__} does not declare LogvarTransformable (introzoo.priors.base)")

    def on_warmup_end(self, model) -> None:
        lv = model.prior.logvar.detach()
        self.lo, self.hi = lv.min(0).values.clone(), lv.max(0).values.clone()
        lo, hi, K = self.lo, self.hi, self.K
        model.prior.set_logvar_transform(lambda raw: soft_clip(raw, lo, hi, K))


    def report(self, model) -> dict:
        if self.lo is None:
            return {"range_fixed": False}
        lv = model.prior.logvar.detach()
        return {"lo": self.lo.tolist(), "hi": self.hi.tolist(), "logvar_min": lv.min(0).values.tolist(),
                "logvar_max": lv.max(0).values.tolist(),
                "inside": bool(torch.all(lv >= self.lo - 1e-6) and torch.all(lv <= self.hi + 1e-6))}


def build(config: ClipLogvarConfig) -> ClipLogvar:
    return ClipLogvar(config)
