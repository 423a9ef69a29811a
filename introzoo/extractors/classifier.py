"""``classifier``: a feature extractor introzoo trains itself, for FID where no Inception weights exist.

A small CNN (Conv3x3-ReLU-MaxPool2 per stage, FC to ``features`` with ReLU, FC to the classes) trained with
cross-entropy on the dataset's training split (Adam, lr 1e-3, ``epochs``, batch 128, fixed seed). Its
``features``-dimensional penultimate activations are the FID features. The trained network is cached
under ``$INTROZOO_CACHE/extractors`` (``~/.cache/introzoo``), keyed by dataset, subset and options, and its
test-split accuracy is reported with every FID it produces. These FIDs are *not* Inception FIDs: they
compare only with other ``@classifier`` values on the same dataset.
"""

from __future__ import annotations

import hashlib
import json

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from ..metrics.stream import EVAL_CHUNK, Phases
from .base import Extractor, cache_dir


class ClassifierConfig(BaseModel):
    """Options of the ``classifier`` feature extractor."""

    model_config = ConfigDict(extra="forbid")

    epochs: int | None = Field(None, gt=0, description="training epochs (default: enough for 1,500 steps, at least 2)")
    features: int = Field(128, gt=0, description="size of the feature layer (the FID features)")
    seed: int = Field(0, ge=0, description="seed of the classifier's training")


class Classifier(Extractor):
    def __init__(self, shape: tuple[int, ...], classes: int, features: int) -> None:
        super().__init__()
        c, h, w = shape
        layers: list[nn.Module] = []
        for ch in (32, 64):
            if min(h, w) < 2:
                break
            layers += [nn.Conv2d(c, ch, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2)]
            c, h, w = ch, h // 2, w // 2
        self.body = nn.Sequential(*layers, nn.Flatten(), nn.Linear(c * h * w, features), nn.ReLU(inplace=True))
        self.head = nn.Linear(features, classes)
        self.num_features = features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


def _key(dataset, config: ClassifierConfig) -> str:
    d = {"dataset": dataset.name, "n_train": dataset.n_train, "shape": list(dataset.shape), "options": config.model_dump()}
    identity = getattr(dataset, "identity", None)  # where the data come from (``folder``: its path)
    if identity:
        d["identity"] = identity
    return hashlib.sha1(json.dumps(d, sort_keys=True).encode()).hexdigest()[:12]


@torch.no_grad()
def accuracy(
    net: Classifier, x: torch.Tensor, y: torch.Tensor, device: torch.device, batch: int = EVAL_CHUNK, advance=None
) -> float:
    """Test accuracy, ``batch`` images per pass (``advance(n)``: told of each pass)."""
    net.eval()
    correct = 0
    for i in range(0, x.shape[0], batch):
        xb = x[i : i + batch].to(device).float().div_(255.0)
        correct += int((net.logits(xb).argmax(1).cpu() == y[i : i + batch]).sum())
        if advance is not None:
            advance(xb.shape[0])
    return correct / max(x.shape[0], 1)


def train_classifier(
    dataset, config: ClassifierConfig, device: torch.device, progress: Phases | None = None, chunk: int = EVAL_CHUNK
) -> Classifier:
    """Train the classifier (one progress phase over its steps, one over the test accuracy)."""
    progress = progress or Phases()
    x, y = dataset.images("train")
    classes = int(y.max()) + 1
    g = torch.Generator().manual_seed(config.seed)
    torch.manual_seed(config.seed)
    net = Classifier(tuple(dataset.shape), classes, config.features).to(device)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    batch = 128
    steps = -(-x.shape[0] // batch)
    epochs = config.epochs or max(2, -(-1500 // steps))
    with progress.phase(f"training the FID classifier on {dataset.name} ({epochs} epochs)", epochs * steps) as advance:
        for _ in range(epochs):
            net.train()
            perm = torch.randperm(x.shape[0], generator=g)
            for i in range(0, x.shape[0], batch):
                idx = perm[i : i + batch]
                loss = nn.functional.cross_entropy(net.logits(x[idx].to(device).float().div_(255.0)), y[idx].to(device))
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                advance(1)
    xt, yt = dataset.images("test")
    with progress.phase("FID classifier: test accuracy", xt.shape[0]) as advance:
        acc = accuracy(net, xt, yt, device, chunk, advance)
    net.info = {
        "extractor": "classifier",
        "test_accuracy": round(acc, 4),
        "classes": classes,
        **config.model_dump(),
        "epochs": epochs,
    }
    return net.eval()


def build(
    config: ClassifierConfig,
    dataset,
    device: torch.device | str = "cpu",
    progress: Phases | None = None,
    chunk: int = EVAL_CHUNK,
) -> Classifier:
    """The cached classifier for ``dataset``, training (and caching) it on first use; ``progress`` and
    ``chunk`` (the evaluation's, :mod:`introzoo.metrics.stream`) bound and report that training."""
    device = torch.device(device)
    path = cache_dir() / "extractors" / f"classifier-{dataset.name}-{_key(dataset, config)}.pt"
    if path.exists():
        saved = torch.load(path, map_location=device, weights_only=True)
        net = Classifier(tuple(dataset.shape), saved["classes"], config.features).to(device)
        net.load_state_dict(saved["state"])
        net.info = dict(saved["info"], cached=str(path))
        return net.eval()
    net = train_classifier(dataset, config, device, progress, chunk)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{id(net)}")
    torch.save({"state": net.state_dict(), "classes": net.info["classes"], "info": net.info}, tmp)
    tmp.replace(path)
    net.info = dict(net.info, cached=str(path))
    return net
