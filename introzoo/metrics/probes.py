"""Latent probes (seed 003 §5.2): how well a simple classifier reads the class from the latent means.

The encoder's means ``mu(x)`` of ``n_train`` training images (the first ones of the split) train the
probe; its accuracy on the means of the test split is the metric. scikit-learn does the fitting. The
encoder runs ``chunk`` images at a time and the test split is scored ``chunk`` points at a time (the
k-NN distance matrix is ``chunk x n_train``), the same predictions as one call.

- ``svm``: ``LinearSVC`` on standardised means, ``max_iter`` iterations (the paper reports 2K and 10K).
- ``knn5`` / ``knn100``: k-nearest-neighbour classifier (Euclidean, uniform weights), k = 5 / 100.
"""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from .base import EvalContext, Metric, encode_split


class ProbeConfig(BaseModel):
    """Options of the latent probes."""

    model_config = ConfigDict(extra="forbid")

    n_train: int = Field(10_000, gt=0, description="training images whose latent means fit the probe")
    n_test: int | None = Field(None, gt=0, description="test images scored (default: the whole test split)")


class SVMConfig(ProbeConfig):
    """Options of ``svm``."""

    max_iter: int = Field(10_000, gt=0, description="LinearSVC iterations (the paper: 2,000 and 10,000)")


class _Probe(Metric):
    kinds = frozenset({"image"})
    name = ""

    def __init__(self, config: ProbeConfig) -> None:
        self.config = config

    def classifier(self):  # pragma: no cover - abstract
        raise NotImplementedError

    def cannot_fit(self, n_train: int, n_classes: int) -> str | None:
        """Why the probe cannot be fitted on ``n_train`` latent means of ``n_classes`` classes, or None."""
        if n_classes < 2:
            return f"the training split has {n_classes} class(es): a probe needs two or more"
        return None

    def compute(self, ctx: EvalContext) -> dict[str, float]:
        if getattr(ctx.model, "num_classes", None):  # a conditional encoder is given the label it would predict
            ctx.info[self.name] = {"skipped": "a class-conditional model's encoder takes the label as input"}
            return {}
        mu_tr, _, y_tr = encode_split(ctx, "train", self.config.n_train)
        why = self.cannot_fit(mu_tr.shape[0], len(set(y_tr.tolist())))
        if why:  # e.g. knn100 on a folder of 40 images: no value, and the reason, not a failed evaluation
            ctx.info[self.name] = {"skipped": why}
            return {}
        mu_te, _, y_te = encode_split(ctx, "test", self.config.n_test)
        clf = self.classifier()
        with ctx.phase(f"{self.name}: fitting on {mu_tr.shape[0]} latent means", 1) as advance:
            clf.fit(mu_tr.double().numpy(), y_tr.numpy())
            advance(1)
        correct = 0
        with ctx.phase(f"{self.name}: scoring the test split", mu_te.shape[0]) as advance:
            for lo in range(0, mu_te.shape[0], ctx.chunk):  # bounded neighbour / decision matrices
                pred = clf.predict(mu_te[lo : lo + ctx.chunk].double().numpy())
                correct += int(np.sum(pred == y_te[lo : lo + ctx.chunk].numpy()))
                advance(len(pred))
        acc = correct / max(1, mu_te.shape[0])
        ctx.info[self.name] = {"n_train": int(mu_tr.shape[0]), "n_test": int(mu_te.shape[0])}
        return {self.name: acc}


class SVM(_Probe):
    name = "svm"
    directions = {"svm": "max"}

    def classifier(self):
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler
        from sklearn.svm import LinearSVC

        return make_pipeline(StandardScaler(), LinearSVC(max_iter=self.config.max_iter, random_state=0))


def knn(k: int):
    class KNN(_Probe):
        name = f"knn{k}"
        directions = {f"knn{k}": "max"}

        def cannot_fit(self, n_train: int, n_classes: int) -> str | None:
            if n_train < k:
                return f"{k}-NN needs at least {k} training images; the training split has {n_train}"
            return super().cannot_fit(n_train, n_classes)

        def classifier(self):
            from sklearn.neighbors import KNeighborsClassifier

            return KNeighborsClassifier(n_neighbors=k)

    return KNN
