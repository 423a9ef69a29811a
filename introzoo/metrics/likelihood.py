r"""Likelihoods of images under a trained model (SPEC §7; seed 001 §6.5 and Table 7).

The decoder's observation model is the Gaussian whose negative log-likelihood is the training loss REC:
``p(x|z) = N(x; D(z), (1/2) I)``, so ``log p(x|z) = -REC(x, D(z)) - (d/2) log(pi)`` with ``d`` the number of
pixels (SPEC §1: REC has no 1/2 and no log 2*pi; this is the density it implies).

- ELBO: ``log p(x) >= E_q[log p(x|z)] - KL(q(z|x) || p(z))``, estimated with one posterior sample
  per image (``elbo``) — the OOD score of seed 001 Table 7.
- Importance-weighted bound (``nll``): ``log p(x) ~= log (1/K) sum_k p(x|z_k) p(z_k) / q(z_k|x)``,
  ``z_k ~ q(z|x)``. For K = 1 its expectation is the ELBO; it increases with K towards ``log p(x)``
  (Burda et al.). ``nll`` reports ``-mean log p(x)`` over test images in nats per image (lower is better).
- ``ood_auroc``: AUROC (scikit-learn) of separating in-distribution test images (label 1) from another
  dataset's (label 0) by a score (ELBO or the importance-weighted bound): higher score = more in-distribution.
"""

from __future__ import annotations

import math

import torch
from pydantic import BaseModel, ConfigDict, Field

from ..losses import gaussian_log_prob, rec
from .base import EvalContext, Metric


def log_px_given_z(x: torch.Tensor, x_hat: torch.Tensor) -> torch.Tensor:
    """``log N(x; x_hat, I/2)`` per sample: ``-REC(x, x_hat) - (d/2) log(pi)``."""
    d = x[0].numel()
    return -rec(x, x_hat) - 0.5 * d * math.log(math.pi)


@torch.no_grad()
def iw_log_likelihood(model, x: torch.Tensor, k: int, chunk: int = 64) -> torch.Tensor:
    """Importance-weighted estimate of ``log p(x)`` per image with ``k`` posterior samples."""
    model.eval()
    mu, logvar = model.encode(x)
    terms = []
    for start in range(0, k, chunk):
        t = min(chunk, k - start)
        z = mu.unsqueeze(0) + torch.randn((t,) + mu.shape, device=mu.device, dtype=mu.dtype) * (0.5 * logvar).exp()
        zf = z.reshape(-1, mu.shape[1])
        x_hat = model.decode(zf)
        xr = x.unsqueeze(0).expand((t,) + x.shape).reshape((-1,) + x.shape[1:])
        log_w = (log_px_given_z(xr, x_hat) + model.prior.log_prob(zf)
                 - gaussian_log_prob(zf, mu.repeat(t, 1), logvar.repeat(t, 1)))
        terms.append(log_w.reshape(t, x.shape[0]))
    return torch.logsumexp(torch.cat(terms), dim=0) - math.log(k)


@torch.no_grad()
def elbo(model, x: torch.Tensor) -> torch.Tensor:
    """One-sample ELBO per image: ``log p(x|z) - KL(q(z|x) || p)``, ``z ~ q(z|x)``."""
    model.eval()
    mu, logvar = model.encode(x)
    return log_px_given_z(x, model.decode(model.reparameterize(mu, logvar))) - model.kl(mu, logvar)


@torch.no_grad()
def scores(model, images: torch.Tensor, score: str, k: int, device, batch_size: int = 250) -> torch.Tensor:
    """Per-image scores of uint8 images: ``elbo`` or ``iw`` (importance-weighted, ``k`` samples)."""
    out = []
    for chunk in images.split(batch_size):
        x = chunk.float().div(255.0).to(device)
        out.append((elbo(model, x) if score == "elbo" else iw_log_likelihood(model, x, k)).cpu())
    return torch.cat(out).double()


def auroc(in_scores: torch.Tensor, out_scores: torch.Tensor) -> float:
    """AUROC of telling in-distribution (label 1) from OOD (label 0), higher score = in-distribution."""
    from sklearn.metrics import roc_auc_score

    y = torch.cat([torch.ones(len(in_scores)), torch.zeros(len(out_scores))]).numpy()
    return float(roc_auc_score(y, torch.cat([in_scores, out_scores]).numpy()))


class NLLConfig(BaseModel):
    """Options of ``nll``."""

    model_config = ConfigDict(extra="forbid")

    k: int = Field(100, gt=0, description="importance samples per image")
    n: int = Field(1000, gt=0, description="test images evaluated (the first n of the test split)")


class NLL(Metric):
    directions = {"nll": "min"}
    kinds = frozenset({"image"})

    def __init__(self, config: NLLConfig) -> None:
        self.config = config

    def compute(self, ctx: EvalContext) -> dict[str, float]:
        x, _ = ctx.dataset.images("test")
        with ctx.seeded("nll"):  # the posterior samples
            s = scores(ctx.model, x[: self.config.n], "iw", self.config.k, ctx.device)
        ctx.info["nll"] = {"k": self.config.k, "n": int(s.shape[0]), "unit": "nats per image",
                           "decoder": "N(D(z), I/2)"}
        return {"nll": float(-s.mean())}
