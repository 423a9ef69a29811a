"""Contract checks: what every component of a kind must do, run on tiny random data in seconds.

Each ``check_<kind>(name, options=None, ...)`` builds the registered component with its default
options (``options`` override them), checks it and raises ``AssertionError`` with a message saying what
is wrong and what was expected. A component that needs options nobody gave is skipped with that
reason; so is a dataset whose data is not available here (it raises ``UsageError``) and a metric that
declares ``heavy = True``. The checks (details in each docstring and in ``docs/plugins.md``):

- every component: a closed config with a description per option, a doc line, a spec-safe name, and a
  default config that survives the ``config.json`` round trip;
- prior: shapes, ``log_prob`` is the density of ``sample`` (histogram of 100,000 draws against
  ``exp(log_prob)`` integrated over the same cells), ``kl`` against an independent Monte Carlo estimate,
  gradient routing (``stop_gradient``, ``sample(with_grad=True)``), checkpoint round trip, the flags
  and capabilities it declares (``Mixture`` components reproduce ``log_prob``, ...);
- objective: finite detached losses; one step changes the encoder and the decoder and nothing the
  objective has no optimiser for, nor the batch; a checkpoint loaded into a fresh build continues
  identically;
- regularizer: refuses priors with ``UsageError`` only; an encoder term that reaches the encoder only
  and changes a training step; ``on_warmup_end`` and ``report`` work;
- backbone: encoder output ``(B, 2*zdim)``, decoder output ``(B, *data_shape)`` for the data shapes it
  declares (``data_shapes`` on its config class) or the first of :data:`DEFAULT_SHAPES` it runs for;
  every parameter gets a gradient; state round trip;
- dataset: declared shape and kind, seeded samples reproducible, paper defaults naming real options;
- metric: directions, finite values for names with a direction, same seed same values;
- executor: builds and has ``run(tasks, sweep_dir, on_done)``.
"""

from __future__ import annotations

import copy
import inspect
import json
import math
import re
from typing import Any, Callable

import pytest
import torch
from pydantic import BaseModel, ValidationError
from torch import nn

from .. import plugins
from ..errors import UsageError
from ..priors.base import Prior
from ..registry import SINGULAR, Component
from ..spec import make_config
from .prior_capabilities import check_prior_capabilities

#: data shapes tried, in order, for a backbone that declares none: the first it builds and runs for
DEFAULT_SHAPES: tuple[tuple[int, ...], ...] = ((2,), (3, 32, 32), (1, 28, 28), (1, 8, 8))
#: characters a component name must not contain (they have a meaning in spec strings and sweeps)
_SPEC_CHARS = re.compile(r"[\s,:=\[\]()|]")


def _expect(ok: Any, message: str) -> None:
    if not ok:
        raise AssertionError(message)


def _what(comp: Component) -> str:
    return f"{SINGULAR.get(comp.kind, comp.kind)} '{comp.name}' (plugin '{comp.plugin}')"


def _component(kind: str, name: str) -> Component:
    return plugins.registry().get(kind, name)


def _declared(name: str, *holders: Any) -> Any:
    """The first ``name`` attribute found on ``holders`` (a built object, a config class, a factory)."""
    for h in holders:
        value = getattr(h, name, None)
        if value is not None:
            return value
    return None


def component_config(comp: Component, options: dict[str, Any] | None = None,
                     defaults: dict[str, Any] | None = None) -> BaseModel:
    """The component's config from its defaults < ``defaults`` < ``options``; skips the test when a
    required option is given by neither."""
    fields = comp.config.model_fields
    merged = {k: v for k, v in (defaults or {}).items() if k in fields}
    merged.update(options or {})
    missing = [f for f, info in fields.items() if info.is_required() and f not in merged]
    if missing:
        pytest.skip(f"{_what(comp)} has required options ({', '.join(missing)}): "
                    "check it with options={...}")
    return make_config(comp, merged)


