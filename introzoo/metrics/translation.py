"""``content_transfer``: the error of translated images against their ground truth (seed 001 §6.4 and
Appendix 9.3, the Cars3D protocol of LORD; docs/images.md, "Image translation").

On a dataset that knows each image's class and content and can draw any (class, content) pair (``shapes``,
``cars3d``: the :class:`~introzoo.translation.ClassContent` capability), ``n`` pairs of images ``(a_i, b_i)``
are drawn uniformly and independently from ``split`` (default ``test``: Cars3D's held-out car models) with
the metric's generator, and

    content_transfer = (1/n) sum_i (1/D) || T(a_i, b_i) - G(class(a_i), content(b_i)) ||^2

with ``T(a, b) = D([class code of a, content code of b])`` (:func:`introzoo.translation.translate`, posterior
means), ``G`` the dataset's ground-truth image, ``D = C*H*W`` and pixels in [0, 1]: the mean squared
error per pixel (no clamping of the decoder's output). LORD reports this as the content-transfer
reconstruction error; Soft-IntroVAE Table 4 reports the perceptual distance (LPIPS) of the same pairs, which
needs a learned network introzoo does not ship.

A model whose backbone has no class and content codes (any but ``lord``) has nothing to transfer: the
metric reports no value and says why in ``metric_info``, as ``resp_entropy`` does for a prior that is not a
mixture. The pairs are processed ``ctx.chunk`` at a time.
"""

from __future__ import annotations

import torch
from pydantic import BaseModel, ConfigDict, Field

from ..translation import ClassContent, Translatable, translate
from .base import EvalContext, Metric


class ContentTransferConfig(BaseModel):
    """Options of ``content_transfer``."""

    model_config = ConfigDict(extra="forbid")

    n: int = Field(1_000, gt=0, description="image pairs (class source, content source) translated")
    split: str = Field("test", pattern="^(train|test)$", description="the split the pairs come from: train or test")


class ContentTransfer(Metric):
    directions = {"content_transfer": "min"}
    kinds = frozenset({"image"})

    def __init__(self, config: ContentTransferConfig) -> None:
        self.config = config

    def applies_to(self, dataset) -> bool:
        return isinstance(dataset, ClassContent) and dataset.kind in self.kinds

    def why_not(self, dataset) -> str:
        return "it needs a dataset that knows each image's class and content and can draw any pair of them (shapes, cars3d)"

    @torch.no_grad()
    def compute(self, ctx: EvalContext) -> dict[str, float]:
        model, ds, cfg = ctx.model, ctx.dataset, self.config
        if not isinstance(getattr(model, "decoder", None), Translatable):
            ctx.info["content_transfer"] = {"skipped": "the backbone has no class and content codes (lord has)"}
            return {}
        model.eval()
        x, _ = ds.images(cfg.split)
        classes, contents = ds.class_content(cfg.split)
        g = ctx.generator("content_transfer")
        a = torch.randint(0, x.shape[0], (cfg.n,), generator=g)
        b = torch.randint(0, x.shape[0], (cfg.n,), generator=g)
        total = 0.0
        with ctx.phase("content transfer", cfg.n) as advance:
            for ia, ib in zip(a.split(ctx.chunk), b.split(ctx.chunk)):
                out = translate(model, ctx.model_input(x[ia]), ctx.model_input(x[ib])).double()
                truth = ds.to_float(ds.render(classes[ia], contents[ib])).to(out.device, torch.float64)
                total += (out - truth).pow(2).flatten(1).mean(1).sum().item()
                advance(ia.shape[0])
        ctx.info["content_transfer"] = {"n": cfg.n, "split": cfg.split, "error": "mean squared error per pixel"}
        return {"content_transfer": total / cfg.n}
