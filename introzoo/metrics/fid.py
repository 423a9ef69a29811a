r"""FID of samples and of reconstructions (seed 003 §5.2 "FID(GEN)" and "FID(REC)";
docs/conventions.md, "Image metrics").

``FID = ||m_r - m_g||^2 + Tr(S_r + S_g - 2 (S_r S_g)^{1/2})`` between the feature statistics of ``n`` real
training images and of ``n`` generated images, computed by torchmetrics' ``FrechetInceptionDistance``
(float64 statistics) over a feature extractor that is a registered component (``features=``):

- ``fid_gen``: images ``D(z)``, ``z ~ p(z)`` (the prior).
- ``fid_rec``: reconstructions ``D(z)``, ``z ~ q(z|x)``, of the same real images (the aggregated posterior).

The extractor is a spec string, its options in parentheses inside the metric's spec:
``fid_gen,features=(inception,weights=/data/pt_inception.pth)``, ``fid_rec,features=(classifier,epochs=5)``.
Values are named after the extractor: ``fid_gen@inception``, ``fid_gen@classifier``; an FID from
introzoo's own classifier is not an Inception FID and never shares a column with one. Generated images are
clipped to [0, 1] before feature extraction. ``bn_mode`` sets the model's mode while generating (``eval``:
BatchNorm running statistics, the default; ``train``: batch statistics, as the official code evaluates);
``metric_info`` in metrics.json records it with the extractor's details (e.g. the classifier's accuracy).

Both stream (:mod:`introzoo.metrics.stream`): images go through the model and the extractor at most
``min(batch_size, chunk)`` at a time into torchmetrics' running (float64) feature sums, so memory does not
grow with ``n``. Prior latents are drawn ``batch_size`` at a time and posterior noise is keyed by the
image's position, so the value does not depend on the chunk; with ``bn_mode=train`` BatchNorm's batch
statistics are those of each pass, which does.
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, field_validator

from ..conditional.model import conditioned
from .base import EvalContext, Metric
from .stream import noise_key, posterior_noise


class FIDConfig(BaseModel):
    """Options of ``fid_gen`` / ``fid_rec``."""

    model_config = ConfigDict(extra="forbid")

    features: str = Field(
        "classifier",
        description="feature extractor spec; options in parentheses: (inception,weights=PATH), (classifier,epochs=5)",
    )
    n: int = Field(10_000, gt=1, description="real and generated images each (capped by the training split)")
    bn_mode: Literal["eval", "train"] = Field("eval", description="model mode while generating")
    batch_size: int = Field(500, gt=0, description="images per batch")

    @field_validator("features")
    @classmethod
    def _unwrap(cls, v: str) -> str:
        v = v.strip()
        return v[1:-1].strip() if v.startswith("(") and v.endswith(")") else v


def _extractor(ctx: EvalContext, spec: str):
    key = f"extractor:{spec}"
    if key not in ctx.cache:
        import inspect

        from ..plugins import state
        from ..spec import resolve

        comp, cfg = resolve(state().registry, "extractors", spec)
        extra = {"progress": ctx.progress, "chunk": ctx.chunk}  # for factories that report and stream
        params = inspect.signature(comp.factory).parameters
        if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
            extra = {k: v for k, v in extra.items() if k in params}
        ctx.cache[key] = (comp.name, comp.build(cfg, dataset=ctx.dataset, device=ctx.device, **extra))
    return ctx.cache[key]


def _fid(ctx: EvalContext, c: FIDConfig):
    """A torchmetrics FID object holding the real statistics (kept across ``reset``), cached per setting."""
    from torchmetrics.image.fid import FrechetInceptionDistance

    key = f"fid:{c.features}:{c.n}"
    if key not in ctx.cache:
        name, net = _extractor(ctx, c.features)
        fid = FrechetInceptionDistance(feature=net, reset_real_features=False).to(ctx.device)
        x, _ = ctx.dataset.images("train")
        g = ctx.generator("fid:real")
        idx = torch.randperm(x.shape[0], generator=g)[: c.n]
        with torch.no_grad(), ctx.phase(f"FID: features of real images ({name})", idx.numel()) as advance:
            for chunk in idx.split(min(c.batch_size, ctx.chunk)):
                fid.update(ctx.dataset.to_float(x[chunk]).to(ctx.device), real=True)
                advance(chunk.numel())
        ctx.cache[key] = (name, net, fid, idx)
    return ctx.cache[key]


class _FID(Metric):
    kinds = frozenset({"image"})
    which = ""
    heavy = True  # trains or loads a feature extractor: the contract checks do not compute it

    def __init__(self, config: FIDConfig) -> None:
        self.config = config
        name = config.features.split(",")[0].split(":")[0].strip()
        self.key = f"fid_{self.which}@{name}"
        self.directions = {self.key: "min"}

    def images(self, ctx: EvalContext, idx: torch.Tensor):  # pragma: no cover - abstract
        raise NotImplementedError

    def compute(self, ctx: EvalContext) -> dict[str, float]:
        c = self.config
        name, net, fid, idx = _fid(ctx, c)
        fid.reset()  # keeps the real statistics
        ctx.model.train(c.bn_mode == "train")
        try:
            with (
                torch.no_grad(),
                ctx.seeded(f"fid:{self.which}"),
                ctx.phase(f"{self.key}: generated images", idx.numel()) as advance,
            ):  # seeded: the prior's draws
                for x in self.images(ctx, idx):
                    fid.update(x.clamp(0, 1), real=False)
                    advance(x.shape[0])
        finally:
            ctx.model.eval()
        value = float(fid.compute())
        ctx.info[self.key] = {"n": int(idx.numel()), "bn_mode": c.bn_mode, **net.info}
        return {self.key: value}


class FIDGen(_FID):
    which = "gen"

    def images(self, ctx: EvalContext, idx: torch.Tensor):
        left = idx.numel()
        while left > 0:  # latents drawn batch_size at a time (the draws do not depend on the chunk)
            n = min(self.config.batch_size, left)
            for z in ctx.model.prior.sample(n).to(ctx.device).split(ctx.chunk):
                yield ctx.model.decode(z)
            left -= n


class FIDRec(_FID):
    which = "rec"

    def images(self, ctx: EvalContext, idx: torch.Tensor):
        x, y = ctx.dataset.images("train")
        key = noise_key(ctx.seed, "fid:rec")  # the posterior draw of the i-th image is keyed by i
        step = min(self.config.batch_size, ctx.chunk)
        for lo in range(0, idx.numel(), step):
            with conditioned(ctx.model, y[idx[lo : lo + step]]):  # a conditional model: the images' labels
                mu, logvar = ctx.model.encode(ctx.model_input(x[idx[lo : lo + step]]))
                eps = posterior_noise(key, range(lo, lo + mu.shape[0]), 0, 1, mu.shape[1])[0].to(mu)
                out = ctx.model.decode(mu + eps * torch.exp(0.5 * logvar))
            yield out