def _offline(comp: Component) -> dict[str, Any]:
    """Defaults that keep a component offline in the checks: a boolean ``download`` option is false."""
    field = comp.config.model_fields.get("download")
    return {"download": False} if field is not None and field.annotation is bool else {}


def _load_dataset(comp: Component, options: dict[str, Any] | None = None):
    """Build a dataset with downloads off and draw one sample (datasets may load lazily); the
    ``UsageError`` of data that is not available here propagates."""
    ds = comp.build(component_config(comp, options, _offline(comp)))
    ds.sample(1, torch.Generator().manual_seed(0))
    return ds


def tiny_model(prior: nn.Module, data_shape: tuple[int, ...] = (2,), zdim: int = 2, seed: int = 0):
    """A VAE with a small MLP encoder/decoder (16 units; it flattens any data shape) around ``prior``."""
    from ..backbones.mlp import MLPConfig, build
    from ..model import VAE

    torch.manual_seed(seed)
    encoder, decoder = build(MLPConfig(hidden=16, layers=1), tuple(data_shape), zdim)
    return VAE(encoder, decoder, prior, tuple(data_shape), zdim)


def _snapshot(module: nn.Module) -> dict[str, torch.Tensor]:
    state = {f"param {n}": p.detach().clone() for n, p in module.named_parameters()}
    state.update({f"buffer {n}": b.detach().clone() for n, b in module.named_buffers()})
    return state


def _changed(before: dict[str, torch.Tensor], module: nn.Module) -> set[str]:
    now = _snapshot(module)
    return {k for k, v in before.items() if k in now and (now[k].shape != v.shape or not torch.equal(now[k], v))}


def _check_losses(losses: Any, where: str) -> None:
    _expect(isinstance(losses, dict) and losses, f"{where}: must return a non-empty dict of named losses, got {losses!r}")
    for key, value in losses.items():
        t = torch.as_tensor(value)
        _expect(t.numel() == 1, f"{where}: loss '{key}' is not a scalar (shape {tuple(t.shape)})")
        _expect(not t.requires_grad, f"{where}: loss '{key}' still carries a graph; return it detached")
        _expect(math.isfinite(float(t)), f"{where}: loss '{key}' is {float(t)} on tiny random data")


def _finite(t: torch.Tensor) -> bool:
    return bool(torch.isfinite(t).all())


# -- every component ---------------------------------------------------------------------------------

def check_registration(comp: Component) -> None:
    """Closed config (``extra="forbid"``), a description per option, ``primary`` naming an option, a doc
    line, a name usable in spec strings and sweeps, and (when nothing is required) a default config
    that ``config.json`` recreates exactly."""
    what, cls = _what(comp), comp.config
    _expect(not _SPEC_CHARS.search(comp.name) and comp.name,
            f"{what}: the name must not contain spaces or any of , : = [ ] ( ) | (spec-string syntax)")
    _expect(cls.model_config.get("extra") == "forbid",
            f"{what}: its config must refuse unknown options: model_config = ConfigDict(extra=\"forbid\")")
    undocumented = [f for f, info in cls.model_fields.items() if not info.description]
    _expect(not undocumented, f"{what}: options without a description (Field(..., description=...)): "
                              f"{', '.join(undocumented)}")
    primary = getattr(cls, "primary", None)
    _expect(primary is None or primary in cls.model_fields,
            f"{what}: primary = {primary!r} is not one of its options ({', '.join(cls.model_fields) or 'none'})")
    _expect(comp.doc, f"{what}: registered without a doc line (the fourth argument of register)")
    if not any(info.is_required() for info in cls.model_fields.values()):
        cfg = cls()
        again = cls(**json.loads(json.dumps(cfg.model_dump(mode="json"))))
        _expect(again == cfg, f"{what}: its default config does not survive the config.json round trip "
                              f"({cfg!r} -> {again!r})")


# -- priors ------------------------------------------------------------------------------------------

