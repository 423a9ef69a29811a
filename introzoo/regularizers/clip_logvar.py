r"""``clip-logvar``: adaptive soft clipping of the prior's log-variances (seed 003 §4.2.2, Eq. 10, §C.1;
docs/conventions.md, "Prior learning"). For each latent dimension j::

    f(l) = l - (1/b_j) log(1 + exp(b_j (l - hi_j))) + (1/b_j) log(1 + exp(b_j (lo_j - l))),
    b_j = K / (|hi_j - lo_j| + 1e-8)

``[lo_j, hi_j]`` is the min/max over components of the prior's log-variance in dimension j at the end of
the VAE warm-up; ``K = 10`` keeps at least 85% of the range (each side loses ``log(2)/K`` of it).

Where this follows the seed 003 official code rather than its Eq. 10 (which writes
``b_j = K/(hi_j - lo_j)``): the sharpness carries the official ``+1e-8`` (``get_prior_params`` in the
official ``models_build.py``: ``beta = 10/(delta + 1e-8)``, ``delta = |max - min|``), and a dimension with
``lo_j == hi_j`` is frozen at ``hi_j`` (the official ``torch.where(max == min, max, ...)``).

The softplus is ``torch.logaddexp(x, 0)``: exact and overflow-free for any x, with the right derivative
everywhere, in particular 1/2 at x = 0, where the components that define the range sit at the end of the
warm-up. (The official softplus returns x itself above ``b x > 20``, as ``F.softplus`` does; the two
differ there by at most ``log(1 + e^-20)/b ~ 2e-9/b``, and only far outside the range.)
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
    """log(1 + exp(x)), exact and overflow-free for any x; derivative sigmoid(x) (1/2 at x = 0)."""
    return torch.logaddexp(x, torch.zeros_like(x))


def soft_clip(l: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor, K: float) -> torch.Tensor:
    """The clipping function f above (Eq. 10) with the official ``b = K/(|hi - lo| + 1e-8)``, element-wise;
    dimensions with lo == hi are frozen at hi."""
    b = K / ((hi - lo).abs() + 1e-8)
    # f itself, rearranged with softplus(x) = x + softplus(-x) so that no term grows with |l|: above the
    # middle of the range f = hi - sp(b(hi - l))/b + sp(b(lo - l))/b, below it f = lo + sp(b(l - lo))/b
    # - sp(b(l - hi))/b. Same function and derivative; no rounding of l - (b(l - hi))/b far outside, so
    # f stays monotone to the last bit.
    upper = hi - softplus(b * (hi - l)) / b + softplus(b * (lo - l)) / b
    lower = lo + softplus(b * (l - lo)) / b - softplus(b * (l - hi)) / b
    out = torch.where(l >= 0.5 * (lo + hi), upper, lower)
    return torch.where(hi == lo, hi.expand_as(l), out)


class ClipLogvar(Regularizer):
    name = "clip-logvar"

    def __init__(self, config: ClipLogvarConfig) -> None:
        self.K = config.K
        self.lo: torch.Tensor | None = None
        self.hi: torch.Tensor | None = None

    def check(self, prior) -> None:
        if not isinstance(prior, LogvarTransformable):
            raise UsageError(
                f"regularizer 'clip-logvar' needs a mixture prior with log-variances (mog or vamp); "
                f"{type(prior).__name__} does not declare LogvarTransformable (introzoo.priors.base)"
            )

    def on_warmup_end(self, model) -> None:
        lv = model.prior.logvar.detach()
        self.lo, self.hi = lv.min(0).values.clone(), lv.max(0).values.clone()
        lo, hi, K = self.lo, self.hi, self.K
        model.prior.set_logvar_transform(lambda raw: soft_clip(raw, lo, hi, K))

    def report(self, model) -> dict:
        if self.lo is None:
            return {"range_fixed": False}
        lv = model.prior.logvar.detach()
        return {
            "lo": self.lo.tolist(),
            "hi": self.hi.tolist(),
            "logvar_min": lv.min(0).values.tolist(),
            "logvar_max": lv.max(0).values.tolist(),
            "inside": bool(torch.all(lv >= self.lo - 1e-6) and torch.all(lv <= self.hi + 1e-6)),
        }


def build(config: ClipLogvarConfig) -> ClipLogvar:
    return ClipLogvar(config)


build.packable = True  # trains in a pack (introzoo.packing.loop)
