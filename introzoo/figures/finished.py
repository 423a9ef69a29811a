"""The figures a finished run leaves in its directory (:func:`save_plots`, called by the trainer after
evaluation): the pictures of :mod:`.pictures` by the dataset's kind, and the latent-space figures of
:mod:`.latent`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import torch

from ..metrics.base import EvalContext
from ..metrics.toy2d import grid_neg_elbo
from .latent import save_latent_figures
from .pictures import run_caption, save_2d_figures, save_image_figures, save_latent_plot

if TYPE_CHECKING:
    from ..config import ResolvedRun
    from ..training.loop import Built


def save_plots(run: ResolvedRun, built: Built, out: Path, ctx: EvalContext) -> list[str]:
    """The figures of a finished run in ``out``, by the dataset's kind; returns the file names."""
    ds = built.dataset
    if ds.kind == "image":
        steps = ds.steps_per_epoch(int(run.train["batch_size"]))
        caption = run_caption(run, int(run.train["iterations"]), steps)
        return save_image_figures(built, out, ctx, caption) + save_latent_figures(run, built, out, ctx.seed)
    if ds.kind != "2d":
        return []
    g = ctx.generator("plots")
    real = ds.sample(2048, g).numpy()
    with ctx.seeded("plots"):
        fake = built.model.sample(2048).cpu().numpy()
        n = 256
        density = torch.exp(-grid_neg_elbo(ctx, n).double()).reshape(n, n).numpy()
    caption = run_caption(run, int(run.train["iterations"]))
    files = save_2d_figures(out, real, fake, density, ds.metric_range, caption)
    if built.model.zdim == 2:
        files.append(save_latent_plot(built.model, real, out, caption))
    return files + save_latent_figures(run, built, out, ctx.seed)