def _density_matches_samples(prior, what: str, n: int, seed: int, bins: int = 8, nodes: int = 16,
                             tolerance: float = 0.04) -> None:
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
    _expect(tv < tolerance,
            f"{what}: log_prob is not the density of sample: total variation {tv:.3f} (tolerance {tolerance}) "
            f"between the histogram of {n} samples and exp(log_prob) integrated over the same {bins}x{bins} "
            f"cells (probability inside the box: {expected.sum().item():.3f} by log_prob, "
            f"{observed.sum().item():.3f} by samples); is log_prob normalised, with the scale sample uses?")


def _kl_matches_monte_carlo(prior, what: str, seed: int, batch: int = 4, repeats: int = 400,
                            draws: int = 4000) -> None:
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
        _expect(tuple(k.shape) == (batch * repeats,), f"{what}: kl(mu, logvar) for {batch * repeats} posteriors "
                                                      f"has shape {tuple(k.shape)}, expected ({batch * repeats},)")
        k = k.double().reshape(repeats, batch)
        est, se_est = k.mean(0), k.std(0) / math.sqrt(repeats)
        std = torch.exp(0.5 * logvar)
        z = mu + std * torch.randn(draws, batch, zdim, dtype=torch.float64)
        log_q = torch.distributions.Normal(mu, std).log_prob(z).sum(-1)
        log_p = prior.log_prob(z.reshape(-1, zdim).to(dtype)).double().reshape(draws, batch)
        ratio = log_q - log_p
        ref, se_ref = ratio.mean(0), ratio.std(0) / math.sqrt(draws)
        tol = 5 * torch.sqrt(se_est ** 2 + se_ref ** 2) + 1e-6 * (1 + ref.abs())
    bad = (est - ref).abs() > tol
    _expect(not bad.any(), f"{what}: kl(mu, logvar) = {est.tolist()} but the Monte Carlo estimate from "
                           f"log_prob is {ref.tolist()} (tolerance {tol.tolist()}); KL(q || p) per sample, "
                           "summed over latent dimensions, is expected")


def _prior_gradients(prior, what: str) -> None:
    params = [p for p in prior.parameters() if p.requires_grad]
    p0 = next(iter(prior.parameters()), None)
    dtype = p0.dtype if p0 is not None else torch.get_default_dtype()
    z = prior.sample(16).detach().to(dtype).requires_grad_()
    grads = torch.autograd.grad(prior.log_prob(z, stop_gradient=True).sum(), [z] + params, allow_unused=True)
    _expect(grads[0] is not None and _finite(grads[0]), f"{what}: log_prob(z) must be differentiable in z")
    _expect(all(g is None or not g.any() for g in grads[1:]),
            f"{what}: log_prob(z, stop_gradient=True) must not reach the prior's parameters (sg[p])")
    mu = torch.zeros(3, prior.zdim, dtype=dtype, requires_grad=True)
    logvar = torch.zeros(3, prior.zdim, dtype=dtype, requires_grad=True)
    grads = torch.autograd.grad(prior.kl(mu, logvar, stop_gradient=True).sum(), [mu, logvar] + params,
                                allow_unused=True)
    _expect(grads[0] is not None and grads[1] is not None, f"{what}: kl(mu, logvar) must be differentiable in mu and logvar")
    _expect(all(g is None or not g.any() for g in grads[2:]),
            f"{what}: kl(mu, logvar, stop_gradient=True) must not reach the prior's parameters (sg[p])")
    if not prior.learnable:
        return
    _expect(params, f"{what}: learnable = True but none of its parameters requires a gradient")
    grads = torch.autograd.grad(prior.log_prob(z.detach()).sum(), params, allow_unused=True)
    _expect(any(g is not None and g.any() for g in grads), f"{what}: log_prob(z) reaches none of its parameters")
    zs = prior.sample(16, with_grad=True)
    _expect(zs.requires_grad, f"{what}: sample(n, with_grad=True) of a learnable prior must carry a gradient "
                              "to its parameters (soft-prior trains the prior through its samples)")
    grads = torch.autograd.grad(zs.sum(), params, allow_unused=True)
    _expect(any(g is not None and g.any() for g in grads),
            f"{what}: sample(n, with_grad=True) reaches none of its parameters")


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
        _expect(isinstance(prior, Prior), f"{what}: the factory must return an introzoo.priors.base.Prior "
                                          f"(subclass it), got {type(prior).__name__}")
        return prior, tiny_model(prior, zdim=zdim, seed=s).double()

    for zdim in (3, 2):
        prior, model = make(zdim, seed)
        for attr in ("sample", "log_prob", "kl"):
            _expect(callable(getattr(prior, attr, None)), f"{what}: has no method {attr}")
        _expect(isinstance(getattr(prior, "learnable", None), bool), f"{what}: must declare learnable = True or False")
        z = prior.sample(7)
        _expect(tuple(z.shape) == (7, zdim), f"{what}: sample(7) with zdim {zdim} has shape {tuple(z.shape)}, expected (7, {zdim})")
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
        _expect(torch.allclose(prior.log_prob(pts), fresh.log_prob(pts), rtol=1e-10, atol=1e-12),
                f"{what}: after loading the model's state_dict into a fresh build, log_prob differs "
                "(is every parameter and buffer registered on the module?)")
        torch.manual_seed(5)
        a = prior.sample(9)
        torch.manual_seed(5)
        b = fresh.sample(9)
        _expect(torch.allclose(a, b), f"{what}: after loading the state_dict into a fresh build, the same seed "
                                      "gives different samples")

    check_prior_capabilities(prior, model, what)


