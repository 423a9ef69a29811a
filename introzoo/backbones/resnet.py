"""``resnet``: the IntroVAE-style residual encoder/decoder for images (seed 002 Table 6;
docs/conventions.md, "Backbones").

Encoder: Conv5x5(C -> c0)-Norm-LReLU(0.2)-AvgPool2, then for each further channel count c_i a residual
block (c_{i-1} -> c_i) + AvgPool2, a final residual block, and FC to ``2*zdim`` (mu, logvar).
Decoder: FC(zdim -> c_last * h * w)-ReLU, where (c_last, h, w) is the encoder's last feature map; then for
each channel count in reverse a residual block + nearest x2 upsampling, a final residual block and a
Conv5x5 to C channels, **no output activation** (the losses compare raw outputs with pixels in [0, 1]).

Residual block (as in the official Soft-IntroVAE code): ``LReLU(Norm(Conv3x3(LReLU(Norm(Conv3x3(x))))) +
identity)``, the identity through a 1x1 convolution when the channel count changes.

``norm``: ``batch`` (the papers' BatchNorm) or ``none``. With BatchNorm an image's output depends on the
network's mode (train: batch statistics; eval: running averages); the official code evaluates FID in
train mode, which is a documented complaint. introzoo's metrics evaluate in eval mode by default and the
FID metrics record the mode they used (``bn_mode``); ``norm=none`` removes the dependence altogether.

Defaults per dataset (set by the datasets; docs/conventions.md, "Backbones"): channels (64, 128) for 28x28
(MNIST/Fashion-MNIST, zdim 32), (64, 128, 256) for 32x32 (CIFAR-10/SVHN, zdim 128).
"""

from __future__ import annotations

from typing import ClassVar, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, field_validator
from torch import nn

from ..training.kernels import Linear


class ResNetConfig(BaseModel):
    """Options of the ``resnet`` backbone."""

    model_config = ConfigDict(extra="forbid")
    #: the image shapes of the papers' datasets (the contract checks build it for these)
    data_shapes: ClassVar[tuple[tuple[int, int, int], ...]] = ((1, 28, 28), (3, 32, 32))

    channels: list[int] | None = Field(
        None, description="channels per stage, one AvgPool/upsample each (default: the papers' for the image size)"
    )
    norm: Literal["batch", "none"] = Field("batch", description="normalisation layers: batch or none")

    @field_validator("channels")
    @classmethod
    def _positive(cls, v: list[int] | None) -> list[int] | None:
        if v is not None and (not v or any(c <= 0 for c in v)):
            raise ValueError("channels must be a non-empty list of positive integers")
        return v


def _norm(kind: str, c: int) -> nn.Module:
    return nn.BatchNorm2d(c) if kind == "batch" else nn.Identity()


class ResidualBlock(nn.Module):
    def __init__(self, cin: int, cout: int, norm: str = "batch") -> None:
        super().__init__()
        bias = norm == "none"
        self.expand = nn.Conv2d(cin, cout, 1, bias=False) if cin != cout else None
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1, bias=bias)
        self.norm1 = _norm(norm, cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=bias)
        self.norm2 = _norm(norm, cout)
        self.act = nn.LeakyReLU(0.2, inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.expand is None else self.expand(x)
        out = self.act(self.norm1(self.conv1(x)))
        return self.act(self.norm2(self.conv2(out)) + identity)


def _check_size(data_shape: tuple[int, ...], stages: int) -> None:
    if len(data_shape) != 3:
        raise ValueError(f"the resnet backbone needs images (C, H, W), got data of shape {tuple(data_shape)}")
    _, h, w = data_shape
    if h % (2**stages) or w % (2**stages):
        raise ValueError(
            f"image size {h}x{w} is not divisible by 2^{stages} (one halving per stage of "
            f"channels); use fewer channel stages"
        )


class ResNetEncoder(nn.Module):
    def __init__(self, data_shape: tuple[int, ...], zdim: int, channels: list[int], norm: str) -> None:
        super().__init__()
        _check_size(data_shape, len(channels))
        c, h, w = data_shape
        layers: list[nn.Module] = [
            nn.Conv2d(c, channels[0], 5, padding=2, bias=norm == "none"),
            _norm(norm, channels[0]),
            nn.LeakyReLU(0.2, inplace=True),
            nn.AvgPool2d(2),
        ]
        cc = channels[0]
        for ch in channels[1:]:
            layers += [ResidualBlock(cc, ch, norm), nn.AvgPool2d(2)]
            cc = ch
        layers.append(ResidualBlock(cc, cc, norm))
        self.main = nn.Sequential(*layers)
        s = 2 ** len(channels)
        self.feature_shape = (cc, h // s, w // s)
        self.fc = Linear(cc * (h // s) * (w // s), 2 * zdim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.main(x).flatten(1))


class ResNetDecoder(nn.Module):
    def __init__(
        self, data_shape: tuple[int, ...], zdim: int, channels: list[int], norm: str, feature_shape: tuple[int, int, int]
    ) -> None:
        super().__init__()
        self.feature_shape = tuple(feature_shape)
        cc = channels[-1]
        self.fc = nn.Sequential(Linear(zdim, cc * feature_shape[1] * feature_shape[2]), nn.ReLU(inplace=True))
        layers: list[nn.Module] = []
        for ch in reversed(channels):
            layers += [ResidualBlock(cc, ch, norm), nn.Upsample(scale_factor=2, mode="nearest")]
            cc = ch
        layers += [ResidualBlock(cc, cc, norm), nn.Conv2d(cc, data_shape[0], 5, padding=2)]
        self.main = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.main(self.fc(z).view(z.shape[0], *self.feature_shape))


def default_channels(data_shape: tuple[int, ...]) -> list[int]:
    """The papers' channels: (64, 128, 256) for 32x32 and larger images divisible by 8, (64, 128) for 28x28, else (64,)."""
    size = min(data_shape[-2:]) if len(data_shape) == 3 else 0
    if size >= 32 and size % 8 == 0:
        return [64, 128, 256]
    return [64, 128] if size % 4 == 0 else [64]


def build(config: ResNetConfig, data_shape: tuple[int, ...], zdim: int) -> tuple[nn.Module, nn.Module]:
    channels = list(config.channels) if config.channels else default_channels(tuple(data_shape))
    enc = ResNetEncoder(tuple(data_shape), zdim, channels, config.norm)
    dec = ResNetDecoder(tuple(data_shape), zdim, channels, config.norm, enc.feature_shape)
    return enc, dec


build.packable = True  # trains in a pack as grouped convolutions (introzoo.packing.conv)
