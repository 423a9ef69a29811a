"""The pictures of a run, drawn with Pillow (2D) and torchvision's image grid (images).

- 2D data: real data, generated samples, and the model's density ``exp(-negELBO(x))`` over the metric
  range (the official density plot); with ``zdim = 2`` also the latent space (``latent.png``);
- images: prior samples, reconstructions, and the per-epoch progress grids;
- both: a latent traversal (``traverse.png``) and, for a prior that has them, low-posterior samples
  (``lp_samples.png``), from :mod:`introzoo.latent_cli`.

:func:`save_plots` is what the trainer calls after evaluation; the panel functions are used on their own
by the saved-run commands.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from PIL import Image, ImageDraw

from .metrics.base import EvalContext
from .metrics.toy2d import grid_neg_elbo, grid_points
from .model import VAE
from .priors.base import Mixture

if TYPE_CHECKING:  # pragma: no cover
    from .config import ResolvedRun
    from .train import Built

PANEL = 384


def jet(v: np.ndarray) -> np.ndarray:
    """Map values in [0, 1] to RGB uint8 with the 'jet' colormap."""
    v = np.clip(v, 0.0, 1.0)
    r = np.clip(1.5 - np.abs(4 * v - 3), 0, 1)
    g = np.clip(1.5 - np.abs(4 * v - 2), 0, 1)
    b = np.clip(1.5 - np.abs(4 * v - 1), 0, 1)
    return (np.stack([r, g, b], -1) * 255).astype(np.uint8)


def scatter_panel(points: np.ndarray, half_range: float, color=(40, 120, 200), size: int = PANEL) -> Image.Image:
    img = Image.new("RGB", (size, size), "white")
    draw = ImageDraw.Draw(img)
    px = (points[:, 0] + half_range) / (2 * half_range) * (size - 1)
    py = (half_range - points[:, 1]) / (2 * half_range) * (size - 1)  # y up
    for x, y in zip(px, py):
        if 0 <= x < size and 0 <= y < size:
            draw.ellipse([x - 1.2, y - 1.2, x + 1.2, y + 1.2], fill=color)
    return img


def density_panel(grid_values: np.ndarray, size: int = PANEL) -> Image.Image:
    """``grid_values``: n x n array in the 'ij' order of the evaluation grid (axis 0 = x, axis 1 = y)."""
    v = grid_values.T[::-1]  # rows = y from top (high) to bottom, columns = x
    v = v / v.max() if v.max() > 0 else v
    return Image.fromarray(jet(v)).resize((size, size), Image.BILINEAR)


def titled(panels: list[tuple[str, Image.Image]]) -> Image.Image:
    pad, title_h = 8, 22
    w = sum(p.width for _, p in panels) + pad * (len(panels) + 1)
    h = max(p.height for _, p in panels) + title_h + 2 * pad
    canvas = Image.new("RGB", (w, h), "white")
    draw = ImageDraw.Draw(canvas)
    x = pad
    for title, panel in panels:
        draw.text((x + 4, pad), title, fill="black")
        canvas.paste(panel, (x, pad + title_h))
        draw.rectangle([x - 1, pad + title_h - 1, x + panel.width, pad + title_h + panel.height], outline="gray")
        x += panel.width + pad
    return canvas


def save_2d_figures(out_dir, real: np.ndarray, fake: np.ndarray, density: np.ndarray, half_range: float) -> list[str]:
    """Write ``samples.png`` (real | generated), ``density.png`` and ``overview.png`` (all three)."""
    real_p = scatter_panel(real, half_range)
    fake_p = scatter_panel(fake, half_range, color=(30, 150, 60))
    dens_p = density_panel(density)
    files = {
        "samples.png": titled([("real data", real_p), ("generated samples", fake_p)]),
        "density.png": titled([("density exp(-negELBO)", dens_p)]),
        "overview.png": titled([("real data", real_p), ("generated samples", fake_p),
                                ("density exp(-negELBO)", dens_p)]),
    }
    for name, img in files.items():
        img.save(f"{out_dir}/{name}")
    return list(files)


def latent_panel(z: np.ndarray, prior_density: np.ndarray, half_range: float, centers: np.ndarray | None = None,
                 size: int = PANEL) -> Image.Image:
    """The prior's density (heat map) with the aggregate posterior's samples (white dots) and, for
    mixtures, the components' means (black crosses). ``prior_density`` is n x n in 'ij' order."""
    img = density_panel(prior_density, size)
    draw = ImageDraw.Draw(img)
    to_px = lambda v: (v + half_range) / (2 * half_range) * (size - 1)  # noqa: E731
    for x, y in zip(to_px(z[:, 0]), (size - 1) - to_px(z[:, 1])):
        if 0 <= x < size and 0 <= y < size:
            draw.point((float(x), float(y)), fill="white")
    if centers is not None:
        for x, y in zip(to_px(centers[:, 0]), (size - 1) - to_px(centers[:, 1])):
            draw.line([x - 4, y - 4, x + 4, y + 4], fill="black", width=2)
            draw.line([x - 4, y + 4, x + 4, y - 4], fill="black", width=2)
    return img