# -- objectives --------------------------------------------------------------------------------------

def _data(data: str | None, n: int, seed: int = 0) -> tuple[Any, torch.Tensor]:
    reg = plugins.registry()
    if data is None or data not in reg.names("datasets"):
        return None, torch.randn(n, 2, generator=torch.Generator().manual_seed(seed))
    comp = reg.get("datasets", data)
    ds = comp.build(component_config(comp, None, _offline(comp)))
    return ds, ds.sample(n, torch.Generator().manual_seed(seed)).float()


def _build_prior(name: str, zdim: int = 2, seed: int = 0):
    comp = _component("priors", name)
    torch.manual_seed(seed)
    return comp.build(component_config(comp), zdim=zdim)


def check_objective(name: str, options: dict[str, Any] | None = None, prior: str | None = None,
                    data: str | None = "8gaussians", batch: int = 64) -> None:
    """Built as a run builds it (``data``'s paper defaults < ``options``), on a tiny MLP VAE with
    ``prior`` (default ``sg``, else the first registered prior it accepts):

    - a step at iteration 0 and one at the first iteration after the VAE warm-up (``num_vae``) return
      finite, detached scalar losses, leave the batch untouched, change the encoder and the decoder,
      and change no parameter or buffer outside the objective's optimisers;
    - the model's and the objective's ``state_dict`` loaded into a fresh build give the same next step.
    """
    from ..objectives.base import TrainSettings

    comp = _component("objectives", name)
    what = _what(comp)
    ds, x = _data(data, batch)
    cfg = component_config(comp, options, ds.defaults_for(name) if ds is not None else None)

    def make(prior_name: str, seed: int):
        p = _build_prior(prior_name, seed=seed)
        model = tiny_model(p, seed=seed)
        return model, comp.build(cfg, model=model, regularizers=[], train=TrainSettings())

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
    for it in (0, max(warm, 1)):
        where = f"{what} with prior '{prior_name}', train_step at iteration {it}"
        before, x_before = _snapshot(model), x.clone()
        torch.manual_seed(100 + it)
        _check_losses(obj.train_step(x, it), where)
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
        stray = sorted(k for k in changed if k.startswith("buffer ")
                       or (k[6:] in named and id(named[k[6:]]) not in trained))
        _expect(not stray, f"{where}: changed what it has no optimiser for: {', '.join(stray)}")

    state_model, state_obj = copy.deepcopy(model.state_dict()), copy.deepcopy(obj.state_dict())
    model2, obj2 = make(prior_name, 1)
    model2.load_state_dict(state_model)
    obj2.load_state_dict(state_obj)
    it = max(warm, 1) + 1
    torch.manual_seed(7)
    a = obj.train_step(x.clone(), it)
    torch.manual_seed(7)
    b = obj2.train_step(x.clone(), it)
    same = a.keys() == b.keys() and all(torch.allclose(torch.as_tensor(a[k]), torch.as_tensor(b[k]), rtol=1e-6, atol=1e-7) for k in a)
    p1, p2 = dict(model.named_parameters()), dict(model2.named_parameters())
    diff = sorted(k for k in p1 if k in p2 and not torch.allclose(p1[k], p2[k], rtol=1e-6, atol=1e-7))
    _expect(same and not diff, f"{what}: a checkpoint (model and objective state_dict) loaded into a fresh build "
                               f"does not continue identically (losses {a} vs {b}; parameters differing: "
                               f"{', '.join(diff) or 'none'}); does state_dict() hold all the objective's state?")


