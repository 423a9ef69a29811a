r"""Conditional FID of a class-conditional model (``--conditional``; seed 001 §6.3, the class-conditional
CIFAR-10 model's FID 4.07; docs/images.md, "Class-conditional models").

Over the machinery of :mod:`introzoo.metrics.fid` (the same extractor, real images and streaming):

- ``fid_cond:pooled`` -> ``fid_cond@<extractor>``: the FID between the ``n`` real training images ``fid_gen``
  uses and ``n`` samples ``D(z_i, o(y_i))``, ``z_i ~ p(z)``, where ``y_i`` is the label of the i-th real image:
  the generated set has exactly the real set's class counts (the label distribution of the reference
  images), so the value measures the images, not a mismatch of class frequencies. On an unconditional model
  the same numbers would be ``fid_gen``'s.
- ``fid_cond:per_class`` -> ``fid_intra@<extractor>``: the intra-class FID of Miyato & Koyama (cGANs with
  Projection Discriminator, ICLR 2018, §5): for each class c among the ``n`` real images, the FID between its
  ``n_c`` real images and ``n_c`` samples of class c; the value is the mean over classes, and
  ``metric_info`` lists each class's FID. Classes with fewer than 2 reference images are left out (a
  covariance needs two).

The seed 001 table's 4.07 is an Inception FID (``features=(inception,weights=...)``) of the pooled kind
(the paper does not state how its samples' labels were chosen; drawing them as the data's is the common
protocol of class-conditional generators). Generated images are clipped to [0, 1]; ``bn_mode`` as for
``fid_gen``.
"""

from __future__ import annotations

from typing import ClassVar, Literal

import torch
from pydantic import Field

from ..conditional.model import ConditionalVAE
from ..errors import UsageError
from .base import EvalContext
from .fid import FIDConfig, _fid, _FID


class FIDCondConfig(FIDConfig):
    """Options of ``fid_cond`` (those of ``fid_gen``, and which conditional FID)."""

    primary: ClassVar[str] = "kind"

    kind: Literal["pooled", "per_class"] = Field(
        ..., description="pooled: one FID, samples with the real images' labels; per_class: mean FID per class"
    )


def _generate(ctx: EvalContext, labels: torch.Tensor, batch_size: int):
    """Samples with ``labels``, the prior's latents drawn ``batch_size`` at a time (as ``fid_gen``)."""
    model: ConditionalVAE = ctx.model  # type: ignore[assignment]
    for lo in range(0, labels.numel(), batch_size):
        y = labels[lo : lo + batch_size]
        z = model.prior.sample(y.numel()).to(ctx.device)
        for zc, yc in zip(z.split(ctx.chunk), y.split(ctx.chunk)):
            with model.conditioned(yc):
                yield model.decode(zc).clamp(0, 1)


class FIDCond(_FID):
    which = "cond"

    def __init__(self, config: FIDCondConfig) -> None:
        super().__init__(config)
        if config.kind == "per_class":
            self.key = self.key.replace("fid_cond@", "fid_intra@")
            self.directions = {self.key: "min"}

    def compute(self, ctx: EvalContext) -> dict[str, float]:
        if not isinstance(ctx.model, ConditionalVAE):
            raise UsageError("metric 'fid_cond' needs a class-conditional run (trained with --conditional); use fid_gen")
        if self.config.kind == "pooled":
            return super().compute(ctx)
        return self._per_class(ctx)

    def images(self, ctx: EvalContext, idx: torch.Tensor):
        yield from _generate(ctx, ctx.dataset.images("train")[1][idx], self.config.batch_size)

    def _per_class(self, ctx: EvalContext) -> dict[str, float]:
        from torchmetrics.image.fid import FrechetInceptionDistance

        c = self.config
        name, net, _, idx = _fid(ctx, c)  # the same n reference images as fid_gen
        x, y = ctx.dataset.images("train")
        labels = y[idx]
        per: dict[str, float] = {}
        ctx.model.train(c.bn_mode == "train")
        try:
            with (
                torch.no_grad(),
                ctx.seeded(f"fid:{self.which}"),
                ctx.phase(f"{self.key}: real and generated images per class", 2 * idx.numel()) as advance,
            ):
                for k in sorted(int(v) for v in labels.unique()):
                    rows = idx[labels == k]
                    if rows.numel() < 2:
                        continue
                    fid = FrechetInceptionDistance(feature=net).to(ctx.device)
                    for chunk in rows.split(min(c.batch_size, ctx.chunk)):
                        fid.update(ctx.dataset.to_float(x[chunk]).to(ctx.device), real=True)
                    for fake in _generate(ctx, torch.full((rows.numel(),), k, dtype=torch.long), c.batch_size):
                        fid.update(fake, real=False)
                    per[str(k)] = float(fid.compute())
                    advance(2 * rows.numel())
        finally:
            ctx.model.eval()
        if not per:
            raise UsageError("fid_cond:per_class needs at least 2 reference images of some class; raise n")
        value = sum(per.values()) / len(per)
        ctx.info[self.key] = {"n": int(idx.numel()), "bn_mode": c.bn_mode, "per_class": per, **net.info}
        return {self.key: value}
