"""Looking into a saved run's latent space: low-posterior samples (LP-Gen, seed 004), latent traversals
and interpolations between encoded test points (seed 001 Fig. 5). The bodies behind ``introzoo sample
--low-posterior``, ``introzoo traverse`` and ``introzoo interpolate``; :func:`save_latent_figures` also
leaves them in a finished run's directory.

Images give PNG grids with a label per row (:class:`introzoo.figures.layout.ImageRows`); 2D data gives scatter plots
of the decoded points over the data (grey), one panel per latent dimension (traverse) or per pair
(interpolate), coloured from blue (start) to red (end), with ticks over the data's range and labelled axes.
Every picture is captioned with the run (objective, data, prior, seed, iteration) and what it shows.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import ImageDraw

from ..errors import UsageError
from ..priors.base import LowPosteriorSampler

#: encoded data points whose posteriors make the aggregate posterior of LP-Gen
POSTERIOR_POINTS = 2000
TRAVERSE_AROUND = ("prior", "test")
INTERPOLATION_MODES = ("linear", "spherical")


def _points(built: Any, n: int, g: torch.Generator, split: str = "test") -> torch.Tensor:
    """``n`` data points: images of ``split`` (drawn by ``g``), or fresh draws of a 2D generator."""
    ds = built.dataset
    if ds.kind == "image":
        x = ds.images(split)[0]
        idx = torch.randperm(x.shape[0], generator=g)[:n]
        return ds.to_float(x[idx])
    return ds.sample(n, g)


def _encode(built: Any, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    p = next(built.model.parameters())
    mus, logvars = [], []
    for chunk in x.split(500):
        mu, logvar = built.model.encode(chunk.to(device=p.device, dtype=p.dtype))
        mus.append(mu)
        logvars.append(logvar)
    return torch.cat(mus), torch.cat(logvars)


@torch.no_grad()
def low_posterior_latents(built: Any, prior_name: str, n: int, candidates: int, seed: int) -> torch.Tensor:
    """LP-Gen latents of a loaded run, or a :class:`UsageError` when its prior has no such sampler."""
    from ..plugins import state

    prior = built.model.prior
    if not isinstance(prior, LowPosteriorSampler):
        names = [c.name for c in state().registry.all("priors") if _has_lp(c)]
        raise UsageError(
            f"prior '{prior_name}' has no low-posterior sampling (dpVAE's LP-Gen samples the "
            f"decoupled prior); priors that have it: {', '.join(names) or '(none)'}"
        )
    g = torch.Generator().manual_seed(seed)
    mu, logvar = _encode(built, _points(built, POSTERIOR_POINTS, g, split="train"))
    torch.manual_seed(seed)
    return prior.sample_low_posterior(n, mu, logvar, candidates=candidates)


def _has_lp(comp: Any) -> bool:
    try:
        return isinstance(comp.build(comp.config(), zdim=2), LowPosteriorSampler)
    except Exception:
        return False


def prior_mean(built: Any, n: int = 10_000) -> torch.Tensor:
    """The prior's mean, estimated from ``n`` of its samples (the run's random stream is left alone)."""
    p = next(built.model.parameters())
    with torch.random.fork_rng(devices=[p.device] if p.device.type == "cuda" else []):
        torch.manual_seed(0)
        return built.model.prior.sample(n).mean(0)


def traversal_latents(centre: torch.Tensor, span: float, steps: int) -> torch.Tensor:
    """``(zdim * steps, zdim)``: row d of the grid moves dim d of ``centre`` over ``centre_d + [-span, span]``."""
    d = centre.shape[0]
    offsets = torch.linspace(-span, span, steps, dtype=centre.dtype, device=centre.device)
    z = centre.repeat(d, steps, 1)  # (d, steps, d)
    idx = torch.arange(d, device=centre.device)
    z[idx, :, idx] = centre[idx].unsqueeze(1) + offsets.unsqueeze(0)
    return z.reshape(d * steps, d)


def interpolation_latents(a: torch.Tensor, b: torch.Tensor, steps: int, mode: str) -> torch.Tensor:
    """``(pairs * steps, zdim)``: for each pair (row of ``a``, ``b``), ``steps`` codes from a to b included.
    ``linear``: (1 - t) a + t b; ``spherical``: sin((1 - t) W) / sin W a + sin(t W) / sin W b with W the
    angle between a and b (linear where sin W is tiny)."""
    t = torch.linspace(0, 1, steps, dtype=a.dtype, device=a.device).view(1, steps, 1)
    a_, b_ = a.unsqueeze(1), b.unsqueeze(1)
    lin = (1 - t) * a_ + t * b_
    if mode == "linear":
        return lin.reshape(-1, a.shape[1])
    cos = (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1)).clamp_min(1e-12)
    w = torch.arccos(cos.clamp(-1, 1)).view(-1, 1, 1)
    sin = torch.sin(w)
    slerp = (torch.sin((1 - t) * w) * a_ + torch.sin(t * w) * b_) / sin.clamp_min(1e-12)
    return torch.where(sin.abs() > 1e-6, slerp, lin).reshape(-1, a.shape[1])


def _colour(i: int, n: int) -> tuple[int, int, int]:
    f = i / max(1, n - 1)
    return int(40 + 200 * f), 60, int(220 - 180 * f)


def paths_figure(built: Any, paths: list[np.ndarray], titles: list[str], seed: int, caption: str = ""):
    """One panel per path: the data (grey) and the path's decoded points, blue -> red, with ticks over the
    data's range and the axes labelled; ``caption`` above them."""
    from .layout import Figure, Panel
    from .pictures import DATA_AXES, scatter_panel

    ds = built.dataset
    real = ds.sample(1000, torch.Generator().manual_seed(seed)).numpy()
    half = ds.metric_range or float(np.abs(np.concatenate(paths)).max()) * 1.1
    panels = []
    size = 384
    for title, pts in zip(titles, paths):
        img = scatter_panel(real, half, color=(200, 200, 200), size=size)
        draw = ImageDraw.Draw(img)
        px = (pts[:, 0] + half) / (2 * half) * (size - 1)
        py = (half - pts[:, 1]) / (2 * half) * (size - 1)
        for i, (x, y) in enumerate(zip(px, py)):
            if i:
                draw.line([px[i - 1], py[i - 1], x, y], fill=(120, 120, 120), width=1)
            draw.ellipse([x - 3, y - 3, x + 3, y + 3], fill=_colour(i, len(pts)))
        panels.append(Panel(title, img, half, xlabel=DATA_AXES[0], ylabel=DATA_AXES[1]))
    return Figure(panels, caption)


