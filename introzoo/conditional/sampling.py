"""Sampling a class-conditional model by class (``introzoo sample RUN --class K``; seed 001 §6.3, the
class-conditional CIFAR-10 samples; the official ``SoftIntroVAE.sample(z, y_cond)`` of
``soft_intro_vae/train_soft_intro_vae.py``): ``x = D(z, o(K))``, ``z ~ p(z)``."""

from __future__ import annotations

import torch

from ..errors import UsageError
from .model import ConditionalVAE


def class_labels(model, klass: int | None, n: int) -> torch.Tensor | None:
    """``n`` labels ``klass`` for a class-conditional model (``None`` without ``klass``); one
    :class:`UsageError` line for a class out of range or a model that is not class-conditional."""
    if klass is None:
        return None
    if not isinstance(model, ConditionalVAE):
        raise UsageError("--class needs a class-conditional run (trained with --conditional); this run is not")
    if not 0 <= klass < model.num_classes:
        raise UsageError(f"--class {klass} is out of range: this run has classes 0..{model.num_classes - 1}")
    return torch.full((n,), int(klass), dtype=torch.long)


@torch.no_grad()
def sample_class(model: ConditionalVAE, klass: int, n: int) -> torch.Tensor:
    """``n`` samples of class ``klass``: prior draws decoded with its one-hot."""
    return model.sample(n, labels=class_labels(model, klass, n))
