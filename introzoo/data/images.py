"""Image datasets through torchvision's real loaders, plus scikit-learn's bundled 8x8 ``digits``
(docs/conventions.md, "Data"; docs/images.md, "Datasets").

- ``mnist``, ``fashion-mnist``, ``cifar10``, ``svhn``: torchvision's ``MNIST``, ``FashionMNIST``,
  ``CIFAR10``, ``SVHN`` with the official splits (60k/10k, 60k/10k, 50k/10k, 73,257/26,032), pixels in
  [0, 1] (``ToTensor``). The data root is ``--data-root``, else ``$INTROZOO_DATA_ROOT``, else
  ``~/.cache/introzoo/data``; a missing dataset is downloaded when ``download=true`` (the default) and
  the network allows it, otherwise the run stops with one line giving the cause (no network, files missing
  and ``download=false``) and how to get it. ``introzoo run`` loads the data before it writes anything,
  and a failed download removes what it created under the data root.
- Fashion-MNIST offline: Debian's package ``dataset-fashion-mnist`` ships the IDX files, recompressed (their
  md5 differs from torchvision's list), so they are decompressed into ``<root>/FashionMNIST/raw/`` and
  loaded with ``download=False``.
- ``digits``: 1,797 8x8 grey images (values 0..16, divided by 16); the last 360 are the test split. It needs
  no download, which makes it the default for quick image runs and tests.

Images are kept as uint8 tensors and turned into floats one batch at a time. Training batches follow
epochs: each epoch is a fresh permutation drawn from the run's data generator (the papers shuffle the
data loader), and the last, smaller batch of an epoch is kept, as torch's DataLoader does by default.
"""

from __future__ import annotations

import gzip
import os
import shutil
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field

from ..errors import UsageError, first_line
from .base import Dataset, Epochs

#: Debian's ``dataset-fashion-mnist`` package
DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
FASHION_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def data_root(root: str | Path | None = None) -> Path:
    """``root``, else ``$INTROZOO_DATA_ROOT`` (what ``--data-root`` sets), else ``~/.cache/introzoo/data``."""
    if root is not None:
        return Path(root).expanduser()
    env = os.environ.get("INTROZOO_DATA_ROOT")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "introzoo" / "data"


# Soft-IntroVAE's image settings (official README / seed 001 §9.3): betas (1, 1), beta_neg 256, lr 2e-4,
# no warm-up for soft; the three-player objective warms up for 20 epochs (seed 003 §5.2).
def _objective_defaults(warmup_epochs_prior: int, beta_neg: float, beta_kl: float = 1.0) -> dict[str, dict[str, Any]]:
    soft = {"beta_rec": 1.0, "beta_kl": beta_kl, "beta_neg": beta_neg, "num_vae": 0}
    return {
        "vae": {"beta_rec": 1.0, "beta_kl": beta_kl},
        "soft": soft,
        "soft-prior": dict(soft, num_vae=Epochs(warmup_epochs_prior)),
        "intro": {"beta_rec": 1.0, "beta_kl": beta_kl, "beta_neg": beta_neg, "num_vae": 0},
    }


class ImageConfig(BaseModel):
    """Options of the image datasets."""

    model_config = ConfigDict(extra="forbid")

    subset: int | None = Field(None, gt=0, description="use only the first N training images (quick runs)")
    download: bool = Field(True, description="download the dataset when it is not under the data root")


