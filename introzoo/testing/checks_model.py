"""Contract checks of the components a training step runs: priors, objectives and regularizers (see
:mod:`introzoo.testing.checks` for what each checks)."""

from __future__ import annotations

import copy
import io
import json
import math
from typing import Any

import pytest
import torch
from torch import nn

from .. import plugins
from ..errors import UsageError
from ..training.precision import PRECISIONS, Precision
from ..priors.base import Prior
from .checks_base import (
    _build_prior,
    _changed,
    _check_losses,
    _component,
    _expect,
    _finite,
    _offline,
    _snapshot,
    _what,
    component_config,
    tiny_model,
)
from .prior_capabilities import check_prior_capabilities


# -- priors ------------------------------------------------------------------------------------------


def _density_matches_samples(
    prior, what: str, n: int, seed: int, bins: int = 8, nodes: int = 16, tolerance: float = 0.04
) -> None:
    """Total variation between the histogram of ``n`` samples and ``exp(log_prob)`` integrated (midpoint
    rule, ``nodes``^2 points per cell) over the same ``bins`` x ``bins`` cells plus the outside of the
    box that holds the central 99.6% of the samples per axis. Sampling noise is about 0.01 at n = 1e5;
    an unnormalised log_prob or a 10% error in scale exceeds the tolerance."""
    with torch.no_grad():
        torch.manual_seed(seed)
        z = prior.sample(n).double()
        lo, hi = torch.quantile(z, 0.002, dim=0), torch.quantile(z, 0.998, dim=0)
        width = hi - lo
        t = (torch.arange(bins * nodes, dtype=torch.float64) + 0.5) / (bins * nodes)
        gx, gy = lo[0] + width[0] * t, lo[1] + width[1] * t
        grid = torch.stack(torch.meshgrid(gx, gy, indexing="ij"), -1).reshape(-1, 2)
        p = next(iter(prior.parameters()), None)
        dtype = p.dtype if p is not None else torch.get_default_dtype()
        dens = torch.exp(prior.log_prob(grid.to(dtype)).double()).reshape(bins, nodes, bins, nodes)
        expected = dens.sum((1, 3)) * (width[0] * width[1] / (bins * nodes) ** 2)
        idx = torch.floor((z - lo) / width * bins).long()
        inside = ((idx >= 0) & (idx < bins)).all(1)
        cells = idx[inside, 0] * bins + idx[inside, 1]
        observed = torch.bincount(cells, minlength=bins * bins).reshape(bins, bins).double() / n
        tv = 0.5 * ((expected - observed).abs().sum() + (expected.sum() - observed.sum()).abs()).item()
    _expect(
        tv < tolerance,
        f"{what}: log_prob is not the density of sample: total variation {tv:.3f} (tolerance {tolerance}) "
        f"between the histogram of {n} samples and exp(log_prob) integrated over the same {bins}x{bins} "
        f"cells (probability inside the box: {expected.sum().item():.3f} by log_prob, "
        f"{observed.sum().item():.3f} by samples); is log_prob normalised, with the scale sample uses?",
    )


def _kl_matches_monte_carlo(prior, what: str, seed: int, batch: int = 4, repeats: int = 400, draws: int = 4000) -> None:
    """``kl(mu, logvar)`` (averaged over ``repeats`` calls when it is itself Monte Carlo) against
    ``mean_t[log N(z_t; mu, s^2) - log_prob(z_t)]`` with ``draws`` samples, within 5 standard errors."""
    zdim = prior.zdim
    with torch.no_grad():
        torch.manual_seed(seed)
        mu = prior.sample(batch).double()
        logvar = torch.empty(batch, zdim, dtype=torch.float64).uniform_(-2.0, 0.0)
        p = next(iter(prior.parameters()), None)
        dtype = p.dtype if p is not None else torch.get_default_dtype()
        k = prior.kl(mu.repeat(repeats, 1).to(dtype), logvar.repeat(repeats, 1).to(dtype))
        _expect(
            tuple(k.shape) == (batch * repeats,),
            f"{what}: kl(mu, logvar) for {batch * repeats} posteriors "
            f"has shape {tuple(k.shape)}, expected ({batch * repeats},)",
        )
        k = k.double().reshape(repeats, batch)
        est, se_est = k.mean(0), k.std(0) / math.sqrt(repeats)
        std = torch.exp(0.5 * logvar)
        z = mu + std * torch.randn(draws, batch, zdim, dtype=torch.float64)
        log_q = torch.distributions.Normal(mu, std).log_prob(z).sum(-1)
        log_p = prior.log_prob(z.reshape(-1, zdim).to(dtype)).double().reshape(draws, batch)
        ratio = log_q - log_p
        ref, se_ref = ratio.mean(0), ratio.std(0) / math.sqrt(draws)
        tol = 5 * torch.sqrt(se_est**2 + se_ref**2) + 1e-6 * (1 + ref.abs())
    bad = (est - ref).abs() > tol
    _expect(
        not bad.any(),
        f"{what}: kl(mu, logvar) = {est.tolist()} but the Monte Carlo estimate from "
        f"log_prob is {ref.tolist()} (tolerance {tol.tolist()}); KL(q || p) per sample, "
        "summed over latent dimensions, is expected",
    )


