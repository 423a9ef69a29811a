"""Contract checks of the flags and capabilities a prior declares (:mod:`introzoo.priors.base`).

:func:`check_prior_capabilities` is part of ``check_prior``; it runs on a prior already attached to a
small model (``zdim = 2``, float64) and raises ``AssertionError`` saying what is wrong:

- flags: ``learnable``, ``closed_form_kl`` are booleans; ``data_init_points`` a non-negative integer;
  ``kl_samples`` a positive integer when the KL is a Monte Carlo estimate;
- ``data_init_points > 0``: ``init_from_posterior`` accepts that many posteriors and leaves a working prior;
- :class:`~introzoo.priors.base.Mixture`: ``components()`` has the declared shapes, weights summing to 1,
  and reproduces ``log_prob`` (``logsumexp_k(log w_k + log N(z; mu_k, s_k^2))``, computed here
  independently); ``responsibilities`` is its softmax;
- :class:`~introzoo.priors.base.LogvarTransformable`: a transform installed with
  ``set_logvar_transform`` is what ``logvar`` returns, and ``None`` restores the original;
- ``on_warmup_end()`` returns a boolean and leaves a working prior (it may be a Mixture after it).
"""

from __future__ import annotations

import math
from typing import Any

import torch

from ..priors.base import LogvarTransformable, Mixture


def _expect(ok: Any, message: str) -> None:
    if not ok:
        raise AssertionError(message)


def _finite(t: torch.Tensor) -> bool:
    return bool(torch.isfinite(t).all())


def _works(prior, what: str, when: str) -> None:
    z = prior.sample(7)
    _expect(
        tuple(z.shape) == (7, prior.zdim) and _finite(prior.log_prob(z)),
        f"{what}: after {when} sample/log_prob no longer work",
    )


def _flags(prior, what: str) -> None:
    for flag in ("learnable", "closed_form_kl"):
        _expect(
            isinstance(getattr(prior, flag), bool), f"{what}: {flag} must be True or False, got {getattr(prior, flag)!r}"
        )
    n = prior.data_init_points
    _expect(
        isinstance(n, int) and not isinstance(n, bool) and n >= 0,
        f"{what}: data_init_points must be a non-negative int (0: no data initialisation), got {n!r}",
    )
    if not prior.closed_form_kl:
        k = prior.kl_samples
        _expect(
            isinstance(k, int) and k > 0,
            f"{what}: closed_form_kl is False, so kl_samples must be a "
            f"positive int (the Monte Carlo draws of kl), got {k!r}",
        )


def _mixture(prior, what: str) -> None:
    """``components()`` against ``log_prob`` and ``responsibilities``: an independent float64 sum."""
    K, d = prior.K, prior.zdim
    _expect(isinstance(K, int) and K >= 1, f"{what}: Mixture.K must be a positive int, got {K!r}")
    with torch.no_grad():
        mu, logvar, log_w = prior.components()
        for name, t, shape in (("mu", mu, (K, d)), ("logvar", logvar, (K, d)), ("log_w", log_w, (K,))):
            _expect(
                tuple(t.shape) == shape,
                f"{what}: components() {name} has shape {tuple(t.shape)}, expected {shape} (K = {K}, zdim = {d})",
            )
        _expect(
            abs(float(torch.logsumexp(log_w.double(), 0))) < 1e-6,
            f"{what}: components() log-weights must be normalised (sum of exp(log_w) = 1)",
        )
        z = torch.cat([prior.sample(24), mu[:8]])
        zz, m, lv = z.double().unsqueeze(1), mu.double().unsqueeze(0), logvar.double().unsqueeze(0)
        terms = log_w.double() - 0.5 * (((zz - m) ** 2) * torch.exp(-lv) + lv + math.log(2 * math.pi)).sum(-1)
        expected = torch.logsumexp(terms, 1)
        got = prior.log_prob(z).double()
        _expect(
            torch.allclose(got, expected, rtol=1e-6, atol=1e-6),
            f"{what}: log_prob differs from the mixture of its components() "
            f"(max |difference| {float((got - expected).abs().max()):.3g})",
        )
        r = prior.responsibilities(z).double()
        _expect(
            tuple(r.shape) == (z.shape[0], K),
            f"{what}: responsibilities of {z.shape[0]} points has shape {tuple(r.shape)}, expected ({z.shape[0]}, {K})",
        )
        _expect(
            torch.allclose(r, torch.softmax(terms, 1), rtol=1e-6, atol=1e-6),
            f"{what}: responsibilities(z) is not softmax_k(log w_k + log N(z; mu_k, s_k^2)) of components()",
        )


def _logvar_transform(prior, what: str) -> None:
    with torch.no_grad():
        before = prior.logvar.detach().clone()
        _expect(
            before.dim() == 2 and before.shape[1] == prior.zdim,
            f"{what}: logvar must be (components, zdim), got shape {tuple(before.shape)}",
        )
        prior.set_logvar_transform(lambda raw: torch.full_like(raw, -0.5))
        try:
            _expect(
                torch.equal(prior.logvar, torch.full_like(before, -0.5)),
                f"{what}: after set_logvar_transform(fn), logvar is not fn of the log-variances",
            )
            _works(prior, what, "set_logvar_transform(fn)")
        finally:
            prior.set_logvar_transform(None)
        _expect(torch.allclose(prior.logvar, before), f"{what}: set_logvar_transform(None) does not restore logvar")


def check_prior_capabilities(prior, model, what: str) -> None:
    """The checks of this module's docstring on ``prior`` (attached to ``model``, zdim 2)."""
    _flags(prior, what)
    if prior.data_init_points:
        x = torch.randn(
            prior.data_init_points,
            *model.data_shape,
            generator=torch.Generator().manual_seed(3),
            dtype=next(model.parameters()).dtype,
        )
        with torch.no_grad():
            prior.init_from_posterior(*model.encode(x))
        _works(prior, what, "init_from_posterior")
    for when in ("construction", "on_warmup_end()"):
        if isinstance(prior, Mixture):
            _mixture(prior, f"{what} (after {when})")
        if isinstance(prior, LogvarTransformable):
            _logvar_transform(prior, f"{what} (after {when})")
        if when == "construction":
            changed = prior.on_warmup_end()
            _expect(isinstance(changed, bool), f"{what}: on_warmup_end() must return True or False, got {changed!r}")
            _works(prior, what, "on_warmup_end()")
