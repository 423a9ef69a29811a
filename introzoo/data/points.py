"""``points``: your own 2D or tabular data from a ``.npy`` or ``.csv`` file (``-d points:FILE``).

- ``.npy``: a numeric array ``(N, D)`` (``np.load`` without pickles).
- ``.csv``: comma-separated numbers, one point a line; a first row that is not numeric is a header and
  is skipped; blank lines are skipped.

Every value must be a finite number and every row have the same count. ``test_fraction`` of the rows (a
permutation seeded by ``seed``) are held out (``points("test")``); training draws from the rest, in
shuffled epochs. ``standardize=true`` centres and scales each column by the training rows' mean and
standard deviation. With exactly two columns the kind is ``"2d"`` (the 2D metrics and plots apply; their
square ``[-r, r]^2`` covers the training points with a 10% margin), otherwise ``"tabular"``
(``mlp`` backbone, no built-in metric applies).
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any, ClassVar, Iterator

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field

from ..errors import UsageError, first_line
from .base import Dataset
from .toy2d import BEST, WARMUP

DOC = "Your own 2D or tabular points from a .npy or .csv file (points:FILE; test_fraction, standardize)."
#: training protocol of ``points``: the 2D benchmarks' (seed 002 Table 5) without the learning-rate steps
TRAIN_DEFAULTS: dict[str, Any] = {
    "iterations": 30_000,
    "batch_size": 512,
    "lr": 2e-4,
    "lr_milestones": [],
    "lr_gamma": 0.1,
    "zdim": 2,
}


class PointsConfig(BaseModel):
    """Options of ``points``."""

    model_config = ConfigDict(extra="forbid")
    primary: ClassVar[str] = "path"

    path: str = Field(..., description="a .npy array (N, D) or a .csv file of numbers (a header row allowed)")
    test_fraction: float = Field(0.1, ge=0, lt=1, description="share of the rows held out as the test split")
    seed: int = Field(0, ge=0, description="seed of the permutation that splits off the test rows")
    standardize: bool = Field(False, description="centre and scale each column by the training rows' mean and std")


def _csv(path: Path) -> np.ndarray:
    rows: list[list[float]] = []
    with open(path, newline="") as f:
        for i, row in enumerate(csv.reader(f), start=1):
            cells = [c.strip() for c in row]
            if not any(cells):
                continue
            try:
                values = [float(c) for c in cells]
            except ValueError:
                if not rows and i == 1:
                    continue  # a header
                bad = next(c for c in cells if not _is_number(c))
                raise UsageError(f"points file {path}, line {i}: '{bad}' is not a number") from None
            if rows and len(values) != len(rows[0]):
                raise UsageError(
                    f"points file {path}, line {i}: {len(values)} columns, the lines before have {len(rows[0])}"
                )
            rows.append(values)
    return np.asarray(rows, dtype=np.float64).reshape(len(rows), -1)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def read_points(path: Path) -> np.ndarray:
    """The ``(N, D)`` float64 array of a ``.npy`` or ``.csv`` file; :class:`UsageError` when it is not one."""
    if not path.is_file():
        raise UsageError(f"points file {path} does not exist" if not path.exists() else f"points file {path} is not a file")
    suffix = path.suffix.lower()
    try:
        if suffix == ".npy":
            a = np.load(path, allow_pickle=False)
            if a.dtype.kind not in "biuf":
                raise UsageError(f"points file {path}: an array of {a.dtype}, not of numbers")
            a = a.astype(np.float64)
        elif suffix == ".csv":
            a = _csv(path)
        else:
            raise UsageError(f"points file {path}: expected a .npy or .csv file")
    except UsageError:
        raise
    except Exception as exc:  # numpy's format errors, OSError, UnicodeDecodeError
        raise UsageError(f"points file {path}: cannot read it ({first_line(exc)})") from None
    if a.ndim != 2 or a.shape[0] == 0 or a.shape[1] == 0:
        raise UsageError(f"points file {path}: expected rows of numbers (N, D), got an array of shape {a.shape}")
    if not np.isfinite(a).all():
        row = int(np.argwhere(~np.isfinite(a))[0][0])
        raise UsageError(f"points file {path}: row {row} has a value that is not a finite number")
    return a


class Points(Dataset):
    """Points from a file; see the module's docstring."""

    name = "points"
    default_backbone = "mlp"
    train_defaults = TRAIN_DEFAULTS

    def __init__(self, config: PointsConfig) -> None:
        self.config = config
        path = Path(config.path).expanduser()
        a = torch.from_numpy(read_points(path)).float()
        n = a.shape[0]
        n_test = min(n - 1, round(n * config.test_fraction)) if n > 1 else 0
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(config.seed))
        train, test = a[perm[n_test:]], a[perm[:n_test]]
        if config.standardize:
            mean, std = train.mean(0), train.std(0, unbiased=False)
            std = torch.where(std > 0, std, torch.ones_like(std))
            train, test = (train - mean) / std, (test - mean) / std
        self._split = {"train": train.contiguous(), "test": test.contiguous()}
        self.n_train, self.n_test = train.shape[0], test.shape[0]
        self.shape = (a.shape[1],)
        if a.shape[1] == 2:
            self.kind = "2d"
            r = float(train.abs().max()) * 1.1
            self.metric_range = r if r > 0 else 1.0
        else:
            self.kind = "tabular"
            self.metric_range = None
        soft = dict(zip(("beta_rec", "beta_kl", "beta_neg"), BEST["8gaussians"]["soft"]), num_vae=WARMUP)
        self.objective_defaults = {
            "vae": dict(zip(("beta_rec", "beta_kl"), BEST["8gaussians"]["vae"])),
            "intro": dict(zip(("beta_rec", "beta_kl", "beta_neg", "m"), BEST["8gaussians"]["intro"]), num_vae=WARMUP),
            "soft": soft,
            "soft-prior": dict(soft),
        }

    def points(self, split: str = "train") -> torch.Tensor:
        """The float32 rows ``(N, D)`` of ``"train"`` or ``"test"`` (standardised when asked)."""
        if split not in self._split:
            raise ValueError(f"split must be 'train' or 'test', not {split!r}")
        return self._split[split]

    def steps_per_epoch(self, batch_size: int) -> int:
        return math.ceil(self.n_train / batch_size)

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` training rows drawn without replacement (with replacement if ``n`` exceeds them)."""
        x = self._split["train"]
        if n <= x.shape[0]:
            idx = torch.randperm(x.shape[0], generator=generator)[:n]
        else:
            idx = torch.randint(0, x.shape[0], (n,), generator=generator)
        return x[idx].clone()

    def batches(self, batch_size: int, generator: torch.Generator | None = None) -> Iterator[torch.Tensor]:
        """Shuffled epochs over the training rows (the last batch of an epoch may be smaller)."""
        x = self._split["train"]
        while True:
            perm = torch.randperm(x.shape[0], generator=generator)
            for i in range(0, x.shape[0], batch_size):
                yield x[perm[i : i + batch_size]]


def build(config: PointsConfig) -> Points:
    return Points(config)