def _prior_gradients(prior, what: str) -> None:
    params = [p for p in prior.parameters() if p.requires_grad]
    p0 = next(iter(prior.parameters()), None)
    dtype = p0.dtype if p0 is not None else torch.get_default_dtype()
    z = prior.sample(16).detach().to(dtype).requires_grad_()
    grads = torch.autograd.grad(prior.log_prob(z, stop_gradient=True).sum(), [z] + params, allow_unused=True)
    _expect(grads[0] is not None and _finite(grads[0]), f"{what}: log_prob(z) must be differentiable in z")
    _expect(
        all(g is None or not g.any() for g in grads[1:]),
        f"{what}: log_prob(z, stop_gradient=True) must not reach the prior's parameters (sg[p])",
    )
    mu = torch.zeros(3, prior.zdim, dtype=dtype, requires_grad=True)
    logvar = torch.zeros(3, prior.zdim, dtype=dtype, requires_grad=True)
    grads = torch.autograd.grad(prior.kl(mu, logvar, stop_gradient=True).sum(), [mu, logvar] + params, allow_unused=True)
    _expect(grads[0] is not None and grads[1] is not None, f"{what}: kl(mu, logvar) must be differentiable in mu and logvar")
    _expect(
        all(g is None or not g.any() for g in grads[2:]),
        f"{what}: kl(mu, logvar, stop_gradient=True) must not reach the prior's parameters (sg[p])",
    )
    if not prior.learnable:
        return
    _expect(params, f"{what}: learnable = True but none of its parameters requires a gradient")
    grads = torch.autograd.grad(prior.log_prob(z.detach()).sum(), params, allow_unused=True)
    _expect(any(g is not None and g.any() for g in grads), f"{what}: log_prob(z) reaches none of its parameters")
    zs = prior.sample(16, with_grad=True)
    _expect(
        zs.requires_grad,
        f"{what}: sample(n, with_grad=True) of a learnable prior must carry a gradient "
        "to its parameters (soft-prior trains the prior through its samples)",
    )
    grads = torch.autograd.grad(zs.sum(), params, allow_unused=True)
    _expect(
        any(g is not None and g.any() for g in grads), f"{what}: sample(n, with_grad=True) reaches none of its parameters"
    )