# -- regularizers ------------------------------------------------------------------------------------

def check_regularizer(name: str, options: dict[str, Any] | None = None, prior: str | None = None,
                      objective: str = "vae", batch: int = 64) -> None:
    """``check(prior)`` accepts or raises ``UsageError`` for every registered prior; on an accepted prior
    (``prior``, else ``sg``, else the first accepted): ``encoder_loss`` is ``None`` or a finite scalar
    that reaches the encoder but not the decoder and changes a training step of ``objective``;
    ``on_warmup_end`` leaves a working model; ``report`` returns a JSON-serialisable dict."""
    from ..objectives.base import TrainSettings

    comp = _component("regularizers", name)
    cfg = component_config(comp, options)
    what = _what(comp)
    reg = comp.build(cfg)
    for attr in ("check", "encoder_loss", "on_warmup_end", "report"):
        _expect(callable(getattr(reg, attr, None)),
                f"{what}: has no method {attr} (subclass introzoo.regularizers.Regularizer)")

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
            raise AssertionError(f"{what}: check(prior) must raise introzoo.errors.UsageError for a prior it "
                                 f"cannot act on; for prior '{prior_name}' it raised {type(exc).__name__}: {exc}") from None
    _expect(prior or accepted, f"{what}: check(prior) refuses every registered prior")
    prior_name = prior or ("sg" if "sg" in accepted else accepted[0])
    where = f"{what} on prior '{prior_name}'"

    _, x = _data("8gaussians", batch)
    model = tiny_model(_build_prior(prior_name))
    mu, logvar = model.encode(x)
    z = model.reparameterize(mu, logvar)
    before = _snapshot(model)
    term = reg.encoder_loss(model, mu, logvar, z)
    _expect(not _changed(before, model), f"{where}: encoder_loss changed the model")
    reaches_encoder = False
    if term is not None:
        _expect(isinstance(term, torch.Tensor) and term.numel() == 1 and _finite(term),
                f"{where}: encoder_loss must return None or a finite scalar tensor, got {term!r}")
        if term.requires_grad:
            model.zero_grad(set_to_none=True)
            term.backward()
            _expect(all(p.grad is None or not p.grad.any() for p in model.decoder.parameters()),
                    f"{where}: the encoder term reaches the decoder's parameters")
            reaches_encoder = any(p.grad is not None and p.grad.any() for p in model.encoder.parameters())

    obj_comp = _component("objectives", objective)
    obj_cfg = component_config(obj_comp)

    def one_step(with_reg: bool):
        m = tiny_model(_build_prior(prior_name))
        obj = obj_comp.build(obj_cfg, model=m, regularizers=[comp.build(cfg)] if with_reg else [],
                             train=TrainSettings())
        torch.manual_seed(1)
        losses = obj.train_step(x, 0)
        return m, obj, losses

    m1, o1, losses = one_step(True)
    _check_losses(losses, f"{where}, objective '{objective}' train_step")
    if reaches_encoder:
        m0, _, _ = one_step(False)
        same = all(torch.equal(a, b) for a, b in zip(m1.encoder.parameters(), m0.encoder.parameters()))
        _expect(not same, f"{where}: its encoder term does not change the encoder's update in a training step "
                          f"of objective '{objective}'")
    r = o1.regularizers[0]
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


