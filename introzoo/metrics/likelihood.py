r"""Likelihoods of images under a trained model (seed 001 §6.5 and Table 7; docs/conventions.md, "Image metrics").

The decoder's observation model is the Gaussian whose negative log-likelihood is the training loss REC:
``p(x|z) = N(x; D(z), (1/2) I)``, so ``log p(x|z) = -REC(x, D(z)) - (d/2) log(pi)`` with ``d`` the number of
pixels (REC has no 1/2 and no log 2*pi, docs/conventions.md, "Shared terms"; this is the density it implies).

- ELBO: ``log p(x) >= E_q[log p(x|z)] - KL(q(z|x) || p(z))``, estimated with one posterior sample
  per image (``elbo``) — the OOD score of seed 001 Table 7.
- Importance-weighted bound (``nll``): ``log p(x) ~= log (1/K) sum_k p(x|z_k) p(z_k) / q(z_k|x)``,
  ``z_k ~ q(z|x)``. For K = 1 its expectation is the ELBO; it increases with K towards ``log p(x)``
  (Burda et al.). ``nll`` reports ``-mean log p(x)`` over test images in nats per image (lower is better).
  It streams: at most ``chunk`` decoded images per pass whatever ``k`` and ``n``, the log-weights of
  each image combined by a running ``logaddexp`` (:mod:`introzoo.metrics.stream`).
- ``ood_auroc``: AUROC (scikit-learn) of separating in-distribution test images (label 1) from another
  dataset's (label 0) by a score (ELBO or the importance-weighted bound): higher score = more in-distribution.
"""

from __future__ import annotations

import math

import torch
from pydantic import BaseModel, ConfigDict, Field

from ..losses import gaussian_log_prob, rec
from ..conditional.model import conditioned
from .base import EvalContext, Metric
from .stream import EVAL_CHUNK, noise_key, posterior_noise, random_key


def log_px_given_z(x: torch.Tensor, x_hat: torch.Tensor) -> torch.Tensor:
    """``log N(x; x_hat, I/2)`` per sample: ``-REC(x, x_hat) - (d/2) log(pi)``."""
    d = x[0].numel()
    return -rec(x, x_hat) - 0.5 * d * math.log(math.pi)


