"""``conv``: a small plain convolutional encoder/decoder, fit for tiny images (8x8 ``digits``).

Encoder: for each channel count c_i, Conv3x3(stride 2)-LReLU(0.2) (halving the size), then FC to
``2*zdim``. Decoder: FC(zdim -> c_last * h * w)-LReLU, for each channel count in reverse
ConvTranspose4x4(stride 2)-LReLU (doubling the size), Conv3x3 to C channels, no output activation.
No normalisation layers, so outputs never depend on train/eval mode. Not a paper architecture: it exists
so that image runs and tests take seconds on a CPU.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from pydantic import BaseModel, ConfigDict, Field, field_validator
from torch import nn

from ..training.kernels import Linear


class ConvConfig(BaseModel):
    """Options of the ``conv`` backbone."""

    model_config = ConfigDict(extra="forbid")
    data_shapes: ClassVar[tuple[tuple[int, int, int], ...]] = ((1, 8, 8),)

    channels: list[int] = Field(default_factory=lambda: [32, 64], description="channels per stride-2 stage")

    @field_validator("channels")
    @classmethod
    def _positive(cls, v: list[int]) -> list[int]:
        if not v or any(c <= 0 for c in v):
            raise ValueError("channels must be a non-empty list of positive integers")
        return v


class ConvEncoder(nn.Module):
    def __init__(self, data_shape: tuple[int, ...], zdim: int, channels: list[int]) -> None:
        super().__init__()
        if len(data_shape) != 3:
            raise ValueError(f"the conv backbone needs images (C, H, W), got data of shape {tuple(data_shape)}")
        c, h, w = data_shape
        s = 2 ** len(channels)
        if h % s or w % s:
            raise ValueError(f"image size {h}x{w} is not divisible by 2^{len(channels)}; use fewer stages")
        layers: list[nn.Module] = []
        for ch in channels:
            layers += [nn.Conv2d(c, ch, 3, stride=2, padding=1), nn.LeakyReLU(0.2, inplace=True)]
            c = ch
        self.main = nn.Sequential(*layers)
        self.feature_shape = (c, h // s, w // s)
        self.fc = Linear(c * (h // s) * (w // s), 2 * zdim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.main(x).flatten(1))


class ConvDecoder(nn.Module):
    def __init__(
        self, data_shape: tuple[int, ...], zdim: int, channels: list[int], feature_shape: tuple[int, int, int]
    ) -> None:
        super().__init__()
        self.feature_shape = tuple(feature_shape)
        c = channels[-1]
        self.fc = nn.Sequential(Linear(zdim, c * feature_shape[1] * feature_shape[2]), nn.LeakyReLU(0.2, inplace=True))
        layers: list[nn.Module] = []
        for ch in reversed(channels):
            layers += [nn.ConvTranspose2d(c, ch, 4, stride=2, padding=1), nn.LeakyReLU(0.2, inplace=True)]
            c = ch
        layers.append(nn.Conv2d(c, data_shape[0], 3, padding=1))
        self.main = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.main(self.fc(z).view(z.shape[0], *self.feature_shape))


def build(config: ConvConfig, data_shape: tuple[int, ...], zdim: int) -> tuple[nn.Module, nn.Module]:
    enc = ConvEncoder(tuple(data_shape), zdim, list(config.channels))
    return enc, ConvDecoder(tuple(data_shape), zdim, list(config.channels), enc.feature_shape)


build.packable = True  # trains in a pack as grouped convolutions (introzoo.packing.conv)
