"""``folder``: your own images, from a folder (docs/images.md, "Your own images").

Layouts, as torchvision's ``ImageFolder`` reads them: class subfolders (``DIR/<class>/**/*.png``; labels are
the sorted class names' indices), or a flat folder of images (labels all 0); either one under ``DIR/train``
and ``DIR/test`` gives the split, else ``test_fraction`` of the images (a permutation seeded by ``seed``)
are the test split. Files with torchvision's image extensions are read with PIL.

Images are decoded once, on first use, as uint8 ``(N, C, H, W)``: converted to grey (``L``) or ``RGB``, and
with ``size`` the shorter side resized to ``size`` (bilinear) and the centre ``size x size`` cropped (the
``Resize(size)`` + ``CenterCrop(size)`` of torchvision). The folder is listed and the image headers read
when the dataset is built (that fixes the shape and the split sizes); a missing path, an empty folder or
an unreadable file is a :class:`~introzoo.errors.UsageError` naming it.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, field_validator

from ..errors import UsageError, first_line
from .images import ImageDataset, decode, small_image_defaults

#: torchvision's ``IMG_EXTENSIONS``
EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
#: PIL modes without colour
GREY_MODES = frozenset({"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"})
DOC = "Your own images: class subfolders or a flat folder (folder:PATH; size, channels, test_fraction)."


class FolderConfig(BaseModel):
    """Options of ``folder``."""

    model_config = ConfigDict(extra="forbid")
    primary: ClassVar[str] = "path"

    path: str = Field(
        ...,
        description="the folder: class subfolders, a flat folder of images, or train/ and test/ subfolders holding either",
    )
    size: int | None = Field(
        None,
        gt=0,
        description="resize the shorter side to SIZE and crop the centre SIZE x SIZE "
        "(default: the images' own size, when they all have it)",
    )
    channels: int | None = Field(None, description="1 (grey) or 3 (RGB); default: 1 when every image is grey, else 3")
    test_fraction: float = Field(
        0.1, gt=0, lt=1, description="share of the images in the test split (without train/ and test/ subfolders)"
    )
    seed: int = Field(0, ge=0, description="seed of the permutation that splits off the test images")
    subset: int | None = Field(None, gt=0, description="use only the first N training images (quick runs)")

    @field_validator("channels")
    @classmethod
    def _channels(cls, v: int | None) -> int | None:
        if v is not None and v not in (1, 3):
            raise ValueError("channels must be 1 or 3")
        return v


def is_image(p: Path) -> bool:
    return p.is_file() and p.suffix.lower() in EXTENSIONS and not p.name.startswith(".")


def _subdirs(d: Path) -> list[Path]:
    return sorted(p for p in d.iterdir() if p.is_dir() and not p.name.startswith("."))


def scan(root: Path) -> list[tuple[Path, str]]:
    """``(file, class name)`` of every image under ``root``: class subfolders (searched recursively), or
    the images directly in ``root`` (class ``""``)."""
    flat = sorted(p for p in root.iterdir() if is_image(p))
    classes = [(d, sorted(p for p in d.rglob("*") if is_image(p))) for d in _subdirs(root)]
    classes = [(d, files) for d, files in classes if files]
    if flat and classes:
        raise UsageError(
            f"image folder {root} has both images and class subfolders with images "
            f"({', '.join(d.name for d, _ in classes[:3])}); keep one layout"
        )
    if flat:
        return [(p, "") for p in flat]
    return [(p, d.name) for d, files in classes for p in files]


def _header(path: Path) -> tuple[str, tuple[int, int]]:
    from PIL import Image

    try:
        with Image.open(path) as img:
            return img.mode, img.size
    except Exception as exc:  # PIL raises UnidentifiedImageError, OSError, ValueError, ...
        raise UsageError(f"image folder: cannot read {path} ({first_line(exc)})") from None


class Folder(ImageDataset):
    """Images from a folder; see the module's docstring."""

    name = "folder"

    def __init__(self, config: FolderConfig) -> None:
        self.folder = config
        root = Path(config.path).expanduser()
        if not root.exists():
            raise UsageError(f"image folder {root} does not exist")
        if not root.is_dir():
            raise UsageError(f"image folder {root} is not a folder")
        self.root = root
        #: what tells this folder's data from another's (the cached FID classifier is keyed by it)
        self.identity = f"{root.resolve()} {config.model_dump_json(exclude={'path'})}"
        split_dirs = (root / "train", root / "test")
        if all(d.is_dir() for d in split_dirs):
            parts = [scan(d) for d in split_dirs]
            for d, files in zip(split_dirs, parts):
                if not files:
                    raise UsageError(f"image folder {d} holds no images ({', '.join(EXTENSIONS)})")
        else:
            files = scan(root)
            if len(files) < 2:
                raise UsageError(
                    f"image folder {root} holds {'no images' if not files else 'one image'} "
                    f"({', '.join(EXTENSIONS)}); it needs at least 2 (train and test)"
                )
            perm = torch.randperm(len(files), generator=torch.Generator().manual_seed(config.seed)).tolist()
            n_test = min(len(files) - 1, max(1, round(len(files) * config.test_fraction)))
            parts = [[files[i] for i in perm[n_test:]], [files[i] for i in perm[:n_test]]]
        classes = sorted({c for part in parts for _, c in part})
        index = {c: i for i, c in enumerate(classes)}
        self.classes = classes if classes != [""] else []
        self._files = [[(p, index[c]) for p, c in part] for part in parts]
        headers = [_header(p) for part in self._files for p, _ in part]
        if config.channels is not None:
            channels = config.channels
        else:
            channels = 1 if all(mode in GREY_MODES for mode, _ in headers) else 3
        if config.size is not None:
            h = w = config.size
        else:
            sizes = sorted({s for _, s in headers})
            if len(sizes) > 1:
                shown = ", ".join(f"{a}x{b}" for a, b in sizes[:4]) + (", ..." if len(sizes) > 4 else "")
                raise UsageError(
                    f"images in {root} have different sizes ({shown}); give folder:{config.path},size=N "
                    "to resize and crop them to N x N"
                )
            w, h = sizes[0]
        self.shape = (channels, h, w)
        self.n_train, self.n_test = len(self._files[0]), len(self._files[1])
        super().__init__(None)
        if config.subset is not None:
            self.n_train = min(self.n_train, config.subset)
        d = small_image_defaults(self.shape)
        self.default_backbone = d["backbone"]
        self.backbone_defaults = d["backbone_defaults"]
        self.train_defaults = d["train"]
        self.objective_defaults = d["objectives"]

    def _load(self, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
        files = self._files[0 if train else 1]
        if train:  # only what is used (subset)
            files = files[: self.n_train]
        c, h, w = self.shape
        size = self.folder.size
        x = np.empty((len(files), c, h, w), dtype=np.uint8)
        for i, (p, _) in enumerate(files):
            a = decode(p, c, size)
            if a.shape != x.shape[1:]:
                raise UsageError(
                    f"image folder: {p} is {a.shape[2]}x{a.shape[1]}, not {w}x{h} like the others; "
                    "give size=N to resize and crop them all"
                )
            x[i] = a
        y = torch.tensor([label for _, label in files], dtype=torch.int64)
        return torch.from_numpy(x), y

    def missing(self, root: Path, reason: str) -> UsageError:  # pragma: no cover - never downloads
        return UsageError(f"image folder {self.root}: {reason}")


def build(config: FolderConfig) -> Folder:
    return Folder(config)
