"""``inception``: Inception-v3 pool features (2048) for FID, from weights the user supplies.

Two weight sets are understood:

- ``fid`` (default): the TensorFlow-ported FID Inception (``pt_inception-2015-12-05-6726825d.pth``, the one
  behind published FIDs), through the optional package ``torch-fidelity`` (``pip install
  "introzoo[fid]"``). Images go in as uint8 RGB; torch-fidelity resizes them to 299x299.
- ``torchvision``: torchvision's ImageNet ``inception_v3`` (``inception_v3_google-0cc3c7bd.pth``), images
  resized to 299x299 (bilinear) and normalised with ImageNet statistics; pool features before the classifier.
  Its FIDs are not comparable with published ones.

``weights``: a file path; without it, torch's hub cache (``torch.hub.get_dir()/checkpoints``) is searched
for the file of the chosen set. Nothing is downloaded: with no weights the metric stops with one line that
says where to put them. Grey images are repeated to three channels.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from ..errors import UsageError
from .base import Extractor

FILES = {"fid": "pt_inception-2015-12-05-6726825d.pth", "torchvision": "inception_v3_google-0cc3c7bd.pth"}
URLS = {
    "fid": "https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/" + FILES["fid"],
    "torchvision": "https://download.pytorch.org/models/" + FILES["torchvision"],
}
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


class InceptionConfig(BaseModel):
    """Options of the ``inception`` feature extractor."""

    model_config = ConfigDict(extra="forbid")

    weights: str | None = Field(None, description="path of the weights file (default: torch's hub cache)")
    kind: Literal["fid", "torchvision"] = Field("fid", description="fid (TF-ported FID Inception) or torchvision")


def find_weights(config: InceptionConfig) -> Path:
    if config.weights:
        path = Path(config.weights).expanduser()
        if not path.is_file():
            raise UsageError(f"inception weights not found: {path}")
        return path
    path = Path(torch.hub.get_dir()) / "checkpoints" / FILES[config.kind]
    if path.is_file():
        return path
    raise UsageError(
        f"the inception extractor needs weights: download {URLS[config.kind]} into "
        f"{path.parent}/ or pass weights=PATH; offline, use features=classifier"
    )


class TorchvisionInception(Extractor):
    num_features = 2048

    def __init__(self, path: Path) -> None:
        super().__init__()
        from torchvision.models import inception_v3

        net = inception_v3(weights=None, aux_logits=True, init_weights=False)
        net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        net.fc = nn.Identity()
        self.net = net.eval()
        self.register_buffer("mean", torch.tensor(MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(STD).view(1, 3, 1, 1))
        self.info = {"extractor": "inception", "kind": "torchvision", "weights": str(path)}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] == 1:
            x = x.repeat(1, 3, 1, 1)
        x = nn.functional.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)
        return self.net((x - self.mean) / self.std)


class FidInception(Extractor):
    num_features = 2048

    def __init__(self, path: Path) -> None:
        super().__init__()
        try:
            from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3
        except ImportError:
            raise UsageError(
                "the FID Inception needs the package torch-fidelity: pip install 'introzoo[fid]' "
                "(or use inception,kind=torchvision)"
            ) from None
        self.net = FeatureExtractorInceptionV3(
            "inception-v3-compat", ["2048"], feature_extractor_weights_path=str(path)
        ).eval()
        self.info = {"extractor": "inception", "kind": "fid", "weights": str(path)}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] == 1:
            x = x.repeat(1, 3, 1, 1)
        (out,) = self.net((x.clamp(0, 1) * 255).round().to(torch.uint8))
        return out.reshape(x.shape[0], -1)


def build(config: InceptionConfig, dataset=None, device: torch.device | str = "cpu") -> Extractor:
    path = find_weights(config)
    net = FidInception(path) if config.kind == "fid" else TorchvisionInception(path)
    return net.to(device).eval()