def check_prior(name: str, options: dict[str, Any] | None = None, n: int = 100_000, seed: int = 0) -> None:
    """Shapes at zdim 2 and 3; ``log_prob`` against samples; ``kl`` against Monte Carlo; gradient
    routing; the model checkpoint round trip; the declared flags and capabilities
    (:mod:`introzoo.testing.prior_capabilities`)."""
    comp = _component("priors", name)
    cfg = component_config(comp, options)
    what = _what(comp)

    def make(zdim: int, s: int):
        torch.manual_seed(s)
        prior = comp.build(cfg, zdim=zdim)
        _expect(
            isinstance(prior, Prior),
            f"{what}: the factory must return an introzoo.priors.base.Prior (subclass it), got {type(prior).__name__}",
        )
        return prior, tiny_model(prior, zdim=zdim, seed=s).double()

    for zdim in (3, 2):
        prior, model = make(zdim, seed)
        for attr in ("sample", "log_prob", "kl"):
            _expect(callable(getattr(prior, attr, None)), f"{what}: has no method {attr}")
        _expect(isinstance(getattr(prior, "learnable", None), bool), f"{what}: must declare learnable = True or False")
        z = prior.sample(7)
        _expect(
            tuple(z.shape) == (7, zdim),
            f"{what}: sample(7) with zdim {zdim} has shape {tuple(z.shape)}, expected (7, {zdim})",
        )
        _expect(not z.requires_grad, f"{what}: sample(n) (with_grad=False) must not carry a gradient")
        _expect(_finite(z), f"{what}: sample(7) is not finite")
        lp = prior.log_prob(z)
        _expect(tuple(lp.shape) == (7,), f"{what}: log_prob of 7 points has shape {tuple(lp.shape)}, expected (7,)")
        _expect(_finite(lp), f"{what}: log_prob of its own samples is not finite")
        kl = prior.kl(torch.zeros(5, zdim, dtype=z.dtype), torch.zeros(5, zdim, dtype=z.dtype))
        _expect(tuple(kl.shape) == (5,) and _finite(kl), f"{what}: kl of 5 posteriors must be 5 finite numbers, got {kl}")

    # zdim 2 from here: the density is checked on a grid
    _density_matches_samples(prior, what, n, seed)
    _kl_matches_monte_carlo(prior, what, seed + 1)
    _prior_gradients(prior, what)

    fresh, fresh_model = make(2, seed + 1)
    fresh_model.load_state_dict(model.state_dict())
    with torch.no_grad():
        pts = torch.randn(64, 2, dtype=torch.float64)
        _expect(
            torch.allclose(prior.log_prob(pts), fresh.log_prob(pts), rtol=1e-10, atol=1e-12),
            f"{what}: after loading the model's state_dict into a fresh build, log_prob differs "
            "(is every parameter and buffer registered on the module?)",
        )
        torch.manual_seed(5)
        a = prior.sample(9)
        torch.manual_seed(5)
        b = fresh.sample(9)
        _expect(
            torch.allclose(a, b),
            f"{what}: after loading the state_dict into a fresh build, the same seed gives different samples",
        )

    check_prior_capabilities(prior, model, what)


# -- objectives --------------------------------------------------------------------------------------


def _data(data: str | None, n: int, seed: int = 0) -> tuple[Any, torch.Tensor]:
    reg = plugins.registry()
    if data is None or data not in reg.names("datasets"):
        return None, torch.randn(n, 2, generator=torch.Generator().manual_seed(seed))
    comp = reg.get("datasets", data)
    ds = comp.build(component_config(comp, None, _offline(comp)))
    return ds, ds.sample(n, torch.Generator().manual_seed(seed)).float()


#: the precisions (``--precision``) every objective is checked under, each on the CPU
OBJECTIVE_PRECISIONS: tuple[str, ...] = PRECISIONS
#: the loss scale of the routing check: a power of two, so that scaling and unscaling are exact
EXACT_SCALE = 2.0**12
_ROUTING = (
    "back-propagate each loss with self.backward(loss, ...) and step with self.step_optimizers(...), "
    "never loss.backward() or optimizer.step() directly: that is where --precision fp16 scales the "
    "losses and unscales the gradients (introzoo/training/precision.py)"
)


class ExactScale(Precision):
    """fp32 with a loss scale of :data:`EXACT_SCALE` (what ``--precision fp16``'s ``GradScaler`` does,
    without its rounding): ``scale`` multiplies a loss by it, ``step`` divides the gradients by it before
    the optimiser steps. Powers of two scale exactly, so an objective that back-propagates through
    ``Objective.backward`` and steps through ``Objective.step_optimizers`` takes bit for bit the steps it
    takes in fp32; one that calls ``loss.backward()`` or ``optimizer.step()`` itself does not."""

    def __init__(self, factor: float = EXACT_SCALE) -> None:
        super().__init__("fp32")
        self.factor = factor

    def scale(self, loss: torch.Tensor) -> torch.Tensor:
        return loss * self.factor

    def step(self, optimizer: torch.optim.Optimizer) -> None:
        with torch.no_grad():
            for group in optimizer.param_groups:
                for p in group["params"]:
                    if p.grad is not None:
                        p.grad.div_(self.factor)
        optimizer.step()


