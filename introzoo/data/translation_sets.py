"""The image-translation datasets of Soft-IntroVAE §6.4 and Appendix 9.3, read from files you put under the
data root (nothing is downloaded; docs/images.md, "Image translation"), resized to 64x64 as LORD does.

- ``cars3d``: the Cars3D renderings of Reed et al. (2015), 183 car CAD models x 24 azimuths x 4 elevations.
  Layout: ``<root>/cars3d/*.mat`` (the ``data/cars/car_*_mesh.mat`` files of
  http://www.scottreed.info/files/nips2015-analogy-data.tar.gz; each holds ``im``, 128 x 128 x 3 x 24 x 4),
  or LORD's preprocessed ``<root>/cars3d/cars3d.npz`` (``imgs`` (N, 64, 64, 3), ``classes``, ``contents``).
  Class = car model (file order), content = ``azimuth * 4 + elevation``; the first 163 models train, the
  other 20 are the test split (Appendix 9.3). Every (class, content) image exists, so it has the
  ``ClassContent`` capability and ``content_transfer`` applies.
- ``kth``: KTH human actions (Schuldt et al. 2004), 25 people, grey frames. Layout: the videos
  ``<root>/kth/<action>/personNN_<action>_dK_uncomp.avi`` of https://www.csc.kth.se/cvap/actions/ (reading
  ``.avi`` needs PyAV, ``pip install av``), or their frames extracted to a folder per video,
  ``<root>/kth/<action>/personNN_<action>_dK_uncomp/*.png`` (e.g. ``ffmpeg -i V.avi V/%04d.png``).
  Class = person (label NN - 1); all people train and 10% of the frames, picked by ``seed``, are the test
  split (Appendix 9.3). No content labels, so no ground truth for ``content_transfer``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field

from ..errors import UsageError, first_line
from .images import ImageDataset, _objective_defaults, data_root, decode, resize_crop

CARS3D_URL = "http://www.scottreed.info/files/nips2015-analogy-data.tar.gz"
KTH_URL = "https://www.csc.kth.se/cvap/actions/"
AZIMUTHS, ELEVATIONS, CARS_TRAIN = 24, 4, 163
SIZE = 64
#: Appendix 9.3: 64x64, zdim 256 + 128, batch 64, 400 epochs; the learning rate is lost from the text, 2e-4
#: is Soft-IntroVAE's image setting
PROTOCOL: dict[str, Any] = {"epochs": 400, "batch_size": 64, "zdim": 384, "lr": 2e-4, "lr_milestones": [], "lr_gamma": 0.1}
DOCS = {
    "cars3d": "Cars3D car renderings (183 models x 96 views, 64x64; your files: .mat or LORD's npz); translation.",
    "kth": "KTH human actions, grey 64x64 frames, class = person (your files: videos or frames); translation.",
}


class TranslationSetConfig(BaseModel):
    """Options of ``cars3d`` and ``kth``."""

    model_config = ConfigDict(extra="forbid")

    subset: int | None = Field(None, gt=0, description="use only the first N training images (quick runs)")
    seed: int = Field(0, ge=0, description="kth: the permutation that picks the 10% test frames")


class _FileSet(ImageDataset):
    default_backbone = "lord"
    folder = ""
    url = ""
    layout = ""

    def __init__(self, config: TranslationSetConfig | None = None) -> None:
        self.options = config or TranslationSetConfig()
        super().__init__(None)
        self.n_train = self.n_train if self.options.subset is None else min(self.n_train, self.options.subset)
        self.train_defaults = dict(PROTOCOL)
        self.objective_defaults = _objective_defaults(20, 256.0, 1.0)
        self._all: dict[str, tuple[torch.Tensor, torch.Tensor]] | None = None

    def root(self) -> Path:
        return data_root() / self.folder

    def absent(self, what: str) -> UsageError:
        return UsageError(
            f"dataset '{self.name}' is not available: {what} under {self.root()}; put {self.layout} there "
            f"(from {self.url}; introzoo does not download it), or pass --data-root DIR"
        )

    def _read(self) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:  # pragma: no cover - abstract
        raise NotImplementedError

    def _load(self, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
        if self._all is None:
            self._all = self._read()
        x, y = self._all["train" if train else "test"]
        return x, y


class Cars3D(_FileSet):
    name, shape, folder, url = "cars3d", (3, SIZE, SIZE), "cars3d", CARS3D_URL
    n_train, n_test = CARS_TRAIN * AZIMUTHS * ELEVATIONS, 20 * AZIMUTHS * ELEVATIONS
    layout = "the car_*_mesh.mat files of its data/cars/ folder (or LORD's cars3d.npz)"

    def _table(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(images (N, 3, 64, 64) uint8, classes, contents) of every model and view."""
        root = self.root()
        npz = root / "cars3d.npz"
        if npz.is_file():
            try:
                with np.load(npz) as d:
                    imgs, classes, contents = d["imgs"], d["classes"], d["contents"]
            except Exception as exc:
                raise UsageError(f"cannot read {npz} ({first_line(exc)})") from None
            return np.ascontiguousarray(imgs.transpose(0, 3, 1, 2)), classes.astype(np.int64), contents.astype(np.int64)
        files = sorted(root.glob("*.mat")) if root.is_dir() else []
        if not files:
            raise self.absent("no .mat files and no cars3d.npz")
        from PIL import Image
        from scipy.io import loadmat

        out = np.empty((len(files) * AZIMUTHS * ELEVATIONS, 3, SIZE, SIZE), dtype=np.uint8)
        for i, f in enumerate(files):
            try:
                im = loadmat(str(f))["im"]  # (H, W, 3, azimuth, elevation)
            except Exception as exc:
                raise UsageError(f"cannot read {f} ({first_line(exc)})") from None
            if im.ndim != 5 or im.shape[2:] != (3, AZIMUTHS, ELEVATIONS):
                raise UsageError(f"{f}: 'im' has shape {im.shape}, expected (H, W, 3, {AZIMUTHS}, {ELEVATIONS})")
            for a in range(AZIMUTHS):
                for e in range(ELEVATIONS):
                    img = Image.fromarray(np.asarray(im[:, :, :, a, e], dtype=np.uint8))
                    out[(i * AZIMUTHS + a) * ELEVATIONS + e] = np.asarray(resize_crop(img, SIZE)).transpose(2, 0, 1)
        classes = np.repeat(np.arange(len(files)), AZIMUTHS * ELEVATIONS)
        contents = np.tile(np.arange(AZIMUTHS * ELEVATIONS), len(files))
        return out, classes, contents

    def _read(self) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        imgs, classes, contents = self._table()
        n_models = int(classes.max()) + 1
        if n_models <= 1:
            raise self.absent(f"{n_models} car model found")
        cut = min(CARS_TRAIN, n_models - 1)  # a partial copy still keeps a test model
        self._lookup = {(int(c), int(k)): i for i, (c, k) in enumerate(zip(classes, contents))}
        self._images = torch.from_numpy(imgs)
        split = {}
        for name, mask in (("train", classes < cut), ("test", classes >= cut)):
            idx = np.flatnonzero(mask)
            if name == "train":
                idx = idx[: self.n_train]
            split[name] = (torch.from_numpy(classes[idx]), torch.from_numpy(contents[idx]))
        self._pairs = split
        return {
            name: (
                self._images[torch.from_numpy(np.flatnonzero((classes < cut) if name == "train" else (classes >= cut)))][
                    : len(split[name][0])
                ],
                split[name][0].clone(),
            )
            for name in split
        }

    def class_content(self, split: str = "train") -> tuple[torch.Tensor, torch.Tensor]:
        """(car model, ``azimuth * 4 + elevation``) of each image of ``split``."""
        self.images(split)
        return self._pairs[split]

    def render(self, classes: torch.Tensor, contents: torch.Tensor) -> torch.Tensor:
        """The stored image of each (car model, view): the ground truth of a translation."""
        self.images("train")
        try:
            idx = [self._lookup[(int(c), int(k))] for c, k in zip(classes, contents)]
        except KeyError as exc:
            raise UsageError(f"cars3d has no image of (model, view) {exc.args[0]}") from None
        return self._images[idx]


