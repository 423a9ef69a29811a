"""Content transfer between images (seed 001 §6.4 and Appendix 9.4.3; docs/images.md, "Image translation").

Given images ``a`` (class source) and ``b`` (content source), both are encoded and the decoder gets the
class code of ``a`` and the content code of ``b``: ``T(a, b) = D([mu_class(a), mu_content(b)])``, the
posterior means (no sampling), as the paper describes: "we encode both of them, and use the class latent
code of the first one and the content latent code from the second one as input to the decoder".

A model translates when its decoder declares ``class_dim`` (the first ``class_dim`` latent entries are the
class code): the ``lord`` backbone does (:class:`Translatable`).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch

from .errors import UsageError


@runtime_checkable
class ClassContent(Protocol):
    """A dataset that knows each image's class and content and draws any pair of them (``shapes``,
    ``cars3d``): ``class_content(split)`` gives the class and content indices of ``images(split)``;
    ``render(classes, contents)`` the uint8 images of those pairs, the ground truth of a translation."""

    def class_content(self, split: str = "train") -> tuple[torch.Tensor, torch.Tensor]: ...

    def render(self, classes: torch.Tensor, contents: torch.Tensor) -> torch.Tensor: ...


@runtime_checkable
class Translatable(Protocol):
    """A decoder whose latent is ``[class code (class_dim), content code]``."""

    class_dim: int


def class_dim_of(model, backbone: str = "") -> int:
    """The class code's size of ``model``, or a :class:`UsageError` naming the backbone when its decoder has no
    class/content split."""
    decoder = getattr(model, "decoder", None)
    if not isinstance(decoder, Translatable):
        what = f"backbone '{backbone}'" if backbone else "this model's backbone"
        raise UsageError(
            f"{what} has no class and content codes to swap; translation needs a backbone that "
            f"has them: lord (e.g. introzoo run -o soft -b lord -d shapes)"
        )
    return int(decoder.class_dim)


@torch.no_grad()
def translate(model, x_class: torch.Tensor, x_content: torch.Tensor) -> torch.Tensor:
    """``D([class code of x_class[i], content code of x_content[i]])`` for each pair ``i`` (posterior means)."""
    k = class_dim_of(model)
    mu_a, _ = model.encode(x_class)
    mu_b, _ = model.encode(x_content)
    return model.decode(torch.cat([mu_a[:, :k], mu_b[:, k:]], dim=1))


@torch.no_grad()
def transfer_grid(model, x_class: torch.Tensor, x_content: torch.Tensor) -> torch.Tensor:
    """All pairs: ``(n_class, n_content, *image)``, entry ``[i, j]`` is ``T(x_class[i], x_content[j])``."""
    n, m = x_class.shape[0], x_content.shape[0]
    a = x_class.repeat_interleave(m, dim=0)
    b = x_content.repeat(n, *([1] * (x_content.dim() - 1)))
    return translate(model, a, b).view(n, m, *x_class.shape[1:])