def _encode(model, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    p = next(model.parameters(), None)
    return model.encode(x if p is None else x.to(dtype=p.dtype))


@torch.no_grad()
def iw_log_likelihood(
    model, x: torch.Tensor, k: int, chunk: int = EVAL_CHUNK, key: int | None = None, first: int = 0
) -> torch.Tensor:
    """Importance-weighted estimate of ``log p(x)`` per image with ``k`` posterior samples, decoding at most
    ``chunk`` images per pass: ``max(1, chunk // k)`` images with all their samples, or one image with
    ``chunk`` of its samples, the log-weights summed into a running ``logaddexp`` (memory independent of
    ``k``). The noise of sample ``j`` of image ``first + i`` is keyed by ``key``
    (:func:`~introzoo.metrics.stream.posterior_noise`; ``None``: drawn from torch's generator), so the
    value does not depend on ``chunk``."""
    model.eval()
    key = random_key() if key is None else key
    per = max(1, chunk // k)  # images per pass
    out = []
    for lo in range(0, x.shape[0], per):
        xb = x[lo : lo + per]
        mu, logvar = _encode(model, xb)
        b, zdim = mu.shape
        total = torch.full((b,), -math.inf, dtype=mu.dtype, device=mu.device)
        step = k if per > 1 else min(k, chunk)  # samples per pass
        for s in range(0, k, step):
            t = min(step, k - s)
            eps = posterior_noise(key, range(first + lo, first + lo + b), s, t, zdim).to(mu)
            z = mu.unsqueeze(0) + eps * (0.5 * logvar).exp()
            zf = z.reshape(-1, zdim)
            xr = xb.unsqueeze(0).expand((t,) + xb.shape).reshape((-1,) + xb.shape[1:])
            log_w = (
                log_px_given_z(xr.to(mu), model.decode(zf))
                + model.prior.log_prob(zf)
                - gaussian_log_prob(zf, mu.repeat(t, 1), logvar.repeat(t, 1))
            )
            total = torch.logaddexp(total, torch.logsumexp(log_w.reshape(t, b), dim=0))
        out.append(total - math.log(k))
    return torch.cat(out)


@torch.no_grad()
def elbo(model, x: torch.Tensor, eps: torch.Tensor | None = None) -> torch.Tensor:
    """One-sample ELBO per image: ``log p(x|z) - KL(q(z|x) || p)``, ``z = mu + sigma * eps``, ``z ~ q(z|x)``
    (``eps``: the standard normal noise, else drawn). For a prior without closed-form KL the KL is the
    one-sample estimate ``log q(z|x) - log p(z)`` at the same ``z``."""
    model.eval()
    mu, logvar = _encode(model, x)
    eps = torch.randn_like(mu) if eps is None else eps.to(mu)
    z = mu + eps * torch.exp(0.5 * logvar)
    prior = getattr(model, "prior", None)
    if prior is None or getattr(prior, "closed_form_kl", True):
        kl = model.kl(mu, logvar)
    else:
        kl = gaussian_log_prob(z, mu, logvar) - prior.log_prob(z)
    return log_px_given_z(x.to(mu), model.decode(z)) - kl


@torch.no_grad()
def scores(
    model,
    images: torch.Tensor,
    score: str,
    k: int,
    device,
    chunk: int = EVAL_CHUNK,
    key: int | None = None,
    advance=None,
    labels: torch.Tensor | None = None,
) -> torch.Tensor:
    """Per-image scores of uint8 images: ``elbo`` or ``iw`` (importance-weighted, ``k`` samples), at most
    ``chunk`` images per pass; the noise of image ``i`` is keyed by ``key`` and ``i`` (not by the chunking).
    ``advance(n)`` is told of each image done."""
    key = random_key() if key is None else key
    per = chunk if score == "elbo" else max(1, chunk // k)
    out = []
    for lo in range(0, images.shape[0], per):
        x = images[lo : lo + per].float().div(255.0).to(device)
        with conditioned(model, None if labels is None else labels[lo : lo + per]):  # a conditional model: log p(x|y)
            if score == "elbo":
                zdim = model.zdim
                s = elbo(model, x, posterior_noise(key, range(lo, lo + x.shape[0]), 0, 1, zdim)[0])
            else:
                s = iw_log_likelihood(model, x, k, chunk, key, first=lo)
        out.append(s.cpu())
        if advance is not None:
            advance(x.shape[0])
    return torch.cat(out).double()


def auroc(in_scores: torch.Tensor, out_scores: torch.Tensor) -> float:
    """AUROC of telling in-distribution (label 1) from OOD (label 0), higher score = in-distribution."""
    from sklearn.metrics import roc_auc_score

    y = torch.cat([torch.ones(len(in_scores)), torch.zeros(len(out_scores))]).numpy()
    return float(roc_auc_score(y, torch.cat([in_scores, out_scores]).numpy()))


def roc(in_scores: torch.Tensor, out_scores: torch.Tensor):
    """The ROC curve of :func:`auroc`'s task: (false positive rates, true positive rates), numpy arrays from
    (0, 0) to (1, 1) over every threshold."""
    from sklearn.metrics import roc_curve

    y = torch.cat([torch.ones(len(in_scores)), torch.zeros(len(out_scores))]).numpy()
    fpr, tpr, _ = roc_curve(y, torch.cat([in_scores, out_scores]).numpy())
    return fpr, tpr


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
        x, y = (t[: self.config.n] for t in ctx.dataset.images("test"))
        with ctx.phase(f"nll: {self.config.k} importance samples per image", x.shape[0]) as advance:
            s = scores(
                ctx.model, x, "iw", self.config.k, ctx.device, ctx.chunk, noise_key(ctx.seed, "nll"), advance, labels=y
            )
        ctx.info["nll"] = {"k": self.config.k, "n": int(s.shape[0]), "unit": "nats per image", "decoder": "N(D(z), I/2)"}
        return {"nll": float(-s.mean())}