def _available(precision: str) -> bool:
    try:
        Precision(precision, "cpu")
    except UsageError:
        return False
    return True


def check_objective(
    name: str,
    options: dict[str, Any] | None = None,
    prior: str | None = None,
    data: str | None = "8gaussians",
    batch: int = 64,
    precisions: tuple[str, ...] = OBJECTIVE_PRECISIONS,
) -> None:
    """Built as a run builds it (``data``'s paper defaults, those of the objective it declares
    ``defaults_from`` included, < ``options``), on a tiny MLP VAE with
    ``prior`` (default ``sg``, else the first registered prior it accepts), under each of
    ``precisions`` (``fp32``, ``bf16``, ``fp16``: ``--precision``, on the CPU; one the CPU cannot run is
    left out):

    - a step at iteration 0 and one at the first iteration after the VAE warm-up (``num_vae``) return
      finite, detached scalar losses, leave the batch untouched, change the encoder and the decoder,
      and change no parameter or buffer outside the objective's optimisers;
    - the model's and the objective's ``state_dict`` loaded into a fresh build give the same next step.

    And in fp32 with the losses scaled by :data:`EXACT_SCALE` and the gradients unscaled before each
    optimiser step (:class:`ExactScale`), the same two steps change the model bit for bit as without:
    the objective back-propagates through ``self.backward`` and steps through ``self.step_optimizers``.
    """
    from ..objectives.base import TrainSettings
    from ..objectives.defaults import declared_defaults_from, objective_defaults

    comp = _component("objectives", name)
    what = _what(comp)
    ds, x = _data(data, batch)
    parent = declared_defaults_from(comp)
    _expect(
        parent is None or parent in plugins.registry().names("objectives"),
        f"{what}: defaults_from = {parent!r} is not a registered objective "
        f"({', '.join(plugins.registry().names('objectives'))})",
    )
    defaults = objective_defaults(ds, plugins.registry(), name) if ds is not None else None
    cfg = component_config(comp, options, defaults)

    def make(prior_name: str, seed: int, precision: str = "fp32"):
        p = _build_prior(prior_name, seed=seed)
        model = tiny_model(p, seed=seed)
        return model, comp.build(cfg, model=model, regularizers=[], train=TrainSettings(precision=precision))

    candidates = [prior] if prior else ["sg"] + [p for p in plugins.registry().names("priors") if p != "sg"]
    refused = []
    for prior_name in candidates:
        try:
            model, obj = make(prior_name, 0)
            break
        except (UsageError, pytest.skip.Exception) as exc:
            refused.append(f"{prior_name}: {exc}")
    else:
        raise AssertionError(f"{what}: cannot be built with any prior ({'; '.join(refused)})")
    _expect(callable(getattr(obj, "train_step", None)), f"{what}: the factory's object has no train_step(x, iteration)")

    warm = int(getattr(obj, "num_vae", 0) or getattr(cfg, "num_vae", 0) or 0)
    for precision in precisions:
        if precision == "fp32":
            _objective_steps(what, prior_name, model, obj, lambda seed: make(prior_name, seed), x, warm)
            _loss_scale_routing(what, prior_name, make, x, warm)
        elif _available(precision):
            m, o = make(prior_name, 0, precision)
            _objective_steps(
                f"{what} under --precision {precision}",
                prior_name,
                m,
                o,
                lambda seed, p=precision: make(prior_name, seed, p),
                x,
                warm,
                precision,
            )


def _train_step(obj, x: torch.Tensor, it: int, where: str, precision: str) -> dict[str, Any]:
    if precision == "fp32":
        return obj.train_step(x, it)
    try:
        return obj.train_step(x, it)
    except Exception as exc:  # noqa: BLE001 - e.g. GradScaler's "Attempted step but _scale is None"
        raise AssertionError(f"{where}: train_step raised {type(exc).__name__}: {str(exc).strip()}; {_ROUTING}") from None


