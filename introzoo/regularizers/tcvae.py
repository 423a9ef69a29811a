r"""``tcvae``: beta-TCVAE (Chen et al. 2018, "Isolating Sources of Disentanglement in VAEs"; seed 004
Eqs. 24-25), a replacement of the objective's real-data KL term (see :mod:`.base`).

With ``z_i ~ q(z|x_i)`` the batch's training samples (B of them), ``N`` the size of the training set and
``log p`` the prior's log-density, per sample ``i``::

    log q(z_i|x_i)                                   (the posterior's density at its own sample)
    log q(z_i)         ~ log sum_j w_ij q(z_i|x_j)
    log prod_k q(z_ik) ~ sum_k log sum_j w_ij q(z_ik|x_jk)
    MI   = mean_i[log q(z_i|x_i) - log q(z_i)]
    TC   = mean_i[log q(z_i) - log prod_k q(z_ik)]
    dwKL = mean_i[log prod_k q(z_ik) - log p(z_i)]
    kl_term = alpha*MI + beta*TC + gamma*dwKL             alpha = 1, beta = 4, gamma = 15 (seed 004 Table 1)

so that ``MI + TC + dwKL = mean_i[log q(z_i|x_i) - log p(z_i)]``, the one-sample estimate of the KL term
(the decomposition of Chen et al. §3, under the same estimator). Seed 004 gives the weights (Eq. 24: alpha on the index-code
mutual information, beta on the total correlation, gamma on the dimension-wise KL) but not the estimator;
introzoo follows Chen et al. §4 (and its appendix) and their official code (``vae_quant.py``):

- ``estimator="mws"`` (minibatch weighted sampling, default): ``w_ij = 1/(N B)`` for every j.
- ``estimator="mss"`` (minibatch stratified sampling): with ``M = B - 1``, ``w_ii = 1/N``, one stratum
  ``w_{i, i+1 mod B} = (N - M)/(N M)``, all other ``w_ij = 1/M``; each row sums to 1. This is the matrix
  Chen et al.'s appendix describes, not the one their code builds: ``log_importance_weight_matrix`` in
  rtqichen/beta-tcvae ``vae_quant.py`` (copied by iyerkrithika21/dpVAE) writes ``W.view(-1)[::M+1] = 1/N``
  and ``W.view(-1)[1::M+1] = strat_weight``; with ``M + 1 = B`` these slices stride by a whole row, so they
  fill **column 0** (every row's first entry gets 1/N) and **column 1** (the stratified weight), not the
  diagonal and the one beside it, and ``W[M - 1, 0] = strat_weight`` then overwrites one entry of
  column 0. introzoo keeps the intended matrix above.

``N`` is the option ``dataset_size``, else the run's training-set size (:attr:`Regularizer.data_size`:
the dataset's ``n_train``; for a 2D generator, iterations x batch size, the points a run draws), else the
batch size. MWS's gradients do not depend on N (it shifts MI, TC and dwKL by constants); MSS's do.

With the decoupled prior (``flow:L``, seed 004 Eq. 25) only ``log p`` changes: it is evaluated through
``g_eta`` (seed 004 Eq. 1: ``log N(g(z); 0, I) + log|det dg/dz|``), so ``MI + TC + dwKL`` is the KL of
seed 004 Eq. 18 on the same sample. MI and TC are on the representation ``z``. For a prior that does
not factorise over dimensions (flow, mixtures) ``dwKL = E_q(z)[log prod_k q(z_k) - log p(z)]``; for a
factorised one (``sg``) it is Chen et al.'s ``sum_k KL(q(z_k) || p(z_k))``.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field

from ..errors import UsageError
from .base import Regularizer


class TCVAEConfig(BaseModel):
    """Options of ``tcvae``."""

    model_config = ConfigDict(extra="forbid")

    alpha: float = Field(1.0, ge=0, description="weight of the index-code mutual information (dpVAE Table 1: 1)")
    beta: float = Field(4.0, ge=0, description="weight of the total correlation (dpVAE Table 1: 4)")
    gamma: float = Field(15.0, ge=0, description="weight of the dimension-wise KL (dpVAE Table 1: 15)")
    estimator: Literal["mws", "mss"] = Field("mws", description="minibatch weighted (mws) or stratified (mss) sampling")
    dataset_size: int = Field(0, ge=0, description="N of the estimator; 0 = the run's training-set size")
    #: options added after runs were recorded, at the value those runs had (left out of the run hash)
    hash_neutral: ClassVar[dict[str, Any]] = {"batch_weighting": "paper"}
    batch_weighting: Literal["paper", "authors"] = Field(
        "paper",
        description="paper: every term a batch mean; authors: the dpVAE code's weighting, the whole MI + TC + dimension-wise KL term divided by the "
        "batch size (their reconstruction and KL are batch sums, this term a batch mean)",
    )


def log_weights(batch: int, n: int, estimator: str, like: torch.Tensor) -> torch.Tensor:
    """log w_ij (B x B) of the minibatch estimator (see the module docstring)."""
    if estimator == "mws":
        return torch.full((batch, batch), -math.log(n * batch), dtype=like.dtype, device=like.device)
    m = batch - 1
    w = torch.full((batch, batch), 1.0 / m, dtype=like.dtype, device=like.device)
    idx = torch.arange(batch, device=like.device)
    w[idx, idx] = 1.0 / n
    w[idx, (idx + 1) % batch] = (n - m) / (n * m)
    return w.log()


def decompose(
    mu: torch.Tensor, logvar: torch.Tensor, z: torch.Tensor, log_pz: torch.Tensor, n: int, estimator: str = "mws"
) -> dict[str, torch.Tensor]:
    """Per-sample ``log q(z|x)``, ``log q(z)``, ``log prod_k q(z_k)``, ``log p(z)`` and the batch means
    ``mi``, ``tc``, ``dwkl``, ``kl`` (= mi + tc + dwkl) for samples ``z`` (B, d) of the posteriors."""
    b = z.shape[0]
    if b < 2:
        raise UsageError("regularizer 'tcvae' needs a batch of at least 2 samples (its estimator uses the batch)")
    n = max(int(n), b)
    # log q(z_ik | x_jk): (B, B, d), row i the sample, column j the posterior
    lq = -0.5 * (
        (z.unsqueeze(1) - mu.unsqueeze(0)).square() * torch.exp(-logvar).unsqueeze(0)
        + logvar.unsqueeze(0)
        + math.log(2 * math.pi)
    )
    log_qzx = lq.diagonal(dim1=0, dim2=1).sum(0)
    lw = log_weights(b, n, estimator, z)
    log_qz = torch.logsumexp(lw + lq.sum(-1), dim=1)
    log_qz_prod = torch.logsumexp(lw.unsqueeze(-1) + lq, dim=1).sum(-1)
    mi, tc, dwkl = (log_qzx - log_qz).mean(), (log_qz - log_qz_prod).mean(), (log_qz_prod - log_pz).mean()
    return {
        "log_qzx": log_qzx,
        "log_qz": log_qz,
        "log_qz_prod": log_qz_prod,
        "log_pz": log_pz,
        "mi": mi,
        "tc": tc,
        "dwkl": dwkl,
        "kl": (log_qzx - log_pz).mean(),
    }


class TCVAE(Regularizer):
    name = "tcvae"
    replaces_kl = True
    min_batch = 2  # the estimator of q(z) uses the batch's other samples

    def __init__(self, config: TCVAEConfig) -> None:
        self.config = config
        self._logs: dict[str, torch.Tensor] = {}

    def kl_term(self, model, mu, logvar, z, iteration):
        c = self.config
        n = c.dataset_size or self.data_size or z.shape[0]
        parts = decompose(mu, logvar, z, model.prior.log_prob(z), n, c.estimator)
        self._logs = {k: parts[k].detach() for k in ("mi", "tc", "dwkl")}
        scale = 1.0 / z.shape[0] if c.batch_weighting == "authors" else 1.0
        return scale * (c.alpha * parts["mi"] + c.beta * parts["tc"] + c.gamma * parts["dwkl"])

    def after_step(self, model, x, iteration):
        logs, self._logs = self._logs, {}
        return logs


def build(config: TCVAEConfig) -> TCVAE:
    return TCVAE(config)