class ImageDataset(Dataset):
    """An image dataset held in memory as uint8 ``(N, C, H, W)`` tensors with integer labels."""

    kind = "image"
    metric_range = None
    #: size of the official training / test splits (before ``subset``)
    n_train: int = 0
    n_test: int = 0
    default_backbone = "resnet"
    backbone_defaults: dict[str, dict[str, Any]] = {}
    how_to_get = ""

    def __init__(self, config: ImageConfig | None = None) -> None:
        self.config = config or ImageConfig()
        self._train: tuple[torch.Tensor, torch.Tensor] | None = None
        self._test: tuple[torch.Tensor, torch.Tensor] | None = None
        if self.config.subset is not None:
            self.n_train = min(self.n_train, self.config.subset)

    # -- loading --------------------------------------------------------------------------------
    def _load(self, train: bool) -> tuple[torch.Tensor, torch.Tensor]:  # pragma: no cover - abstract
        raise NotImplementedError

    def _split(self, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
        if train:
            if self._train is None:
                x, y = self._load(True)
                self._train = (x[: self.n_train], y[: self.n_train])
            return self._train
        if self._test is None:
            self._test = self._load(False)
        return self._test

    def images(self, split: str = "train") -> tuple[torch.Tensor, torch.Tensor]:
        """``(uint8 images (N, C, H, W), int64 labels (N,))`` of ``"train"`` or ``"test"``."""
        if split not in ("train", "test"):
            raise ValueError(f"split must be 'train' or 'test', not {split!r}")
        return self._split(split == "train")

    @staticmethod
    def to_float(x: torch.Tensor) -> torch.Tensor:
        return x.float().div_(255.0)

    # -- the Dataset contract -------------------------------------------------------------------
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` training images drawn without replacement (with replacement if ``n`` exceeds the set)."""
        x, _ = self.images("train")
        if n <= x.shape[0]:
            idx = torch.randperm(x.shape[0], generator=generator)[:n]
        else:
            idx = torch.randint(0, x.shape[0], (n,), generator=generator)
        return self.to_float(x[idx])

    def batches(self, batch_size: int, generator: torch.Generator | None = None) -> Iterator[torch.Tensor]:
        x, _ = self.images("train")
        while True:
            perm = torch.randperm(x.shape[0], generator=generator)
            for i in range(0, x.shape[0], batch_size):
                yield self.to_float(x[perm[i : i + batch_size]])

    def missing(self, root: Path, reason: str) -> UsageError:
        return UsageError(
            f"dataset '{self.name}' is not under {root} and could not be downloaded ({reason}); "
            f"{self.how_to_get}, then pass --data-root DIR (or set INTROZOO_DATA_ROOT)"
        )

    def ensure_available(self) -> None:
        """Load both splits now (downloading if allowed), so that a missing dataset stops a run before it
        writes anything; a no-op once loaded."""
        self.images("train")
        self.images("test")


#: socket errors that mean the machine has no route to the download servers
NO_NETWORK = (
    "name or service not known",
    "temporary failure in name resolution",
    "network is unreachable",
    "no address associated",
    "nodename nor servname",
    "getaddrinfo failed",
    "connection refused",
    "timed out",
    "no route to host",
)


def download_cause(exc: BaseException) -> str:
    """The reason a download failed, in a few words: torchvision's message puts the per-mirror errors on
    the lines after "got:" (its first line names only the file)."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    details = [lines[i + 1] for i, ln in enumerate(lines[:-1]) if ln.endswith("got:")] or lines[1:] or lines
    detail = details[0].strip("<>") if details else type(exc).__name__
    detail = detail.removeprefix("urlopen error ")
    if any(k in detail.lower() for k in NO_NETWORK):
        return f"no network: {detail}"[:200]
    return (first_line(exc) + (f" {detail}" if detail not in first_line(exc) else ""))[:200]


def _remove_new(root: Path, before: set[Path] | None) -> None:
    """Remove what a failed download created under ``root`` (``before``: its entries until then; ``None``:
    ``root`` did not exist), so that a failure leaves nothing behind (no empty ``MNIST/raw``)."""
    if not root.is_dir():
        return
    for entry in set(root.iterdir()) - (before or set()):
        if entry.is_dir():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
    if before is None:
        try:
            root.rmdir()
        except OSError:  # something else appeared meanwhile
            pass


def _tensors(ds) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 (N, C, H, W) images and int64 labels of a torchvision dataset, without per-item transforms."""
    data = ds.data
    data = torch.as_tensor(np.asarray(data))
    if data.ndim == 3:  # MNIST-like (N, H, W)
        data = data.unsqueeze(1)
    elif data.shape[-1] == 3:  # CIFAR-10 (N, H, W, C)
        data = data.permute(0, 3, 1, 2)
    labels = getattr(ds, "targets", None)
    if labels is None:
        labels = ds.labels  # SVHN
    return data.contiguous().to(torch.uint8), torch.as_tensor(np.asarray(labels), dtype=torch.int64)


def resize_crop(img, size: int):
    """The shorter side resized to ``size`` (bilinear), then the centre ``size x size`` (torchvision's
    ``Resize(size)`` and ``CenterCrop(size)`` on a PIL image)."""
    import torchvision.transforms.functional as TF
    from torchvision.transforms import InterpolationMode

    img = TF.resize(img, size, interpolation=InterpolationMode.BILINEAR)
    return TF.center_crop(img, [size, size])


def decode(path: Path, channels: int, size: int | None) -> np.ndarray:
    """One image as uint8 ``(C, H, W)``."""
    from PIL import Image

    try:
        with Image.open(path) as img:
            img = img.convert("L" if channels == 1 else "RGB")
            if size is not None:
                img = resize_crop(img, size)
            a = np.asarray(img, dtype=np.uint8)
    except Exception as exc:
        raise UsageError(f"cannot read image {path} ({first_line(exc)})") from None
    return a[None] if a.ndim == 2 else a.transpose(2, 0, 1)


def small_image_defaults(shape: tuple[int, int, int]) -> dict[str, Any]:
    """Backbone and training defaults for images of ``shape`` (docs/images.md, "Your own images"):
    up to 16 pixels a side ``digits``' settings (``conv``, betas scaled to the pixel count), larger ones
    the papers' ``resnet`` settings (CIFAR-10's from 32 pixels); sides that do not halve take ``mlp``."""
    c, h, w = shape
    side = min(h, w)
    values = c * h * w
    small = side <= 16
    if h % 2 or w % 2:
        backbone, bdefaults = "mlp", {}
    elif small:
        backbone = "conv"
        bdefaults = {"conv": {"channels": [32, 64] if h % 4 == 0 and w % 4 == 0 else [32]}}
    else:
        backbone, bdefaults = "resnet", {}
    # REC sums over the values: below MNIST's 784 every beta shrinks with the count (as digits does)
    scale = min(1.0, values / 784)
    train = (
        {"epochs": 60, "batch_size": 32, "zdim": 16, "lr": 1e-3}
        if small
        else {"epochs": 100, "batch_size": 32, "zdim": 128 if side >= 32 else 32, "lr": 2e-4}
    )
    train.update(lr_milestones=[], lr_gamma=0.1)
    return {
        "backbone": backbone,
        "backbone_defaults": bdefaults,
        "train": train,
        "objectives": _objective_defaults(20, round(256.0 * scale, 4), round(scale, 4)),
    }


class TorchvisionDataset(ImageDataset):
    """A dataset read by one of torchvision's loaders (their ``data`` arrays held in memory)."""

    tv_class = ""
    how_to_get = "download it once with network access (introzoo fetches it through torchvision)"

    def _open(self, root: Path, train: bool, download: bool):
        import torchvision.datasets as tvd

        cls = getattr(tvd, self.tv_class)
        if self.tv_class == "SVHN":
            return cls(str(root), split="train" if train else "test", download=download)
        return cls(str(root), train=train, download=download)

    def _prepare_offline(self, root: Path) -> None:
        """Make the dataset findable offline where the machine has it (Fashion-MNIST from Debian)."""

    def _tensors(self, ds) -> tuple[torch.Tensor, torch.Tensor]:
        """The images and labels of the torchvision dataset ``ds``."""
        return _tensors(ds)

    def _load(self, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
        root = data_root()
        self._prepare_offline(root)
        try:
            ds = self._open(root, train, download=False)
        except (RuntimeError, OSError):
            ds = None  # not there: download if allowed
        if ds is None:
            if not self.config.download:
                raise self.missing(root, "download=false")
            before = set(root.iterdir()) if root.is_dir() else None
            try:
                root.mkdir(parents=True, exist_ok=True)
                ds = self._open(root, train, download=True)
            except Exception as exc:  # urllib / http / checksum errors all mean "could not get it"
                _remove_new(root, before)
                raise self.missing(root, download_cause(exc)) from None
        return self._tensors(ds)


class CelebAConfig(ImageConfig):
    """Options of ``celeba``."""

    size: int = Field(64, gt=0, description="resize the shorter side to SIZE and crop the centre SIZE x SIZE")


class CelebA(TorchvisionDataset):
    """torchvision's ``CelebA`` (aligned and cropped faces, 178x218), official splits: train 162,770, test
    19,962. Images are decoded once with PIL, the shorter side resized to ``size`` and the centre cropped;
    labels are the ``Male`` attribute (0/1), what the probes classify."""

    name, tv_class = "celeba", "CelebA"
    n_train, n_test = 162_770, 19_962
    how_to_get = (
        "download it once with network access (torchvision fetches it from Google Drive and needs gdown; "
        "or put its files under <data root>/celeba/: img_align_celeba/ and the list_*.txt, "
        "identity_CelebA.txt files)"
    )

    def __init__(self, config: CelebAConfig | None = None) -> None:
        config = config or CelebAConfig()
        self.shape = (3, config.size, config.size)
        super().__init__(config)
        d = small_image_defaults(self.shape)
        self.default_backbone, self.backbone_defaults = d["backbone"], d["backbone_defaults"]
        self.train_defaults, self.objective_defaults = d["train"], d["objectives"]

    def _open(self, root: Path, train: bool, download: bool):
        import torchvision.datasets as tvd

        return tvd.CelebA(str(root), split="train" if train else "test", target_type="attr", download=download)

    def _tensors(self, ds) -> tuple[torch.Tensor, torch.Tensor]:
        n = min(len(ds.filename), self.n_train) if ds.split == "train" else len(ds.filename)
        folder = Path(ds.root) / ds.base_folder / "img_align_celeba"
        size = self.config.size
        x = np.empty((n, 3, size, size), dtype=np.uint8)
        for i in range(n):
            x[i] = decode(folder / ds.filename[i], 3, size)
        male = ds.attr_names.index("Male")
        return torch.from_numpy(x), ds.attr[:n, male].to(torch.int64)


class MNIST(TorchvisionDataset):
    name, tv_class, shape = "mnist", "MNIST", (1, 28, 28)
    n_train, n_test = 60_000, 10_000


class FashionMNIST(TorchvisionDataset):
    name, tv_class, shape = "fashion-mnist", "FashionMNIST", (1, 28, 28)
    n_train, n_test = 60_000, 10_000
    how_to_get = (
        "install Debian's package dataset-fashion-mnist (apt-get install dataset-fashion-mnist), "
        "or download it once with network access"
    )

    def _prepare_offline(self, root: Path) -> None:
        raw = root / "FashionMNIST" / "raw"
        if all((raw / f).exists() for f in FASHION_FILES):
            return
        if not all((DEBIAN_FASHION_MNIST / f"{f}.gz").exists() for f in FASHION_FILES):
            return
        raw.mkdir(parents=True, exist_ok=True)
        for f in FASHION_FILES:
            tmp = raw / f".{f}.tmp"
            with gzip.open(DEBIAN_FASHION_MNIST / f"{f}.gz", "rb") as src, open(tmp, "wb") as dst:
                shutil.copyfileobj(src, dst)
            tmp.replace(raw / f)  # atomic: a concurrent run never sees half a file


class CIFAR10(TorchvisionDataset):
    name, tv_class, shape = "cifar10", "CIFAR10", (3, 32, 32)
    n_train, n_test = 50_000, 10_000


class SVHN(TorchvisionDataset):
    name, tv_class, shape = "svhn", "SVHN", (3, 32, 32)
    n_train, n_test = 73_257, 26_032
    how_to_get = "download it once with network access (introzoo fetches it through torchvision; needs scipy)"


class Digits(ImageDataset):
    """scikit-learn's bundled 8x8 digits: offline, tiny, fast (not a paper dataset)."""

    name, shape = "digits", (1, 8, 8)
    n_train, n_test = 1_437, 360
    default_backbone = "conv"

    def _load(self, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
        from sklearn.datasets import load_digits

        d = load_digits()
        x = torch.from_numpy(np.round(d.images * (255.0 / 16.0)).astype(np.uint8)).unsqueeze(1)
        y = torch.from_numpy(d.target.astype(np.int64))
        cut = 1_437
        return (x[:cut], y[:cut]) if train else (x[cut:], y[cut:])


# The papers' protocol per dataset (docs/images.md, "Datasets"; the official README): epochs, batch size, latent size,
# backbone channels, beta_neg (beta_kl 1, lr 2e-4 unless given). SVHN has no published epoch count; it
# uses CIFAR-10's. ``digits`` is not a paper dataset: its settings are MNIST's loss balance carried over to
# 64 pixels (docs/images.md). REC sums over pixels, so with beta_rec = 1 an 8x8 image's reconstruction
# weighs 64/784 of an MNIST image's against the same KL, and at beta_kl = 1 the VAE's optimum is the
# collapsed posterior (KL ~ 0). Dividing every beta by 784/64 = 12.25 (beta_kl 0.08, beta_neg 256/12.25
# ~ 20) gives, with s = 1/64, exactly the MNIST losses up to one factor; lr 1e-3 and batch 32 let the
# 1,437 images train in a few CPU minutes.
PROTOCOLS: dict[str, dict[str, Any]] = {
    "mnist": {"epochs": 200, "batch_size": 128, "zdim": 32, "channels": [64, 128], "beta_neg": 256.0},
    "fashion-mnist": {"epochs": 200, "batch_size": 128, "zdim": 32, "channels": [64, 128], "beta_neg": 256.0},
    "cifar10": {"epochs": 220, "batch_size": 32, "zdim": 128, "channels": [64, 128, 256], "beta_neg": 256.0},
    "svhn": {"epochs": 220, "batch_size": 32, "zdim": 128, "channels": [64, 128, 256], "beta_neg": 256.0},
    "digits": {
        "epochs": 60,
        "batch_size": 32,
        "zdim": 16,
        "channels": [32, 64],
        "beta_neg": 20.0,
        "beta_kl": 0.08,
        "lr": 1e-3,
    },
}
# Seed 004 §3: every dpVAE regularizer trains with lr 1e-4 for 100,000 iterations, batch 100 on MNIST
# and 50 on SVHN (and CelebA); Fashion-MNIST, MNIST's offline stand-in, takes MNIST's. ``epochs = None``:
# the iterations count, not the dataset's epochs.
DPVAE_REGULARIZERS = ("beta-h", "beta-b", "tcvae", "factor", "info")
DPVAE_PROTOCOLS: dict[str, dict[str, Any]] = {
    name: {"iterations": 100_000, "epochs": None, "batch_size": batch, "lr": 1e-4, "lr_milestones": []}
    for name, batch in (("mnist", 100), ("fashion-mnist", 100), ("svhn", 50))
}
CLASSES = {c.name: c for c in (MNIST, FashionMNIST, CIFAR10, SVHN, Digits)}
DOCS = {
    "mnist": "MNIST 28x28 digits (torchvision; 60k train / 10k test).",
    "fashion-mnist": "Fashion-MNIST 28x28 clothing (torchvision; offline from Debian's dataset-fashion-mnist).",
    "cifar10": "CIFAR-10 32x32 colour images (torchvision; 50k train / 10k test).",
    "svhn": "SVHN 32x32 house numbers (torchvision; 73,257 train / 26,032 test).",
    "digits": "scikit-learn's bundled 8x8 digits (offline; 1,437 train / 360 test); quick image runs.",
}


def factory(name: str):
    cls = CLASSES[name]
    proto = PROTOCOLS[name]

    def build(config: ImageConfig) -> ImageDataset:
        ds = cls(config)
        ds.train_defaults = {
            "epochs": proto["epochs"],
            "batch_size": proto["batch_size"],
            "zdim": proto["zdim"],
            "lr": proto.get("lr", 2e-4),
            "lr_milestones": [],
            "lr_gamma": 0.1,
        }
        ds.objective_defaults = _objective_defaults(20, proto["beta_neg"], proto.get("beta_kl", 1.0))
        ds.backbone_defaults = {"resnet": {"channels": proto["channels"]}, "conv": {"channels": proto["channels"]}}
        if name in DPVAE_PROTOCOLS:
            ds.regularizer_defaults = {reg: dict(DPVAE_PROTOCOLS[name]) for reg in DPVAE_REGULARIZERS}
        return ds

    return build