def _objective_steps(
    what: str, prior_name: str, model, obj, make, x: torch.Tensor, warm: int, precision: str = "fp32"
) -> None:
    """The step and checkpoint checks of :func:`check_objective` for one built objective."""
    for it in (0, max(warm, 1)):
        where = f"{what} with prior '{prior_name}', train_step at iteration {it}"
        before, x_before = _snapshot(model), x.clone()
        torch.manual_seed(100 + it)
        _check_losses(_train_step(obj, x, it, where, precision), where)
        _expect(torch.equal(x, x_before), f"{where}: modified the batch in place")
        changed = _changed(before, model)
        for part in ("encoder", "decoder"):
            _expect(any(k.startswith(f"param {part}.") for k in changed), f"{where}: did not change the {part}")
        optimisers = getattr(obj, "optimizers", None)
        if optimisers is not None:
            trained = {id(p) for opt in optimisers.values() for g in opt.param_groups for p in g["params"]}
        else:
            trained = {id(p) for p in model.parameters() if p.requires_grad}
        named = dict(model.named_parameters())
        stray = sorted(k for k in changed if k.startswith("buffer ") or (k[6:] in named and id(named[k[6:]]) not in trained))
        _expect(not stray, f"{where}: changed what it has no optimiser for: {', '.join(stray)}")

    state_model, state_obj = copy.deepcopy(model.state_dict()), copy.deepcopy(obj.state_dict())
    model2, obj2 = make(1)
    model2.load_state_dict(state_model)
    obj2.load_state_dict(state_obj)
    it = max(warm, 1) + 1
    where = f"{what} with prior '{prior_name}', train_step at iteration {it}"
    torch.manual_seed(7)
    a = _train_step(obj, x.clone(), it, where, precision)
    torch.manual_seed(7)
    b = _train_step(obj2, x.clone(), it, where + " after loading a checkpoint", precision)
    same = a.keys() == b.keys() and all(
        torch.allclose(torch.as_tensor(a[k]), torch.as_tensor(b[k]), rtol=1e-6, atol=1e-7) for k in a
    )
    p1, p2 = dict(model.named_parameters()), dict(model2.named_parameters())
    diff = sorted(k for k in p1 if k in p2 and not torch.allclose(p1[k], p2[k], rtol=1e-6, atol=1e-7))
    _expect(
        same and not diff,
        f"{what}: a checkpoint (model and objective state_dict) loaded into a fresh build "
        f"does not continue identically (losses {a} vs {b}; parameters differing: "
        f"{', '.join(diff) or 'none'}); does state_dict() hold all the objective's state?",
    )


def _loss_scale_routing(what: str, prior_name: str, make, x: torch.Tensor, warm: int) -> None:
    """The objective's two checked steps in fp32 and with :class:`ExactScale`: the same parameters."""
    runs = []
    for scaled in (False, True):
        model, obj = make(prior_name, 0)
        if scaled:
            obj.precision = ExactScale()
        for it in (0, max(warm, 1)):
            torch.manual_seed(100 + it)
            obj.train_step(x.clone(), it)
        runs.append(dict(model.named_parameters()))
    plain, scaled = runs
    diff = sorted(k for k in plain if not torch.equal(plain[k], scaled[k]))
    _expect(
        not diff,
        f"{what} with prior '{prior_name}': with the losses scaled by 2**{int(math.log2(EXACT_SCALE))} "
        "in self.backward and the gradients unscaled in self.step_optimizers (as --precision fp16 "
        f"does) two steps change the parameters differently ({', '.join(diff)}); {_ROUTING}",
    )


# -- regularizers ------------------------------------------------------------------------------------