def save_latent_figure(out_dir, z: np.ndarray, prior_density: np.ndarray, half_range: float,
                       centers: np.ndarray | None) -> str:
    titled([("latent: prior density, aggregate posterior (dots), components (x)",
             latent_panel(z, prior_density, half_range, centers))]).save(f"{out_dir}/latent.png")
    return "latent.png"


def save_image_grid(path, images, nrow: int = 8) -> str:
    """Save images ``(N, C, H, W)`` (values clipped to [0, 1]) as one PNG grid (torchvision's ``save_image``);
    images under 32 pixels wide are enlarged by nearest-neighbour repetition."""
    from torchvision.utils import save_image

    x = images.detach().float().cpu().clamp(0, 1)
    if x.shape[-1] < 32:  # tiny images (8x8 digits) are enlarged, pixel for pixel, to be seen
        f = -(-32 // x.shape[-1])
        x = torch.nn.functional.interpolate(x, scale_factor=f, mode="nearest")
    save_image(x, str(path), nrow=nrow, padding=2, pad_value=1.0)
    return str(path.name if hasattr(path, "name") else path)


# -- the run's figures ----------------------------------------------------------------------------

@torch.no_grad()
def save_image_progress(built: Built, x: torch.Tensor, path: Path, n: int = 16) -> str:
    """One grid: a row of real images, their reconstructions (z = mu) and prior samples (eval mode)."""
    model = built.model
    model.eval()
    x = x[:n]
    _, _, _, rec_ = model(x, deterministic=True)
    fake = model.sample(x.shape[0])
    path.parent.mkdir(parents=True, exist_ok=True)
    return save_image_grid(path, torch.cat([x, rec_, fake]), nrow=x.shape[0])


@torch.no_grad()
def save_image_figures(built: Built, out: Path, ctx: EvalContext) -> list[str]:
    """``samples.png`` (64 prior samples) and ``reconstructions.png`` (test images, odd rows their
    reconstructions with z = mu)."""
    model, ds = built.model, built.dataset
    model.eval()
    with ctx.seeded("plots"):
        files = [save_image_grid(out / "samples.png", model.sample(64), nrow=8)]
    x = ds.to_float(ds.images("test")[0][:32]).to(built.device)
    _, _, _, rec_ = model(x, deterministic=True)
    pairs = torch.stack([x.reshape(4, 8, *x.shape[1:]), rec_.reshape(4, 8, *x.shape[1:])], 1).reshape_as(
        torch.cat([x, rec_]))
    files.append(save_image_grid(out / "reconstructions.png", pairs, nrow=8))
    return files


def save_plots(run: ResolvedRun, built: Built, out: Path, ctx: EvalContext) -> list[str]:
    """The figures of a finished run in ``out``, by the dataset's kind; returns the file names."""
    from .latent_cli import save_latent_figures

    ds = built.dataset
    if ds.kind == "image":
        return save_image_figures(built, out, ctx) + save_latent_figures(run, built, out, ctx.seed)
    if ds.kind != "2d":
        return []
    g = ctx.generator("plots")
    real = ds.sample(2048, g).numpy()
    with ctx.seeded("plots"):
        fake = built.model.sample(2048).cpu().numpy()
        n = 256
        density = torch.exp(-grid_neg_elbo(ctx, n).double()).reshape(n, n).numpy()
    files = save_2d_figures(out, real, fake, density, ds.metric_range)
    if built.model.zdim == 2:
        files.append(save_latent_plot(built.model, real, out))
    return files + save_latent_figures(run, built, out, ctx.seed)


def latent_half_range(*points: torch.Tensor | None) -> float:
    """Half-width of the latent plot's square: 1.2 x the 99th percentile of |coordinate| over the
    aggregate posterior, the prior's samples and the mixture components, so that a prior concentrated
    on a small region (a learned flow or mixture around a collapsed posterior) still fills the panel."""
    extent = max(float(p.abs().flatten().quantile(0.99)) for p in points if p is not None and p.numel())
    return max(1.2 * extent, 1e-3)


@torch.no_grad()
def save_latent_plot(model: VAE, x, out: Path) -> str:
    """2D latent space: the prior's density, the aggregate posterior and the mixture components."""
    model.eval()
    p = next(model.parameters())
    mu, logvar = model.encode(torch.as_tensor(x, dtype=p.dtype, device=p.device))
    z = model.reparameterize(mu, logvar).cpu()
    centers = model.prior.components()[0] if isinstance(model.prior, Mixture) else None
    with torch.random.fork_rng(devices=[p.device] if p.device.type == "cuda" else []):
        zp = model.prior.sample(len(z)).cpu()  # the run's random stream is left as it was
    half = latent_half_range(z, zp, None if centers is None else centers.detach().cpu())
    n = 200
    grid = grid_points(half, n).to(device=p.device, dtype=p.dtype)
    dens = torch.exp(model.prior.log_prob(grid)).reshape(n, n).double().cpu().numpy()
    c = None if centers is None else centers.detach().double().cpu().numpy()
    return save_latent_figure(out, z.numpy(), dens, half, c)