VIDEO = re.compile(r"person(\d+)_([a-z]+)_d(\d+)", re.IGNORECASE)
FRAMES = (".png", ".jpg", ".jpeg", ".bmp")


class KTH(_FileSet):
    name, shape, folder, url = "kth", (1, SIZE, SIZE), "kth", KTH_URL
    layout = "the action folders of its videos (<action>/personNN_<action>_dK_uncomp.avi) or their frames"

    def steps_per_epoch(self, batch_size: int) -> int:
        """The frames are counted by reading them: the split is known only then."""
        self.images("train")
        return super().steps_per_epoch(batch_size)

    def _frames(self, path: Path) -> list[np.ndarray]:
        if path.is_dir():
            return [decode(f, 1, SIZE) for f in sorted(path.iterdir()) if f.suffix.lower() in FRAMES]
        try:
            from torchvision.io import read_video

            video, _, _ = read_video(str(path), pts_unit="sec", output_format="TCHW")
        except Exception as exc:
            raise UsageError(
                f"cannot read the video {path} ({first_line(exc)}); install PyAV (pip install av) "
                f"or extract its frames to {path.with_suffix('')}/ (ffmpeg -i {path.name} %04d.png)"
            ) from None
        from PIL import Image

        return [np.asarray(resize_crop(Image.fromarray(f.permute(1, 2, 0).numpy()).convert("L"), SIZE))[None] for f in video]

    def _read(self) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        root = self.root()
        sources = (
            sorted(p for p in root.glob("*/*") if VIDEO.match(p.name) and (p.is_dir() or p.suffix.lower() == ".avi"))
            if root.is_dir()
            else []
        )
        if not sources:
            raise self.absent("no videos or frame folders")
        images, labels = [], []
        for src in sources:
            frames = self._frames(src)
            images += frames
            labels += [int(VIDEO.match(src.name).group(1)) - 1] * len(frames)
        if len(images) < 2:
            raise self.absent(f"{len(images)} frame found")
        x, y = torch.from_numpy(np.stack(images)), torch.tensor(labels, dtype=torch.int64)
        perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(self.options.seed))
        n_test = max(1, len(x) // 10)
        test, train = perm[:n_test], perm[n_test:]
        self.n_test = n_test
        train = train[: self.options.subset] if self.options.subset else train
        self.n_train = len(train)
        return {"train": (x[train], y[train]), "test": (x[test], y[test])}


def factory(cls):
    def build(config: TranslationSetConfig) -> _FileSet:
        return cls(config)

    return build