def check_regularizer(
    name: str,
    options: dict[str, Any] | None = None,
    prior: str | None = None,
    objective: str = "vae",
    batch: int = 64,
    resume_objectives: tuple[str, ...] = ("soft",),
) -> None:
    """``check(prior)`` accepts or raises ``UsageError`` for every registered prior; on an accepted prior
    (``prior``, else ``sg``, else the first accepted): ``encoder_loss`` and, when ``replaces_kl``,
    ``kl_term`` are ``None`` or finite scalars that reach the encoder but not the decoder and change a
    training step of ``objective``; its own ``parameters()`` are none of the model's; its ``state_dict``
    survives ``torch.save`` and loads into a fresh build; ``on_warmup_end`` leaves a working model;
    ``report`` returns a JSON-serialisable dict.

    Then it survives a checkpoint and resume (:func:`_check_resume`), with ``objective`` and each of
    ``resume_objectives`` that is registered and accepts it (``soft`` with a warm-up of 2 iterations,
    so that ``on_warmup_end`` happens before the checkpoint): trained 4 iterations, saved, restored into
    a fresh build as ``introzoo resume`` restores a run, then both trained 2 more iterations with the
    same random numbers: the restored ``state_dict`` equals the saved one, and afterwards the losses
    (``after_step``'s entries included), ``encoder_loss`` / ``kl_term``, the model's parameters,
    ``report`` and every attribute of the regularizer (plain numbers too: a step counter kept as an
    ``int`` outside ``state_dict`` is lost on resume) agree with the run that was not interrupted."""
    from ..objectives.base import TrainSettings

    comp = _component("regularizers", name)
    cfg = component_config(comp, options)
    what = _what(comp)
    reg = comp.build(cfg)
    for attr in (
        "check",
        "bind",
        "kl_term",
        "encoder_loss",
        "after_step",
        "on_warmup_end",
        "parameters",
        "state_dict",
        "load_state_dict",
        "report",
    ):
        _expect(
            callable(getattr(reg, attr, None)), f"{what}: has no method {attr} (subclass introzoo.regularizers.Regularizer)"
        )

    accepted = []
    for prior_name in plugins.registry().names("priors"):
        try:
            model = tiny_model(_build_prior(prior_name))
        except pytest.skip.Exception:
            continue
        try:
            reg.check(model.prior)
            accepted.append(prior_name)
        except UsageError:
            pass
        except Exception as exc:
            raise AssertionError(
                f"{what}: check(prior) must raise introzoo.errors.UsageError for a prior it "
                f"cannot act on; for prior '{prior_name}' it raised {type(exc).__name__}: {exc}"
            ) from None
    _expect(prior or accepted, f"{what}: check(prior) refuses every registered prior")
    prior_name = prior or ("sg" if "sg" in accepted else accepted[0])
    where = f"{what} on prior '{prior_name}'"

    _, x = _data("8gaussians", batch)
    model = tiny_model(_build_prior(prior_name))
    mu, logvar = model.encode(x)
    z = model.reparameterize(mu, logvar)
    reg.bind(model)
    own = {id(p) for p in reg.parameters()}
    _expect(
        not own & {id(p) for ps in model.parameter_groups().values() for p in ps},
        f"{where}: parameters() holds parameters of the model (a regularizer's own must not be in its groups)",
    )
    before = _snapshot(model)
    terms = {"encoder_loss": reg.encoder_loss(model, mu, logvar, z)}
    if getattr(reg, "replaces_kl", False):
        terms["kl_term"] = reg.kl_term(model, mu, logvar, z, 0)
    _expect(not _changed(before, model), f"{where}: encoder_loss / kl_term changed the model")
    reaches_encoder = False
    for hook, term in terms.items():
        if term is None:
            continue
        _expect(
            isinstance(term, torch.Tensor) and term.numel() == 1 and _finite(term),
            f"{where}: {hook} must return None or a finite scalar tensor, got {term!r}",
        )
        if term.requires_grad:
            model.zero_grad(set_to_none=True)
            term.backward()
            _expect(
                all(p.grad is None or not p.grad.any() for p in model.decoder.parameters()),
                f"{where}: the {hook} term reaches the decoder's parameters",
            )
            reaches_encoder |= any(p.grad is not None and p.grad.any() for p in model.encoder.parameters())

    obj_comp = _component("objectives", objective)
    obj_cfg = component_config(obj_comp)

    def one_step(with_reg: bool):
        m = tiny_model(_build_prior(prior_name))
        obj = obj_comp.build(obj_cfg, model=m, regularizers=[comp.build(cfg)] if with_reg else [], train=TrainSettings())
        torch.manual_seed(1)
        losses = obj.train_step(x, 0)
        return m, obj, losses

    m1, o1, losses = one_step(True)
    _check_losses(losses, f"{where}, objective '{objective}' train_step")
    if reaches_encoder:
        m0, _, _ = one_step(False)
        same = all(torch.equal(a, b) for a, b in zip(m1.encoder.parameters(), m0.encoder.parameters()))
        _expect(
            not same,
            f"{where}: its encoder term does not change the encoder's update in a training step of objective '{objective}'",
        )
    r = o1.regularizers[0]
    buf = io.BytesIO()
    torch.save(r.state_dict(), buf)
    fresh = comp.build(cfg)
    fresh.bind(m1)
    fresh.load_state_dict(torch.load(io.BytesIO(buf.getvalue()), weights_only=False))
    _expect(
        _same_state(fresh.state_dict(), r.state_dict()),
        f"{where}: state_dict() loaded into a fresh build (load_state_dict) does not give the same state_dict",
    )
    r.on_warmup_end(m1)
    z = m1.prior.sample(7)
    _expect(_finite(m1.prior.log_prob(z)), f"{where}: after on_warmup_end the prior's log_prob is not finite")
    torch.manual_seed(2)
    _check_losses(o1.train_step(x, 1), f"{where}: train_step after on_warmup_end")
    report = r.report(m1)
    _expect(isinstance(report, dict), f"{where}: report(model) must return a dict, got {type(report).__name__}")
    try:
        json.dumps(report)
    except TypeError as exc:
        raise AssertionError(f"{where}: report(model) is not JSON-serialisable (metrics.json keeps it): {exc}") from None

    for obj_name in dict.fromkeys((objective, *resume_objectives)):
        if obj_name in plugins.registry().names("objectives"):
            _check_resume(comp, cfg, prior_name, obj_name, x, where)


