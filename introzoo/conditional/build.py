"""Building a class-conditional run (``--conditional``; seed 001 §6.3; docs/images.md, "Class-conditional
models"): the labels of a dataset, the conditional VAE, and the training stream that hands each batch's
labels to the model.

The official code defines the conditional networks (``soft_intro_vae/train_soft_intro_vae.py``,
``SoftIntroVAE(conditional=True, cond_dim=10)``, its ``forward(x, o_cond)`` encoding and decoding with the
same one-hot) but its trainer never builds one; here the labels of a training batch are those of its
images, and the fake branch's prior draws are decoded with the batch's labels
(:mod:`introzoo.conditional.model`).

- The number of classes K is ``1 + the largest label`` of the training and test splits; a dataset without
  stored labelled images (the :class:`~introzoo.data.base.Images` capability), or with one class only (a
  flat ``folder``), is refused with one line.
- :class:`LabelledStream` is the dataset as the trainer sees it: everything delegated, except ``sample`` and
  ``batches``, which draw exactly the images the dataset draws (the same permutations from the same
  generator, so the data stream and resume points are the unconditional run's) and, before handing a batch
  over, set its labels on the model (``model.condition``); closing the stream clears them.
"""

from __future__ import annotations

from typing import Any, Iterator

import torch

from ..data.base import Images
from ..errors import UsageError
from .model import ConditionalDecoder, ConditionalEncoder, ConditionalVAE

#: the datasets with labels, for the error line
LABELLED = "mnist, fashion-mnist, cifar10, svhn, digits, folder:DIR with class subfolders"


def labels_of(dataset: Any) -> tuple[torch.Tensor, int]:
    """``(training labels, K)`` of a labelled image dataset; :class:`UsageError` for any other."""
    name = getattr(dataset, "name", "?")
    if not isinstance(dataset, Images):
        raise UsageError(f"--conditional needs a dataset with class labels ({LABELLED}); '{name}' has none")
    y_train = dataset.images("train")[1].long()
    y_test = dataset.images("test")[1].long()
    k = int(max(int(y_train.max()), int(y_test.max()) if y_test.numel() else 0)) + 1
    if k < 2 or int(y_train.min()) < 0:
        raise UsageError(
            f"--conditional needs at least two classes, and dataset '{name}' has "
            f"{'one' if k < 2 else 'negative labels'} (a flat folder has one: put the images "
            f"in class subfolders)"
        )
    return y_train, k


def label_distribution(y: torch.Tensor, k: int) -> torch.Tensor:
    """Class frequencies of labels ``y`` over ``k`` classes (float64, summing to 1)."""
    return torch.bincount(y.long(), minlength=k).double() / y.numel()


def build_model(backbone: Any, dataset: Any, prior: Any, zdim: int) -> ConditionalVAE:
    """The conditional VAE of a run: ``backbone`` the run's :class:`~introzoo.config.Choice`."""
    y, k = labels_of(dataset)
    check_same_draws(dataset)

    def build(shape, latent):
        return backbone.component.build(backbone.config, data_shape=shape, zdim=latent)

    encoder = ConditionalEncoder.wrap(build, dataset.shape, zdim, k)
    decoder = ConditionalDecoder(build(tuple(dataset.shape), zdim + k)[1], k)
    return ConditionalVAE(encoder, decoder, prior, dataset.shape, zdim, label_distribution(y, k))


class LabelledStream:
    """``dataset`` whose training draws set their labels on ``model`` (see the module's docstring)."""

    def __init__(self, dataset: Any, model: ConditionalVAE) -> None:
        self.dataset, self.model = dataset, model

    def __getattr__(self, name: str) -> Any:
        return getattr(self.dataset, name)

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """The dataset's ``sample`` (same draws), the drawn images' labels set on the model."""
        x, y = self.dataset.images("train")
        if n <= x.shape[0]:
            idx = torch.randperm(x.shape[0], generator=generator)[:n]
        else:
            idx = torch.randint(0, x.shape[0], (n,), generator=generator)
        self.model.condition(y[idx])
        return self.dataset.to_float(x[idx])

    def batches(self, batch_size: int, generator: torch.Generator | None = None) -> Iterator[torch.Tensor]:
        """The dataset's epochs (same permutations); each batch's labels are the model's while it is out."""
        x, y = self.dataset.images("train")
        try:
            while True:
                perm = torch.randperm(x.shape[0], generator=generator)
                for i in range(0, x.shape[0], batch_size):
                    idx = perm[i : i + batch_size]
                    self.model.condition(y[idx])
                    yield self.dataset.to_float(x[idx])
        finally:
            self.model.condition(None)


def check_same_draws(dataset: Any) -> None:
    """:class:`LabelledStream` draws as :class:`~introzoo.data.images.ImageDataset` does; a labelled dataset
    that draws otherwise is refused rather than trained on another stream."""
    from ..data.images import ImageDataset

    cls = type(dataset)
    if (
        not isinstance(dataset, ImageDataset)
        or cls.batches is not ImageDataset.batches
        or cls.sample is not ImageDataset.sample
    ):
        raise UsageError(
            f"--conditional trains on introzoo's image datasets ({LABELLED}); "
            f"dataset '{getattr(dataset, 'name', '?')}' draws its own batches"
        )
