"""``shapes``: rendered shapes with a known class and content, the offline stand-in for Cars3D in image
translation (seed 001 §6.4, Appendix 9.3; docs/images.md, "Image translation").

Class = (shape, colour): 3 shapes (square, ellipse, triangle) x 6 colours (red, green, blue, yellow, magenta,
cyan), 18 classes, index ``shape * 6 + colour``. Content = (x position, y position, scale, rotation):
4 x 4 x 3 x 2 = 96 values, as many as Cars3D's 24 azimuths x 4 elevations, index
``((ix * 4 + iy) * 3 + iscale) * 2 + irot``. Every (class, content) pair is one image, so the ground truth of
a translation (class of one image, content of another) exists and :meth:`Shapes.render` draws it.

Split as Cars3D's (163 / 20 car models): the 3 held-out classes (square, cyan), (ellipse, yellow),
(triangle, blue) are the test split, so each shape and each colour is also seen in training; 15 x 96 =
1,440 training and 288 test images.

Rendering is deterministic (no seed): the shape's centre is ``(0.3 + 0.4 ix / 3, 0.3 + 0.4 iy / 3)`` of
the side, its size ``r = (0.12, 0.16, 0.20)[iscale]`` of the side (half-width of the square, first half-axis
of the ellipse (the second is 0.6 r), circumradius of the triangle), its rotation ``(0, 30)[irot]`` degrees; each pixel is the
colour times the covered fraction of a 4 x 4 grid of points inside it, on black.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, field_validator

from .images import ImageDataset, _objective_defaults

SHAPES = ("square", "ellipse", "triangle")
COLOURS = {
    "red": (1, 0, 0),
    "green": (0, 1, 0),
    "blue": (0, 0, 1),
    "yellow": (1, 1, 0),
    "magenta": (1, 0, 1),
    "cyan": (0, 1, 1),
}
POSITIONS, SCALES, ROTATIONS = 4, (0.12, 0.16, 0.20), (0.0, 30.0)
N_CONTENT = POSITIONS * POSITIONS * len(SCALES) * len(ROTATIONS)
N_CLASSES = len(SHAPES) * len(COLOURS)
#: held-out classes (shape, colour index): square/cyan, ellipse/yellow, triangle/blue
TEST_CLASSES = (0 * 6 + 5, 1 * 6 + 3, 2 * 6 + 2)
SUPERSAMPLE = 4
#: the ellipse's second half-axis over its first (so that its rotation shows)
ELLIPSE = 0.6
DOC = (
    "Rendered shapes, class = shape x colour (18), content = position x scale x rotation (96); "
    "ground-truth translations (content_transfer)."
)


class ShapesConfig(BaseModel):
    """Options of ``shapes``."""

    model_config = ConfigDict(extra="forbid")

    size: int = Field(16, gt=0, description="image side in pixels (a multiple of 16 for the lord backbone)")

    @field_validator("size")
    @classmethod
    def _at_least(cls, v: int) -> int:
        if v < 8:
            raise ValueError("size must be at least 8 pixels")
        return v


def content_factors(content: np.ndarray) -> tuple[np.ndarray, ...]:
    """(ix, iy, iscale, irot) of content indices."""
    content = np.asarray(content)
    irot = content % len(ROTATIONS)
    iscale = (content // len(ROTATIONS)) % len(SCALES)
    iy = (content // (len(ROTATIONS) * len(SCALES))) % POSITIONS
    ix = content // (len(ROTATIONS) * len(SCALES) * POSITIONS)
    return ix, iy, iscale, irot


def render(classes, contents, size: int) -> torch.Tensor:
    """uint8 images ``(N, 3, size, size)`` of (class, content) index pairs."""
    classes, contents = np.asarray(classes, dtype=np.int64), np.asarray(contents, dtype=np.int64)
    ix, iy, iscale, irot = content_factors(contents)
    shape, colour = classes // len(COLOURS), classes % len(COLOURS)
    n, s = len(classes), size * SUPERSAMPLE
    p = (np.arange(s) + 0.5) / s  # point coordinates in [0, 1]
    cx = (0.3 + 0.4 * ix / (POSITIONS - 1))[:, None, None]
    cy = (0.3 + 0.4 * iy / (POSITIONS - 1))[:, None, None]
    r = np.asarray(SCALES)[iscale][:, None, None]
    theta = np.radians(np.asarray(ROTATIONS)[irot])[:, None, None]
    inside = np.zeros((n, s, s), dtype=bool)
    for kind in range(len(SHAPES)):
        m = shape == kind
        if not m.any():
            continue
        dx, dy = p[None, None, :] - cx[m], p[None, :, None] - cy[m]  # (k, rows = y, columns = x)
        cos, sin = np.cos(theta[m]), np.sin(theta[m])
        u, v = cos * dx + sin * dy, -sin * dx + cos * dy  # the point in the shape's rotated frame
        if kind == 0:  # square
            inside[m] = (np.abs(u) <= r[m]) & (np.abs(v) <= r[m])
        elif kind == 1:  # ellipse, half-axes r (along u) and 0.6 r
            inside[m] = (u / r[m]) ** 2 + (v / (ELLIPSE * r[m])) ** 2 <= 1
        else:  # equilateral triangle, circumradius r, pointing up: inside its three edges at distance r/2
            tri = np.ones(u.shape, dtype=bool)
            for k in range(3):
                a = math.radians(90 + 120 * k)
                tri &= (u * math.cos(a) + v * math.sin(a)) <= r[m] / 2
            inside[m] = tri
    cover = inside.reshape(n, size, SUPERSAMPLE, size, SUPERSAMPLE).mean(axis=(2, 4))
    rgb = np.asarray(list(COLOURS.values()), dtype=np.float64)[colour]  # (n, 3)
    img = rgb[:, :, None, None] * cover[:, None]
    return torch.from_numpy(np.round(img * 255.0).astype(np.uint8))


class Shapes(ImageDataset):
    """The rendered shapes; images and labels (class indices) in memory, drawn on the first use."""

    name = "shapes"
    n_train = (N_CLASSES - len(TEST_CLASSES)) * N_CONTENT
    n_test = len(TEST_CLASSES) * N_CONTENT
    default_backbone = "lord"

    def __init__(self, config: ShapesConfig | None = None) -> None:
        self.size = (config or ShapesConfig()).size
        self.shape = (3, self.size, self.size)
        super().__init__(None)
        self.train_defaults: dict[str, Any] = {
            "epochs": 20,
            "batch_size": 64,
            "zdim": 24,
            "lr": 1e-3,
            "lr_milestones": [],
            "lr_gamma": 0.1,
        }
        self.backbone_defaults = {
            "lord": {"channels": [16, 32, 32, 32], "hidden": 64, "adain_channels": 32, "last_channels": 16}
        }
        self.objective_defaults = _objective_defaults(20, 256.0, 1.0)
        self._pairs: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    def class_content(self, split: str = "train") -> tuple[torch.Tensor, torch.Tensor]:
        """(class indices, content indices) of the images of ``split``, in the order of ``images(split)``."""
        if split not in ("train", "test"):
            raise ValueError(f"split must be 'train' or 'test', not {split!r}")
        if split not in self._pairs:
            held = np.isin(np.arange(N_CLASSES), TEST_CLASSES)
            classes = np.flatnonzero(held if split == "test" else ~held)
            c = np.repeat(classes, N_CONTENT)
            k = np.tile(np.arange(N_CONTENT), len(classes))
            self._pairs[split] = (torch.from_numpy(c), torch.from_numpy(k))
        return self._pairs[split]

    def render(self, classes: torch.Tensor, contents: torch.Tensor) -> torch.Tensor:
        """uint8 images of (class, content) pairs: the ground truth of a translation."""
        return render(classes.numpy(), contents.numpy(), self.size)

    def _load(self, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
        c, k = self.class_content("train" if train else "test")
        return self.render(c, k), c.clone()


def build(config: ShapesConfig) -> Shapes:
    return Shapes(config)
