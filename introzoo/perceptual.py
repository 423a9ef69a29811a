"""The VGG perceptual distance that replaces the pixel error on Cars3D (seed 001 Appendix 9.3, "we replace
the pixel-wise MSE reconstruction loss with the VGG perceptual loss"; LORD's ``VGGDistance`` in its
``model/modules.py``; docs/images.md, "Image translation").

    d(x, y) = mean |x - y| + sum_l mean |phi_l(x) - phi_l(y)|        (per sample)

``phi_l`` are the outputs of the layers ``LAYERS`` (2, 7, 12, 21, 30: the ReLUs after conv1_2, conv2_2,
conv3_3, conv4_3 and the last max-pool of ``torchvision.models.vgg16().features``, LORD's choice) on images
normalised with ImageNet's mean and std; grey images are repeated to 3 channels. The weights come from a file
you supply (torchvision's ``vgg16-397923af.pth``, or a state dict of ``vgg16().features``): nothing is
downloaded, like the Inception extractor (introzoo/extractors/inception.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn

from .errors import UsageError, first_line

LAYERS = (2, 7, 12, 21, 30)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
VGG16_FILE = "vgg16-397923af.pth"


def load_vgg16_features(weights: str | Path) -> nn.Sequential:
    """``torchvision.models.vgg16(weights=None).features`` with the weights of the file ``weights`` (a full
    VGG16 state dict or one of its ``features``), frozen, in eval mode; one ``UsageError`` line when the file
    is missing or does not fit."""
    import torchvision

    path = Path(weights).expanduser()
    if not path.is_file():
        raise UsageError(
            f"VGG16 weights not found at {path}; download torchvision's {VGG16_FILE} "
            f"(https://download.pytorch.org/models/{VGG16_FILE}) and give its path"
        )
    features = torchvision.models.vgg16(weights=None).features
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        if any(k.startswith("features.") for k in state):
            state = {k[len("features.") :]: v for k, v in state.items() if k.startswith("features.")}
        features.load_state_dict(state)
    except Exception as exc:
        raise UsageError(f"cannot load VGG16 weights from {path} ({first_line(exc)})") from None
    for p in features.parameters():
        p.requires_grad_(False)
    return features.eval()


class PerceptualDistance(nn.Module):
    """``d(x, y)`` per sample over a feature network ``features`` (an ``nn.Sequential``, VGG16's by default
    from :func:`load_vgg16_features`) and the indices ``layers`` of its modules whose outputs are compared."""

    def __init__(self, features: nn.Sequential, layers: Sequence[int] = LAYERS) -> None:
        super().__init__()
        if max(layers) >= len(features):
            raise ValueError(f"layer {max(layers)} is past the feature network's {len(features)} modules")
        self.features = features[: max(layers) + 1]
        self.layers = tuple(sorted(layers))
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))

    def _phis(self, x: torch.Tensor) -> list[torch.Tensor]:
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        h = (x - self.mean) / self.std
        out = []
        for i, module in enumerate(self.features):
            h = module(h)
            if i in self.layers:
                out.append(h)
        return out

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        d = (x - y).abs().flatten(1).mean(1)
        for fx, fy in zip(self._phis(x), self._phis(y)):
            d = d + (fx - fy).abs().flatten(1).mean(1)
        return d


def rec_distance(spec: str, dataset: Any, device: torch.device) -> PerceptualDistance:
    """The REC distance of ``--rec-loss perceptual,weights=FILE`` for a run on ``dataset`` (images only):
    :class:`PerceptualDistance` over VGG16's features from ``FILE``, on ``device``; one ``UsageError`` line
    when the data are not images or the file is missing."""
    name, _, weights = spec.partition(",weights=")
    if name != "perceptual" or not weights:
        raise UsageError(f"--rec-loss {spec!r}: use mse or perceptual,weights=FILE")
    if getattr(dataset, "kind", "") != "image" or len(dataset.shape) != 3 or dataset.shape[0] not in (1, 3):
        raise UsageError(
            f"--rec-loss perceptual needs images with 1 or 3 channels; dataset "
            f"'{getattr(dataset, 'name', '?')}' has samples of shape {tuple(dataset.shape)}"
        )
    dist = PerceptualDistance(load_vgg16_features(weights))
    try:  # one image of the dataset's size through the feature network: VGG16's five poolings need 32 pixels
        with torch.no_grad():
            dist(torch.zeros(1, *dataset.shape), torch.zeros(1, *dataset.shape))
    except RuntimeError as exc:
        raise UsageError(
            f"--rec-loss perceptual: images of {dataset.shape[1]}x{dataset.shape[2]} are too small for "
            f"the feature network ({first_line(exc)}); VGG16 needs 32x32 or larger"
        ) from None
    return dist.to(device)
