"""``lord``: the two-encoder, AdaIN-decoder architecture of LORD (Gabbay & Hoshen 2020) that Soft-IntroVAE
uses for unsupervised image translation (seed 001 §6.4, Appendix 9.3, Figure 4(b); docs/images.md,
"Image translation"). The official Soft-IntroVAE repository has no translation code; the layers follow
the paper's Appendix 9.3 and LORD's published ``model/modules.py`` (its ``Encoder``, ``Generator`` and
``AdaptiveInstanceNorm2d``).

The latent is ``z = [class code (class_dim), content code (zdim - class_dim)]``. Two encoders read the
image, one per code, each with its own Gaussian posterior; the encoder's output is the usual ``2*zdim``
vector ``[mu_class, mu_content, logvar_class, logvar_content]``, so ``VAE.encode`` splits it into the
concatenated means and log-variances, and with the standard Gaussian prior ``KL(q(z|x) || p(z))`` is the
sum of the two encoders' KLs (the ELBO of §6.4: reconstruction plus two KL terms). Objectives need no
change.

- Each encoder: Conv7x7 (C -> c_0, stride 1), then a Conv4x4 stride-2 into each of ``channels[1:]`` and one
  more into ``channels[-1]`` (one halving per entry; (64, 128, 256, 256) takes 64x64 to 4x4, as LORD's), then
  3 FC layers (``hidden``, ``hidden``, ``2 * code size``). LeakyReLU (0.2) after every layer but the last.
- Decoder: the content code through 3 FC layers to ``adain_channels x h/16 x w/16`` (widths /8, /4, x1 of
  that, as LORD's), then 4 x [nearest Upsample x2, Conv3x3, LeakyReLU, AdaIN by the class code], then
  Conv5x5 (-> ``last_channels``, LORD's 64) + LeakyReLU and Conv7x7 (-> C): 6 convolutions. introzoo's backbones have no output
  activation (LORD's ends in a sigmoid; the losses compare raw outputs with pixels in [0, 1]).
- AdaIN (Huang & Belongie 2017, as LORD implements it): per sample and channel,
  ``gamma * (x - mean_hw x) / sqrt(var_hw x + 1e-5) + beta`` with the biased variance over the
  feature map; ``(gamma, beta)`` of layer ``i`` are ``Linear_i(class code)`` split in halves.

``class_dim``: the class code's size; default two thirds of zdim (the paper's 256 of 384), the rest is the
content code. The paper's setting is ``zdim 384`` with ``class_dim=256``.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from pydantic import BaseModel, ConfigDict, Field, field_validator
from torch import nn

from ..training.kernels import Linear

#: AdaIN's epsilon (torch's batch_norm default, which LORD's AdaIN calls)
ADAIN_EPS = 1e-5
#: AdaIN layers of the decoder, each preceded by a x2 upsampling (seed 001 App. 9.3)
ADAIN_LAYERS = 4


class LordConfig(BaseModel):
    """Options of the ``lord`` backbone."""

    model_config = ConfigDict(extra="forbid")
    data_shapes: ClassVar[tuple[tuple[int, int, int], ...]] = ((3, 16, 16),)

    class_dim: int | None = Field(
        None,
        gt=0,
        description="size of the class code; the rest of zdim is the "
        "content code (default: two thirds of zdim, "
        "the paper's 256 of 384)",
    )
    channels: list[int] = Field(
        default_factory=lambda: [64, 128, 256, 256],
        description="encoder conv channels, one stride-2 halving each (the paper's 64, 128, 256, 256)",
    )
    hidden: int = Field(256, gt=0, description="width of the encoders' first two FC layers")
    adain_channels: int = Field(256, gt=0, description="channels of the decoder's AdaIN convolutions")
    last_channels: int = Field(64, gt=0, description="channels of the decoder's Conv5x5 before the output (LORD's 64)")

    @field_validator("channels")
    @classmethod
    def _positive(cls, v: list[int]) -> list[int]:
        if not v or any(c <= 0 for c in v):
            raise ValueError("channels must be a non-empty list of positive integers")
        return v


def adain(x: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor, eps: float = ADAIN_EPS) -> torch.Tensor:
    """Adaptive instance normalisation: ``x`` (B, C, H, W) normalised per sample and channel over H, W
    (biased variance), then scaled by ``gamma`` and shifted by ``beta`` (B, C)."""
    mean = x.mean(dim=(2, 3), keepdim=True)
    var = x.var(dim=(2, 3), keepdim=True, unbiased=False)
    return gamma[:, :, None, None] * (x - mean) / torch.sqrt(var + eps) + beta[:, :, None, None]


def _act() -> nn.Module:
    return nn.LeakyReLU(0.2)


class CodeEncoder(nn.Module):
    """One of the two encoders: convolutions then 3 FC layers to ``2 * code`` (mu, logvar)."""

    def __init__(self, data_shape: tuple[int, int, int], code: int, channels: list[int], hidden: int) -> None:
        super().__init__()
        c, h, w = data_shape
        layers: list[nn.Module] = [nn.Conv2d(c, channels[0], 7, padding=3), _act()]
        for cin, cout in zip(channels, channels[1:] + channels[-1:]):
            layers += [nn.Conv2d(cin, cout, 4, stride=2, padding=1), _act()]
        self.main = nn.Sequential(*layers)
        s = 2 ** len(channels)
        flat = channels[-1] * (h // s) * (w // s)
        self.fc = nn.Sequential(Linear(flat, hidden), _act(), Linear(hidden, hidden), _act(), Linear(hidden, 2 * code))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.main(x).flatten(1))


class LordEncoder(nn.Module):
    """The class and content encoders side by side; output ``[mu_class, mu_content, logvar_class,
    logvar_content]`` (``2*zdim``)."""

    def __init__(self, data_shape, class_dim: int, content_dim: int, channels: list[int], hidden: int) -> None:
        super().__init__()
        self.class_dim, self.content_dim = class_dim, content_dim
        self.class_encoder = CodeEncoder(data_shape, class_dim, channels, hidden)
        self.content_encoder = CodeEncoder(data_shape, content_dim, channels, hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mu_c, logvar_c = self.class_encoder(x).chunk(2, dim=1)
        mu_s, logvar_s = self.content_encoder(x).chunk(2, dim=1)
        return torch.cat([mu_c, mu_s, logvar_c, logvar_s], dim=1)


class LordDecoder(nn.Module):
    """Content code -> 3 FC -> feature map; 4 upsampled convolutions AdaIN-normalised by the class code; 2
    final convolutions. ``class_dim``: the first ``class_dim`` entries of ``z`` are the class code (what
    :mod:`introzoo.translation` reads to swap codes)."""

    def __init__(self, data_shape, class_dim: int, content_dim: int, adain_channels: int, last: int = 64) -> None:
        super().__init__()
        c, h, w = data_shape
        self.class_dim = class_dim
        a = adain_channels
        self.start = (a, h // 2**ADAIN_LAYERS, w // 2**ADAIN_LAYERS)
        cells = self.start[1] * self.start[2]
        self.fc = nn.Sequential(
            Linear(content_dim, cells * max(1, a // 8)),
            _act(),
            Linear(cells * max(1, a // 8), cells * max(1, a // 4)),
            _act(),
            Linear(cells * max(1, a // 4), cells * a),
            _act(),
        )
        self.convs = nn.ModuleList(nn.Conv2d(a, a, 3, padding=1) for _ in range(ADAIN_LAYERS))
        self.modulation = nn.ModuleList(Linear(class_dim, 2 * a) for _ in range(ADAIN_LAYERS))
        self.up = nn.Upsample(scale_factor=2, mode="nearest")
        self.act = _act()
        self.last = nn.Sequential(nn.Conv2d(a, last, 5, padding=2), _act(), nn.Conv2d(last, c, 7, padding=3))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        code, content = z[:, : self.class_dim], z[:, self.class_dim :]
        x = self.fc(content).view(z.shape[0], *self.start)
        for conv, mod in zip(self.convs, self.modulation):
            gamma, beta = mod(code).chunk(2, dim=1)
            x = adain(self.act(conv(self.up(x))), gamma, beta)
        return self.last(x)


def split_dims(config: LordConfig, zdim: int) -> tuple[int, int]:
    """(class_dim, content_dim) of a run with latent size ``zdim``."""
    class_dim = config.class_dim if config.class_dim is not None else max(1, (2 * zdim) // 3)
    if class_dim >= zdim:
        raise ValueError(
            f"the lord backbone splits zdim into a class and a content code: class_dim {class_dim} "
            f"leaves nothing of zdim {zdim} for the content (the paper: --zdim 384 with class_dim=256)"
        )
    return class_dim, zdim - class_dim


def build(config: LordConfig, data_shape: tuple[int, ...], zdim: int) -> tuple[nn.Module, nn.Module]:
    if len(data_shape) != 3:
        raise ValueError(f"the lord backbone needs images (C, H, W), got data of shape {tuple(data_shape)}")
    _, h, w = data_shape
    halvings = max(len(config.channels), ADAIN_LAYERS)
    if h % 2**halvings or w % 2**halvings:
        raise ValueError(
            f"image size {h}x{w} is not divisible by {2**halvings} (the lord backbone halves it "
            f"{len(config.channels)} times in the encoders and doubles it {ADAIN_LAYERS} times "
            f"in the decoder); resize the images, e.g. to 64x64"
        )
    class_dim, content_dim = split_dims(config, zdim)
    enc = LordEncoder(tuple(data_shape), class_dim, content_dim, list(config.channels), config.hidden)
    dec = LordDecoder(tuple(data_shape), class_dim, content_dim, config.adain_channels, config.last_channels)
    return enc, dec
