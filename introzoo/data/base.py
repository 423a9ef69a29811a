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
    """A source of training batches that also declares how the papers use it (docs/hooks.md lists every
    member with its caller).

    Built by its registered factory as ``factory(config)``, possibly more than once per run (to read
    its defaults, then to train), so construction is cheap: load data lazily, on the first ``sample``
    or ``batches``, and raise :class:`~introzoo.errors.UsageError` there or here when it is not
    available.

    - ``name``: the registered name (error lines and tables use it).
    - ``shape``: shape of one sample (``(2,)`` for 2D data, ``(C, H, W)`` for images).
    - ``kind``: ``"2d"`` or ``"image"``; metrics declare which kinds they apply to.
    - ``metric_range``: *half-width* ``r`` of the square ``[-r, r]^2`` the 2D metrics' histograms and
      grids and the 2D plots use (docs/conventions.md, "Data"), else ``None``.
    - ``objective_defaults``: objective name -> the paper's best options on this dataset (docs/conventions.md,
      "Where defaults come from");
      values may be :class:`Epochs`. An objective may inherit another's (``defaults_from``).
    - ``train_defaults``: the paper's training protocol, keys of ``introzoo.options.TRAIN_DEFAULTS``
      (``iterations``, ``epochs``, ``batch_size``, ``lr``, ``lr_milestones``, ``lr_gamma``, ``zdim``).
    - ``default_backbone`` / ``backbone_defaults``: the backbone the papers use on it, and its options.
    - ``prior_defaults``: prior name -> its options on this dataset (the seed 003 2D configurations).
    - ``n_train``: size of the training set for datasets that train in epochs (0 for generators).
    - ``regularizer_defaults``: regularizer name -> training settings that apply when it is chosen (the
      protocol of the paper that uses the regularizer on this dataset), over ``train_defaults``.

    Randomness: ``sample`` and ``batches`` draw only from the ``generator`` passed in, a CPU
    ``torch.Generator`` (the trainer's is seeded with the run seed), and return CPU float tensors; the
    trainer moves each batch to the device. A dataset with ground-truth factors of variation also has
    the :class:`Factors` capability, one of stored images :class:`Images`.
    """

    name: str = ""
    shape: tuple[int, ...] = ()
    kind: str = ""
    metric_range: float | None = None
    objective_defaults: dict[str, dict[str, Any]] = {}
    train_defaults: dict[str, Any] = {}
    default_backbone: str = "mlp"
    backbone_defaults: dict[str, dict[str, Any]] = {}
    prior_defaults: dict[str, dict[str, Any]] = {}
    n_train: int = 0
    regularizer_defaults: dict[str, dict[str, Any]] = {}

    def steps_per_epoch(self, batch_size: int) -> int:
        """Iterations per epoch (a generator's "epoch" is one batch)."""
        return math.ceil(self.n_train / batch_size) if self.n_train else 1

    def defaults_for(self, objective: str) -> dict[str, Any]:
        """A copy of ``objective_defaults[objective]`` (``{}`` if none); inherited defaults are merged by
        :func:`introzoo.objectives.defaults.objective_defaults`."""
        return dict(self.objective_defaults.get(objective, {}))

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:  # pragma: no cover
        """``n`` points ``(n, *shape)``, drawn from ``generator`` only."""
        raise NotImplementedError

    def ensure_available(self) -> None:
        """Make sure the data can be read, loading (or downloading) it now, and raise
        :class:`~introzoo.errors.UsageError` with the cause when it cannot: ``introzoo run`` calls it before
        it writes anything. By default nothing (a generator needs no files); a dataset that loads files
        overrides it (the image datasets load both splits)."""

    def batches(self, batch_size: int, generator: torch.Generator | None = None) -> Iterator[torch.Tensor]:
        """An endless stream of training batches; by default ``sample(batch_size, generator)`` each time
        (a generator's fresh draws). A finite training set overrides it with shuffled epochs."""
        while True:
            yield self.sample(batch_size, generator)


@runtime_checkable
class Factors(Protocol):
    """Ground-truth factors of variation (what ``factor_score`` needs, Kim & Mnih 2018 §4): ``factor_sizes``
    is the number of values of each discrete factor; ``sample_with_factor(k, value, n, generator)`` draws
    ``n`` points whose factor ``k`` equals ``value`` (``0 <= value < factor_sizes[k]``), the other factors
    drawn from their distribution."""

    factor_sizes: tuple[int, ...]

    def sample_with_factor(self, k: int, value: int, n: int, generator: torch.Generator | None = None) -> torch.Tensor: ...


@runtime_checkable
class Images(Protocol):
    """Stored images (what the image metrics, the probes and ``introzoo ood`` use): ``images(split)``
    gives ``(uint8 images (N, C, H, W), integer labels (N,))`` of ``split`` (``"train"``, ``"test"``);
    ``to_float(x)`` maps such images to the floats in [0, 1] the model takes; ``n_test`` is the test
    split's size."""

    n_test: int

    def images(self, split: str = "train") -> tuple[torch.Tensor, torch.Tensor]: ...

    def to_float(self, x: torch.Tensor) -> torch.Tensor: ...