# -- backbones ---------------------------------------------------------------------------------------

def _backbone_shapes(comp: Component) -> list[tuple[int, ...]] | None:
    shapes = _declared("data_shapes", comp.config, comp.factory)
    if shapes is None:
        one = _declared("data_shape", comp.config, comp.factory)
        shapes = [one] if one is not None else None
    return [tuple(s) for s in shapes] if shapes is not None else None


def _run_backbone(comp: Component, cfg: BaseModel, shape: tuple[int, ...], zdim: int, batch: int, seed: int = 0):
    torch.manual_seed(seed)
    encoder, decoder = comp.build(cfg, data_shape=shape, zdim=zdim)
    x = torch.rand(batch, *shape, generator=torch.Generator().manual_seed(0))
    z = torch.randn(batch, zdim, generator=torch.Generator().manual_seed(1))
    return encoder, decoder, x, z, encoder(x), decoder(z)


def check_backbone(name: str, options: dict[str, Any] | None = None, zdim: int = 3, batch: int = 4) -> None:
    """For each data shape the backbone declares (``data_shapes = ((C, H, W), ...)`` or ``data_shape`` on
    its config class or factory), else for the first of :data:`DEFAULT_SHAPES` it builds and runs for:
    encoder output ``(batch, 2*zdim)``, decoder output ``(batch, *data_shape)``, both finite; every
    parameter receives a gradient; a state_dict loaded into a fresh build gives the same outputs."""
    comp = _component("backbones", name)
    cfg = component_config(comp, options)
    what = _what(comp)
    shapes = _backbone_shapes(comp)
    if shapes is None:
        errors = []
        for shape in DEFAULT_SHAPES:
            try:
                _run_backbone(comp, cfg, shape, zdim, batch)
            except Exception as exc:  # not a shape it is for: try the next
                errors.append(f"{shape}: {type(exc).__name__}: {exc}")
                continue
            shapes = [shape]
            break
        _expect(shapes, f"{what}: builds and runs for none of the data shapes {DEFAULT_SHAPES} "
                        f"({'; '.join(errors)}); declare the shapes it is for with data_shapes on its config class")
    for shape in shapes:
        where = f"{what} for data shape {shape}, zdim {zdim}"
        encoder, decoder, x, z, h, y = _run_backbone(comp, cfg, shape, zdim, batch)
        _expect(isinstance(encoder, nn.Module) and isinstance(decoder, nn.Module),
                f"{where}: the factory must return (encoder, decoder) torch.nn.Modules")
        _expect(tuple(h.shape) == (batch, 2 * zdim),
                f"{where}: encoder output has shape {tuple(h.shape)}, expected ({batch}, {2 * zdim}) (mu, then logvar)")
        _expect(tuple(y.shape) == (batch, *shape),
                f"{where}: decoder output has shape {tuple(y.shape)}, expected {(batch, *shape)}")
        _expect(_finite(h) and _finite(y), f"{where}: outputs are not finite")
        (h.square().mean() + y.square().mean()).backward()
        unused = [f"{part}.{n}" for part, mod in (("encoder", encoder), ("decoder", decoder))
                  for n, p in mod.named_parameters() if p.requires_grad and p.grad is None]
        _expect(not unused, f"{where}: parameters that receive no gradient: {', '.join(unused)}")
        encoder.eval()
        decoder.eval()
        e2, d2, *_ = _run_backbone(comp, cfg, shape, zdim, batch, seed=1)
        e2.load_state_dict(encoder.state_dict())
        d2.load_state_dict(decoder.state_dict())
        e2.eval()
        d2.eval()
        with torch.no_grad():
            same = torch.allclose(encoder(x), e2(x)) and torch.allclose(decoder(z), d2(z))
        _expect(same, f"{where}: after loading the state_dict into a fresh build the outputs differ")


# -- datasets ----------------------------------------------------------------------------------------

