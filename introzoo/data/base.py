"""The dataset contract: shape, kind, metric range, batches, and the paper defaults that apply."""

from __future__ import annotations

from typing import Any, Iterator

import torch


class Dataset:
    """A source of training batches that also declares how the papers use it.

    - ``shape``: shape of one sample (``(2,)`` for 2D data, ``(C, H, W)`` for images).
    - ``kind``: ``"2d"`` or ``"image"``; metrics declare which kinds they apply to.
    - ``metric_range``: half-width of the square the 2D metrics and plots use (SPEC §6), else ``None``.
    - ``objective_defaults``: objective name -> the paper's best hyperparameters on this dataset (SPEC §8).
    - ``train_defaults``: the paper's training protocol (iterations, batch size, lr schedule).
    """

    name: str = ""
    shape: tuple[int, ...] = ()
    kind: str = ""
    metric_range: float | None = None
    objective_defaults: dict[str, dict[str, Any]] = {}
    train_defaults: dict[str, Any] = {}

    def defaults_for(self, objective: str) -> dict[str, Any]:
        return dict(self.objective_defaults.get(objective, {}))

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError

    def batches(self, batch_size: int, generator: torch.Generator | None = None) -> Iterator[torch.Tensor]:
        """An endless stream of training batches (2D generators draw a fresh batch each time)."""
        while True:
            yield self.sample(batch_size, generator)
