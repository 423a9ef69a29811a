"""The pictures of a run, drawn with Pillow (2D) and torchvision's image grid (images), laid out by
:mod:`introzoo.figures.layout`: small axis ticks on the 2D panels, a colour bar beside every density, row labels on
the image grids, and a caption with the run's information (objective, data, prior, seed, iteration).

- 2D data: real data, generated samples, and the model's density ``exp(-negELBO(x))`` over the metric
  range (the official density plot); with ``zdim = 2`` also the latent space (``latent.png``);
- images: prior samples, reconstructions, and the per-epoch progress grids (rows: data,
  reconstruction, samples; the caption gives the iteration and epoch);
- both: a latent traversal (``traverse.png``) and, for a prior that has them, low-posterior samples
  (``lp_samples.png``), from :mod:`introzoo.figures.latent`;
- the saved-run commands' pictures: samples (:func:`samples_figure`), traversals and interpolations, and
  the ROC curves of ``ood`` (:func:`roc_figure`), captioned by :func:`saved_caption`.

:func:`introzoo.figures.finished.save_plots` is what the trainer calls after evaluation; the panel functions are used on their own
by the saved-run commands.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from PIL import Image, ImageDraw

from .layout import Figure, ImageRows, Panel, jet
from ..conditional.model import conditioned, first_rows
from ..metrics.base import EvalContext
from ..metrics.toy2d import grid_points
from ..model import VAE
from ..priors.base import Mixture

if TYPE_CHECKING:  # pragma: no cover
    from ..config import ResolvedRun
    from ..training.loop import Built

PANEL = 384
#: the axis labels of a 2D data panel
DATA_AXES = ("x1", "x2")


__all__ = [
    "jet",
    "run_caption",
    "scatter_panel",
    "density_panel",
    "titled",
    "two_d_figures",
    "save_2d_figures",
    "latent_panel",
    "save_latent_figure",
    "save_image_grid",
    "progress_rows",
    "save_image_progress",
    "save_image_figures",
    "latent_half_range",
    "save_latent_plot",
    "saved_caption",
    "samples_figure",
    "roc_figure",
]


def run_caption(run: ResolvedRun | None, iteration: int | None = None, steps_per_epoch: int | None = None) -> str:
    """``soft | 8gaussians | prior sg | seed 0 | iteration 30000`` (``, epoch 2`` where epochs count)."""
    parts = []
    if run is not None:
        parts = [
            run.objective.component.name,
            run.data.component.name,
            f"prior {run.prior.component.name}",
            f"seed {run.seed}",
        ]
    if iteration is not None:
        it = f"iteration {iteration}"
        if steps_per_epoch and steps_per_epoch > 1:
            it += f", epoch {iteration / steps_per_epoch:.3g}"
        parts.append(it)
    return " | ".join(parts)


def saved_caption(run: ResolvedRun | None, built: Built, what: str) -> str:
    """The caption of a picture drawn from a saved run: :func:`run_caption` at the run's last iteration (and
    epoch, for images), then what the picture shows (``... | iteration 30000 | 500 prior samples, ...``)."""
    if run is None:
        return what
    steps = built.dataset.steps_per_epoch(int(run.train["batch_size"])) if built.dataset.kind == "image" else None
    return " | ".join(p for p in (run_caption(run, int(run.train["iterations"]), steps), what) if p)


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


def titled(panels: list[tuple[str, Image.Image]], extent: float | None = None, caption: str = "") -> Image.Image:
    """Panels side by side under their titles (ticks over ``[-extent, extent]`` when given)."""
    return Figure([Panel(title, img, extent) for title, img in panels], caption).render()


def two_d_figures(
    real: np.ndarray, fake: np.ndarray, density: np.ndarray, half_range: float, caption: str = ""
) -> dict[str, Figure]:
    """``samples.png`` (real | generated), ``density.png`` and ``overview.png`` (all three): panels with
    ticks over the metric range, the density with its colour bar (0 .. its largest value)."""
    real_p = Panel("real data", scatter_panel(real, half_range), half_range)
    fake_p = Panel("generated samples", scatter_panel(fake, half_range, color=(30, 150, 60)), half_range)
    dens_p = Panel("density exp(-negELBO)", density_panel(density), half_range, (0.0, float(np.max(density))))
    return {
        "samples.png": Figure([real_p, fake_p], caption),
        "density.png": Figure([dens_p], caption),
        "overview.png": Figure([real_p, fake_p, dens_p], caption),
    }


def save_2d_figures(
    out_dir, real: np.ndarray, fake: np.ndarray, density: np.ndarray, half_range: float, caption: str = ""
) -> list[str]:
    """Write the figures of :func:`two_d_figures` into ``out_dir``."""
    files = two_d_figures(real, fake, density, half_range, caption)
    for name, fig in files.items():
        fig.save(f"{out_dir}/{name}")
    return list(files)


def latent_panel(
    z: np.ndarray, prior_density: np.ndarray, half_range: float, centers: np.ndarray | None = None, size: int = PANEL
) -> Image.Image:
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


def latent_figure(
    z: np.ndarray, prior_density: np.ndarray, half_range: float, centers: np.ndarray | None, caption: str = ""
) -> Figure:
    panel = Panel(
        "latent: prior density, aggregate posterior (dots), components (x)",
        latent_panel(z, prior_density, half_range, centers),
        half_range,
        (0.0, float(np.max(prior_density))),
    )
    return Figure([panel], caption)


def save_latent_figure(
    out_dir, z: np.ndarray, prior_density: np.ndarray, half_range: float, centers: np.ndarray | None, caption: str = ""
) -> str:
    latent_figure(z, prior_density, half_range, centers, caption).save(f"{out_dir}/latent.png")
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


def samples_figure(built: Built, x: torch.Tensor, caption: str = "") -> Figure | ImageRows:
    """Decoded samples ``x`` (on the CPU) under ``caption``: images as an (about square) grid; 2D points as a
    scatter with ticks over the data's range (its metric range) and the axes labelled ``x1``, ``x2``."""
    if built.dataset.kind == "image":
        per_row = max(1, int(len(x) ** 0.5))
        return ImageRows([("", x[i : i + per_row]) for i in range(0, len(x), per_row)], caption)
    pts = x.numpy()
    half = built.dataset.metric_range or float(np.abs(pts).max()) * 1.1
    return Figure(
        [
            Panel(
                f"{len(pts)} decoded samples, data range ±{half:g}",
                scatter_panel(pts, half),
                half,
                xlabel=DATA_AXES[0],
                ylabel=DATA_AXES[1],
            )
        ],
        caption,
    )


