"""The dataset contract: shape, kind, metric range, batches, and the paper defaults that apply."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterator, Protocol, runtime_checkable

import torch


@dataclass(frozen=True)
class Epochs:
    """A default counted in epochs (``num_vae=Epochs(20)``); resolved to iterations once the batch size
    is known: ``ceil(n_train / batch_size)`` iterations per epoch."""

    n: int

    def iterations(self, steps_per_epoch: int) -> int:
        return self.n * steps_per_epoch


class Dataset:
    """A source of training batches that also declares how the papers use it.

    - ``shape``: shape of one sample (``(2,)`` for 2D data, ``(C, H, W)`` for images).
    - ``kind``: ``"2d"`` or ``"image"``; metrics declare which kinds they apply to.
    - ``metric_range``: half-width of the square the 2D metrics and plots use (SPEC §6), else ``None``.
    - ``objective_defaults``: objective name -> the paper's best hyperparameters on this dataset (SPEC §8).
    - ``train_defaults``: the paper's training protocol (iterations or epochs, batch size, lr schedule).
    - ``default_backbone`` / ``backbone_defaults``: the backbone the papers use on it, and its options.
    - ``n_train``: size of the training set for datasets that train in epochs (0 for generators).
    - ``regularizer_defaults``: regularizer name -> training settings that apply when it is chosen (the
      protocol of the paper that uses the regularizer on this dataset), over ``train_defaults``.

    A dataset with ground-truth factors of variation also has the :class:`Factors` capability.
    """

    name: str = ""
    shape: tuple[int, ...] = ()
    kind: str = ""
    metric_range: float | None = None
    objective_defaults: dict[str, dict[str, Any]] = {}
    train_defaults: dict[str, Any] = {}
    default_backbone: str = "mlp"
    backbone_defaults: dict[str, dict[str, Any]] = {}
    n_train: int = 0
    regularizer_defaults: dict[str, dict[str, Any]] = {}

    def steps_per_epoch(self, batch_size: int) -> int:
        """Iterations per epoch (a generator's "epoch" is one batch)."""
        return math.ceil(self.n_train / batch_size) if self.n_train else 1

    def defaults_for(self, objective: str) -> dict[str, Any]:
        return dict(self.objective_defaults.get(objective, {}))

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError

    def batches(self, batch_size: int, generator: torch.Generator | None = None) -> Iterator[torch.Tensor]:
        """An endless stream of training batches (2D generators draw a fresh batch each time)."""
        while True:
            yield self.sample(batch_size, generator)


@runtime_checkable
class Factors(Protocol):
    """Ground-truth factors of variation (what ``factor_score`` needs, Kim & Mnih 2018 §4): ``factor_sizes``
    is the number of values of each discrete factor; ``sample_with_factor(k, value, n, generator)`` draws
    ``n`` points whose factor ``k`` equals ``value`` (``0 <= value < factor_sizes[k]``), the other factors
    drawn from their distribution."""

    factor_sizes: tuple[int, ...]

    def sample_with_factor(self, k: int, value: int, n: int,
                           generator: torch.Generator | None = None) -> torch.Tensor:
        ...