def check_dataset(name: str, options: dict[str, Any] | None = None) -> None:
    """Built with downloads off (a boolean ``download`` option is set to false) and skipped, with the
    reason, when building it or drawing from it raises ``UsageError`` (data not available here).
    Otherwise: ``shape`` and ``kind`` declared; ``sample(n, generator)`` gives ``(n, *shape)`` finite
    floats, the same for the same generator seed and different for another; ``batches`` yields
    batches of that shape; the paper defaults for each registered objective name only options it has,
    with valid values; ``train_defaults`` only known training settings."""
    from ..config import TRAIN_DEFAULTS, RunConfig

    comp = _component("datasets", name)
    what = _what(comp)
    try:
        ds = _load_dataset(comp, options)
    except UsageError as exc:
        pytest.skip(f"dataset '{name}' is not available here: {exc}")
    shape = tuple(getattr(ds, "shape", ()))
    _expect(shape and all(isinstance(s, int) and s > 0 for s in shape), f"{what}: shape must be a tuple of positive ints, got {shape!r}")
    _expect(isinstance(getattr(ds, "kind", None), str) and ds.kind, f"{what}: must declare its kind ('2d', 'image', ...)")
    mr = getattr(ds, "metric_range", None)
    _expect(mr is None or mr > 0, f"{what}: metric_range must be None or positive, got {mr!r}")

    def draw(seed: int, n: int = 16) -> torch.Tensor:
        return ds.sample(n, torch.Generator().manual_seed(seed))

    a = draw(0)
    _expect(isinstance(a, torch.Tensor) and tuple(a.shape) == (16, *shape),
            f"{what}: sample(16, generator) must be a tensor of shape {(16, *shape)}, got {getattr(a, 'shape', type(a))}")
    _expect(a.is_floating_point() and _finite(a), f"{what}: samples must be finite floats")
    _expect(torch.equal(a, draw(0)), f"{what}: the same generator seed gives different samples (draw from the generator passed in)")
    _expect(not torch.equal(a, draw(1)), f"{what}: different generator seeds give the same samples")
    b = next(iter(ds.batches(8, torch.Generator().manual_seed(0))))
    _expect(tuple(b.shape) == (8, *shape), f"{what}: batches(8, generator) yields shape {tuple(b.shape)}, expected {(8, *shape)}")

    reg = plugins.registry()
    for obj in reg.names("objectives"):
        defaults = ds.defaults_for(obj)
        fields = reg.get("objectives", obj).config.model_fields
        stray = sorted(set(defaults) - set(fields))
        _expect(not stray, f"{what}: its defaults for objective '{obj}' name options it does not have: "
                           f"{', '.join(stray)} (they would be ignored); options: {', '.join(fields)}")
        plain = {k: v for k, v in defaults.items() if v is None or isinstance(v, (bool, int, float, str, list, tuple))}
        try:  # values resolved later (e.g. a count of epochs) are left out
            reg.get("objectives", obj).config.model_validate(plain)
        except ValidationError as exc:
            errs = [f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors() if e["type"] != "missing"]
            _expect(not errs, f"{what}: invalid defaults for objective '{obj}': {'; '.join(errs)}")
    train = dict(getattr(ds, "train_defaults", {}) or {})
    known = set(TRAIN_DEFAULTS) | set(RunConfig.model_fields)
    stray = sorted(set(train) - known)
    _expect(not stray, f"{what}: train_defaults has unknown settings {', '.join(stray)}; known: {', '.join(sorted(known))}")
    for key in ("iterations", "batch_size", "zdim"):
        if key in train:
            _expect(isinstance(train[key], int) and train[key] > 0, f"{what}: train_defaults['{key}'] must be a positive int")


# -- metrics -----------------------------------------------------------------------------------------