#: the colours of the curves of a ROC figure, one per run
CURVE_COLOURS = [(31, 119, 180), (214, 39, 40), (44, 160, 44), (255, 127, 14), (148, 103, 189), (140, 86, 75)]


def roc_figure(
    curves: list[tuple[str, np.ndarray, np.ndarray, float]], title: str, caption: str = "", size: int = PANEL
) -> Figure:
    """ROC curves (label, false positive rates, true positive rates, AUROC) on [0, 1]^2 with the chance
    diagonal (grey), the axes labelled and each curve's AUROC in the legend (``label: AUROC 0.873``)."""
    img = Image.new("RGB", (size, size), "white")
    draw = ImageDraw.Draw(img)
    draw.line([0, size - 1, size - 1, 0], fill=(190, 190, 190), width=1)
    legend = []
    for i, (label, fpr, tpr, auc) in enumerate(curves):
        colour = CURVE_COLOURS[i % len(CURVE_COLOURS)]
        pts = [(float(f) * (size - 1), (1 - float(t)) * (size - 1)) for f, t in zip(fpr, tpr)]
        draw.line(pts, fill=colour, width=2)
        legend.append((f"{label}: AUROC {auc:.3f}", colour))
    return Figure(
        [Panel(title, img, limits=(0.0, 1.0), xlabel="false positive rate", ylabel="true positive rate", legend=legend)],
        caption,
    )


# -- the run's figures ----------------------------------------------------------------------------


@torch.no_grad()
def progress_rows(built: Built, x: torch.Tensor, caption: str = "", n: int = 16) -> ImageRows:
    """Rows "data" (real images), "reconstruction" (z = mu) and "samples" (the prior), in eval mode."""
    model = built.model
    model.eval()
    x = x[:n]
    with first_rows(model, n):  # a conditional model: the batch's labels (introzoo.conditional)
        _, _, _, rec_ = model(x, deterministic=True)
    fake = model.sample(x.shape[0])
    return ImageRows([("data", x), ("reconstruction", rec_), ("samples", fake)], caption)


def save_image_progress(
    built: Built, x: torch.Tensor, path: Path, run: ResolvedRun | None = None, iteration: int | None = None
) -> str:
    """The progress grid of :func:`progress_rows`, captioned with the run and its iteration / epoch."""
    steps = built.dataset.steps_per_epoch(int(run.train["batch_size"])) if run is not None else None
    path.parent.mkdir(parents=True, exist_ok=True)
    progress_rows(built, x, run_caption(run, iteration, steps)).save(path)
    return path.name


@torch.no_grad()
def save_image_figures(built: Built, out: Path, ctx: EvalContext, caption: str = "") -> list[str]:
    """``samples.png`` (64 prior samples) and ``reconstructions.png`` (rows of test images, each followed by
    its reconstructions with z = mu), both captioned."""
    model, ds = built.model, built.dataset
    model.eval()
    with ctx.seeded("plots"):
        samples = model.sample(64)
    ImageRows([("", samples[i : i + 8]) for i in range(0, 64, 8)], caption).save(out / "samples.png")
    x, y = ds.images("test")
    x = ds.to_float(x[:32]).to(built.device)
    with conditioned(model, y[:32]):  # a conditional model: the images' labels
        _, _, _, rec_ = model(x, deterministic=True)
    rows = []
    for i in range(0, 32, 8):
        rows += [("data", x[i : i + 8]), ("reconstruction", rec_[i : i + 8])]
    ImageRows(rows, caption).save(out / "reconstructions.png")
    return ["samples.png", "reconstructions.png"]


def latent_half_range(*points: torch.Tensor | None) -> float:
    """Half-width of the latent plot's square: 1.2 x the 99th percentile of |coordinate| over the
    aggregate posterior, the prior's samples and the mixture components, so that a prior concentrated
    on a small region (a learned flow or mixture around a collapsed posterior) still fills the panel."""
    extent = max(float(p.abs().flatten().quantile(0.99)) for p in points if p is not None and p.numel())
    return max(1.2 * extent, 1e-3)


@torch.no_grad()
def save_latent_plot(model: VAE, x, out: Path, caption: str = "") -> str:
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
    return save_latent_figure(out, z.numpy(), dens, half, c, caption)
