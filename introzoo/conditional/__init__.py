"""Class-conditional models (``--conditional``; seed 001 §6.3): the official ``conditional`` networks
(``soft_intro_vae/train_soft_intro_vae.py``), the labelled training stream and conditional sampling.
:mod:`~introzoo.conditional.model`: the networks and the VAE; :mod:`~introzoo.conditional.build`: a run's
model and stream; the conditional FID is the metric ``fid_cond`` (:mod:`introzoo.metrics.fid_cond`)."""

from .build import LabelledStream, build_model, labels_of
from .model import ConditionalVAE, conditioned

__all__ = ["ConditionalVAE", "LabelledStream", "build_model", "conditioned", "labels_of", "is_conditional"]


def is_conditional(run) -> bool:
    """Whether a resolved run trains a class-conditional model."""
    return bool(run.train.get("conditional", False))