def check_metric(name: str, options: dict[str, Any] | None = None, data: str | None = None,
                 prior: str | None = None) -> None:
    """``directions`` maps names to ``min``/``max``; ``applies_to`` answers. Unless the metric declares
    ``heavy = True`` (on the metric, its config class or its factory): computed twice with the same seed
    on an untrained tiny model, on ``data`` or the first registered dataset available here (downloads
    off) that it applies to, with ``prior`` (default ``sg``, or the first registered prior for which it reports
    something): finite numbers, each with a direction, identical both times."""
    from ..metrics.base import EvalContext

    comp = _component("metrics", name)
    cfg = component_config(comp, options)
    what = _what(comp)
    metric = comp.build(cfg)
    dirs = getattr(metric, "directions", None)
    _expect(isinstance(dirs, dict) and dirs and all(v in ("min", "max") for v in dirs.values()),
            f"{what}: directions must map each reported name to 'min' or 'max', got {dirs!r}")
    for attr in ("applies_to", "compute"):
        _expect(callable(getattr(metric, attr, None)), f"{what}: has no method {attr}")
    if _declared("heavy", metric, comp.config, comp.factory):
        pytest.skip(f"metric '{name}' declares heavy = True: compute is not run by the contract checks")

    reg = plugins.registry()
    candidates = [data] if data else reg.names("datasets")
    ds, unavailable = None, []
    for dname in candidates:
        dcomp = reg.get("datasets", dname)
        try:
            d = dcomp.build(component_config(dcomp, None, _offline(dcomp)))
            applies = metric.applies_to(d)
            _expect(isinstance(applies, bool), f"{what}: applies_to(dataset) must return a bool, got {applies!r}")
            if applies:
                d.sample(1, torch.Generator().manual_seed(0))  # loads it, if it is available
        except (UsageError, pytest.skip.Exception) as exc:
            unavailable.append(f"{dname}: {exc}")
            continue
        if applies:
            ds = d
            break
    if ds is None:
        pytest.skip(f"metric '{name}' applies to no dataset available here" + (f" ({'; '.join(unavailable)})" if unavailable else ""))

    def compute(prior_name: str) -> dict[str, Any]:
        model = tiny_model(_build_prior(prior_name), data_shape=tuple(ds.shape)).eval()
        return comp.build(cfg).compute(EvalContext(model, ds, torch.device("cpu"), seed=0))

    priors = [prior] if prior else ["sg"] + [p for p in reg.names("priors") if p != "sg"]
    for prior_name in priors:
        try:
            values = compute(prior_name)
        except pytest.skip.Exception:
            continue
        if values:
            break
    where = f"{what} on dataset '{ds.name or data}' with prior '{prior_name}'"
    _expect(isinstance(values, dict), f"{where}: compute(ctx) must return a dict of name -> number")
    for key, value in values.items():
        _expect(key in dirs, f"{where}: reports '{key}' but directions has no entry for it ({', '.join(dirs)})")
        _expect(isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value),
                f"{where}: '{key}' = {value!r} is not a finite number")
    again = compute(prior_name)
    _expect(again == values, f"{where}: the same seed gives different values ({values} vs {again}); draw random "
                             "numbers from ctx.generator(name)")


# -- executors ---------------------------------------------------------------------------------------

def check_executor(name: str, options: dict[str, Any] | None = None) -> None:
    """Builds from its default options and has ``run(tasks, sweep_dir, on_done)``. (Running a sweep takes
    worker processes: introzoo's own sweep tests do that for the built-in executors.)"""
    comp = _component("executors", name)
    what = _what(comp)
    ex = comp.build(component_config(comp, options))
    run = getattr(ex, "run", None)
    _expect(callable(run), f"{what}: has no method run(tasks, sweep_dir, on_done)")
    try:
        inspect.signature(run).bind(None, None, None)
    except TypeError:
        raise AssertionError(f"{what}: run must accept (tasks, sweep_dir, on_done)") from None


#: kind -> its contract check (kinds without an entry get the registration checks only)
CHECKS: dict[str, Callable[..., None]] = {
    "priors": check_prior,
    "objectives": check_objective,
    "regularizers": check_regularizer,
    "backbones": check_backbone,
    "datasets": check_dataset,
    "metrics": check_metric,
    "executors": check_executor,
}