#: iterations before the checkpoint and after it in the resume check of regularizers
RESUME_STEPS = (4, 2)


def _check_resume(comp, cfg, prior_name: str, objective: str, x: torch.Tensor, where: str) -> None:
    """A regularizer through a checkpoint, as ``introzoo resume`` takes a run through one (see
    :func:`check_regularizer`). An objective that refuses the regularizer (``UsageError``) is left out."""
    from ..objectives.base import TrainSettings

    obj_comp = _component("objectives", objective)
    before, after = RESUME_STEPS
    warm = {"num_vae": before // 2} if "num_vae" in obj_comp.config.model_fields else {}
    try:
        obj_cfg = component_config(obj_comp, warm)
    except pytest.skip.Exception:  # the objective has required options
        return
    where = f"{where}, objective '{objective}'" + (f" (num_vae={warm['num_vae']})" if warm else "")

    def make(seed: int):
        m = tiny_model(_build_prior(prior_name, seed=seed), seed=seed)
        return m, obj_comp.build(obj_cfg, model=m, regularizers=[comp.build(cfg)], train=TrainSettings())

    def train(obj, iterations) -> list[dict[str, torch.Tensor]]:
        out = []
        for it in iterations:
            torch.manual_seed(1_000 + it)
            out.append({k: torch.as_tensor(v).detach().clone() for k, v in obj.train_step(x.clone(), it).items()})
        return out

    try:
        model, obj = make(0)
    except UsageError:
        return
    train(obj, range(before))
    buf = io.BytesIO()
    torch.save({"model": model.state_dict(), "objective": obj.state_dict()}, buf)
    model2, obj2 = make(1)
    state = torch.load(io.BytesIO(buf.getvalue()), weights_only=False)
    if state["objective"].get("warm") and not obj2._warm:  # as introzoo resume restores a run
        obj2.in_warmup(obj2.num_vae)
    model2.load_state_dict(state["model"])
    obj2.load_state_dict(state["objective"])
    r, r2 = obj.regularizers[0], obj2.regularizers[0]
    lost = (
        f"is lost in a checkpoint: after {before} iterations, saving and restoring into a fresh build "
        f"(model and objective state_dict, as introzoo resume does)"
    )
    hint = "keep every piece of state that changes during training in state_dict() and restore it in load_state_dict()"
    _expect(
        _same_state(r2.state_dict(), r.state_dict()),
        f"{where}: its state {lost}, state_dict() differs from the one saved; {hint}",
    )

    mu, logvar = model.encode(x)
    eps = torch.randn(mu.shape, generator=torch.Generator().manual_seed(3), dtype=mu.dtype)
    for hook in ("encoder_loss", "kl_term") if getattr(r, "replaces_kl", False) else ("encoder_loss",):
        outs = []
        for reg, m in ((r, model), (r2, model2)):
            mu, logvar = m.encode(x)
            z = mu + eps * torch.exp(0.5 * logvar)
            args = (m, mu, logvar, z) + ((before,) if hook == "kl_term" else ())
            torch.manual_seed(5)
            t = getattr(reg, hook)(*args)
            outs.append(None if t is None else t.detach())
        if _diff(outs[0], outs[1], ""):
            attrs = [
                d
                for k in sorted(set(vars(r)) | set(vars(r2)))
                for d in _diff(vars(r).get(k), vars(r2).get(k), f"attribute {k}")
            ]
            raise AssertionError(
                f"{where}: its state {lost}, {hook} gives {outs[0]} without the checkpoint and "
                f"{outs[1]} after it (differing: {'; '.join(attrs[:6]) or 'no attribute'}); {hint}"
            )

    a, b = train(obj, range(before, before + after)), train(obj2, range(before, before + after))
    problems = []  # the regularizer's own attributes first: they name the state that was lost
    for k in sorted(set(vars(r)) | set(vars(r2))):
        problems += _diff(vars(r).get(k), vars(r2).get(k), f"attribute {k}")
    problems += _diff(r.report(model), r2.report(model2), "report") + _diff(a, b, "losses")
    problems += _diff(dict(model.named_parameters()), dict(model2.named_parameters()), "model")
    _expect(
        not problems,
        f"{where}: its state {lost}, then {after} more iterations do not continue as without the "
        f"checkpoint: {'; '.join(problems[:6])}; {hint}",
    )


def _diff(a: Any, b: Any, where: str, depth: int = 0) -> list[str]:
    """Where ``a`` (without a checkpoint) and ``b`` (restored from one) differ: numbers and tensors to
    rtol 1e-6, modules and optimisers by their state_dict; objects of other types are not compared."""
    if a is b or depth > 8:
        return []
    if isinstance(a, (nn.Module, torch.optim.Optimizer)) and type(a) is type(b):
        return _diff(a.state_dict(), b.state_dict(), where, depth + 1)
    if isinstance(a, torch.Generator) and isinstance(b, torch.Generator):
        return [] if torch.equal(a.get_state(), b.get_state()) else [f"{where}: generator states differ"]
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        if not (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor)) or a.shape != b.shape:
            return [f"{where}: {_short(a)} vs {_short(b)}"]
        if a.is_floating_point() or a.is_complex():
            same = torch.allclose(a.detach(), b.detach().to(a.dtype), rtol=1e-6, atol=1e-7, equal_nan=True)
        else:
            same = torch.equal(a, b)
        return [] if same else [f"{where}: {_short(a)} vs {_short(b)}"]
    if isinstance(a, bool) or isinstance(b, bool) or a is None or b is None or isinstance(a, (str, bytes)):
        return [] if a == b else [f"{where}: {a!r} vs {b!r}"]
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        close = math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-7) or (math.isnan(a) and math.isnan(b))
        return [] if close else [f"{where}: {a!r} vs {b!r}"]
    if isinstance(a, dict) and isinstance(b, dict):
        if a.keys() != b.keys():
            return [f"{where}: keys {sorted(map(str, a))} vs {sorted(map(str, b))}"]
        return [d for k in a for d in _diff(a[k], b[k], f"{where}.{k}" if where else str(k), depth + 1)]
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        if len(a) != len(b):
            return [f"{where}: {len(a)} items vs {len(b)}"]
        return [d for j, (x, y) in enumerate(zip(a, b)) for d in _diff(x, y, f"{where}[{j}]", depth + 1)]
    if type(a) is not type(b) and (
        isinstance(a, (int, float, dict, list, tuple)) or isinstance(b, (int, float, dict, list, tuple))
    ):
        return [f"{where}: {_short(a)} vs {_short(b)}"]
    return []


def _short(v: Any) -> str:
    if isinstance(v, torch.Tensor):
        return repr(v.detach().flatten()[:4].tolist()) + ("..." if v.numel() > 4 else "")
    return repr(v)[:80]


def _same_state(a: Any, b: Any) -> bool:
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and torch.equal(a, b)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same_state(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same_state(x, y) for x, y in zip(a, b))
    return a == b