def _write(
    built: Any, z: torch.Tensor, rows: int, steps: int, out: Path, titles: list[str], seed: int, caption: str = ""
) -> Path:
    """Decode ``z`` (``rows`` x ``steps`` codes) into ``out``: an image grid with ``titles`` as row labels, or
    one 2D panel per row titled by them; ``caption`` above either."""
    from .layout import ImageRows

    x = built.model.decode(z).cpu()
    if out.suffix != ".png":
        raise UsageError(f"unknown output type '{out.suffix}' for {out}; known: .png")
    out.parent.mkdir(parents=True, exist_ok=True)
    if built.dataset.kind == "image":
        ImageRows(list(zip(titles, x.split(steps))), caption).save(out)
    else:
        pts = x.reshape(rows, steps, -1).numpy()
        paths_figure(built, list(pts), titles, seed, caption).save(out)
    return out


@torch.no_grad()
def traverse_run(
    built: Any, out: Path, span: float, steps: int, around: str, index: int, seed: int, run: Any = None
) -> Path:
    """Traversal grid of a loaded run around the prior mean or the encoding (mean) of test point ``index``,
    captioned with ``run`` (:func:`introzoo.figures.pictures.saved_caption`) and the traversal."""
    from .pictures import saved_caption

    if around not in TRAVERSE_AROUND:
        raise UsageError(f"unknown centre '{around}'; known: {', '.join(TRAVERSE_AROUND)}")
    if around == "prior":
        centre = prior_mean(built)
    else:  # test image ``index``; for a 2D generator, its ``index``-th draw with ``seed``
        if built.dataset.kind == "image":
            test = built.dataset.images("test")[0]
            if index >= len(test):
                raise UsageError(f"--index {index} is past the test split ({len(test)} images)")
            x = built.dataset.to_float(test[index : index + 1])
        else:
            x = _points(built, index + 1, torch.Generator().manual_seed(seed))[-1:]
        centre = _encode(built, x)[0][0]
    z = traversal_latents(centre, span, steps)
    d = centre.shape[0]
    where = "the prior mean" if around == "prior" else f"test point {index}"
    caption = saved_caption(run, built, f"latent traversal around {where}: each dim over ±{span:g}, {steps} steps")
    return _write(built, z, d, steps, out, [f"latent dim {i}" for i in range(d)], seed, caption)


@torch.no_grad()
def interpolate_run(built: Any, out: Path, pairs: int, steps: int, mode: str, seed: int, run: Any = None) -> Path:
    """Interpolations between the latent means of ``pairs`` pairs of test points drawn by ``seed``, captioned
    with ``run`` (:func:`introzoo.figures.pictures.saved_caption`) and the interpolation."""
    from .pictures import saved_caption

    if mode not in INTERPOLATION_MODES:
        raise UsageError(f"unknown interpolation '{mode}'; known: {', '.join(INTERPOLATION_MODES)}")
    x = _points(built, 2 * pairs, torch.Generator().manual_seed(seed))
    if len(x) < 2 * pairs:
        raise UsageError(f"--pairs {pairs} needs {2 * pairs} test points; the test split has {len(x)}")
    mu = _encode(built, x)[0]
    z = interpolation_latents(mu[:pairs], mu[pairs:], steps, mode)
    caption = saved_caption(run, built, f"{mode} interpolation between test points (seed {seed}), {steps} steps")
    return _write(built, z, pairs, steps, out, [f"pair {i}" for i in range(pairs)], seed, caption)


@torch.no_grad()
def save_latent_figures(run: Any, built: Any, out: Path, seed: int) -> list[str]:
    """What a finished run leaves besides its samples: ``traverse.png`` (around the prior mean, ±3) and,
    for a prior with low-posterior sampling, ``lp_samples.png`` (64 LP-Gen samples), both captioned."""
    from .pictures import saved_caption

    built.model.eval()
    files = [traverse_run(built, out / "traverse.png", 3.0, 10, "prior", 0, seed, run).name]
    if isinstance(built.model.prior, LowPosteriorSampler):
        n = 64 if built.dataset.kind == "image" else 512
        z = low_posterior_latents(built, run.prior.component.name, n, 10, seed)
        caption = saved_caption(run, built, f"{n} low-posterior samples (LP-Gen, lowest of 10 x {n})")
        files.append(write_samples(built, built.model.decode(z).cpu(), out / "lp_samples.png", caption).name)
    return files


def write_samples(built: Any, x: torch.Tensor, out: Path, caption: str = "") -> Path:
    """Decoded samples as a captioned PNG (:func:`introzoo.figures.pictures.samples_figure`): an image grid, or a 2D
    scatter with axes over the metric range."""
    from .pictures import samples_figure

    out.parent.mkdir(parents=True, exist_ok=True)
    samples_figure(built, x, caption).save(out)
    return out
