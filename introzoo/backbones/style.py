"""``style``: the style-based encoder/decoder of Style Soft-IntroVAE (seed 001 §6.3 and Appendix 9.2.2),
grown progressively from 4x4 (:mod:`introzoo.training.progressive`); following the official
``style_soft_intro_vae/net.py`` and ``model.py`` (ALAE's ``EncoderDefault``, ``GeneratorDefault``,
``MappingToLatent``, ``MappingFromLatent``, ``lreq.py``).

Encoder (ALAE-style): a ``FromRGB`` 1x1 convolution at the input resolution, then one block per halving.
Each block is Conv3x3-LReLU, its **style** ``[mean, std]`` of every channel over the pixels, InstanceNorm,
Blur-Conv3x3-AvgPool2-LReLU, the second style, InstanceNorm. Each style goes through its own learned
linear map to the style size; the encoder's ``w`` is the **sum** of these mapped styles over the blocks
(two per block), and 3 fully connected layers map ``w`` to ``2*zdim`` numbers (mu, then logvar).

Decoder (StyleGAN-style): ``w = F(pixel_norm(z))`` through ``mapping_layers`` fully connected layers (8);
from a learned constant 4x4 map, one block per doubling: (nearest x2, Conv3x3, Blur), noise, bias, LReLU,
**AdaIN**, Conv3x3, noise, bias, LReLU, AdaIN, where ``AdaIN(x, w) = (1 + y_s) * IN(x) + y_b`` with
``(y_s, y_b)`` a learned linear map of ``w`` (one per AdaIN; every layer gets the same ``w``), then a
``ToRGB`` 1x1 convolution. No output activation (pixels are compared in [0, 1], as for ``resnet``).

Progressive growing: :meth:`StyleEncoder.set_stage` / :meth:`StyleDecoder.set_stage` ``(level, alpha)``:
at level ``s`` the networks take / produce ``2^(s+2)`` pixels; with ``alpha < 1`` the newest block is
blended in as in the official ``encode2`` / ``decode2``: the encoder lerps its new block's features with
``FromRGB`` of the 2x average-pooled input (and weights the new block's styles by ``alpha``), the decoder
lerps its new ``ToRGB`` output with the previous level's, upsampled (nearest). A fresh build is at the full
resolution with ``alpha = 1``.

All weights are equalized-learning-rate layers (``lreq.py``: ``N(0, 1/lrmul)`` weights scaled at run
time by ``gain * lrmul / sqrt(fan_in)``; the explicit form, with plain Adam). Defaults are the official
configurations' (latent and style 512, 8 mapping layers, channels ``min(512, 64 * 2^i)``); where introzoo
differs from the official code (no style mixing or truncation, unfused down/upsampling, noise only in
training mode) is listed in docs/images.md, "Style backbone and progressive growing".
"""

from __future__ import annotations

import math
from typing import ClassVar

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

SQRT2 = math.sqrt(2.0)


class StyleConfig(BaseModel):
    """Options of the ``style`` backbone."""

    model_config = ConfigDict(extra="forbid")
    #: the contract checks build it for these shapes (the default channels stay small at 16x16)
    data_shapes: ClassVar[tuple[tuple[int, int, int], ...]] = ((3, 16, 16),)

    style: int = Field(512, gt=0, description="style size: the encoder's w and the decoder's w (512)")
    mapping_layers: int = Field(8, gt=0, description="fully connected layers of the decoder's z -> w mapping (8)")
    encoder_mapping_layers: int = Field(3, gt=0, description="fully connected layers of the encoder's w -> (mu, logvar) (3)")
    start_channels: int = Field(64, gt=0, description="channels at the full resolution, doubled per halving (64)")
    max_channels: int = Field(512, gt=0, description="the most channels of any block (512)")
    noise: bool = Field(True, description="per-pixel noise inputs of the decoder in training mode (true)")


class EqualLinear(nn.Module):
    """``lreq.Linear``: ``y = x (w * gain * lrmul / sqrt(in))^T + b * lrmul``, ``w ~ N(0, 1/lrmul)``, ``b = 0``."""

    def __init__(self, cin: int, cout: int, gain: float = SQRT2, lrmul: float = 1.0) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.normal(0.0, 1.0 / lrmul, size=(cout, cin)))
        self.bias = nn.Parameter(torch.zeros(cout))
        self.scale, self.lrmul = gain * lrmul / math.sqrt(cin), lrmul

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight * self.scale, self.bias * self.lrmul)


class EqualConv2d(nn.Module):
    """``lreq.Conv2d`` (stride 1, "same" padding): weights scaled by ``gain / sqrt(k * k * cin)``."""

    def __init__(self, cin: int, cout: int, k: int, gain: float = SQRT2, bias: bool = True) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.normal(0.0, 1.0, size=(cout, cin, k, k)))
        self.bias = nn.Parameter(torch.zeros(cout)) if bias else None
        self.scale, self.pad = gain / math.sqrt(cin * k * k), k // 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight * self.scale, self.bias, padding=self.pad)


class Blur(nn.Module):
    """The official 3x3 binomial blur ``[1, 2, 1]^T [1, 2, 1] / 16``, per channel."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer(
            "kernel",
            torch.tensor([[[[1 / 16, 2 / 16, 1 / 16], [2 / 16, 4 / 16, 2 / 16], [1 / 16, 2 / 16, 1 / 16]]]]),
            persistent=False,
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.kernel.expand(x.shape[1], 1, 3, 3), padding=1, groups=x.shape[1])


def style_stats(x: torch.Tensor) -> torch.Tensor:
    """The encoder's style of a feature map: ``[mean, std]`` of each channel over its pixels, ``(B, 2C)``
    (the biased std, as the official ``EncodeBlock``)."""
    m = x.mean(dim=(2, 3), keepdim=True)
    std = (x - m).pow(2).mean(dim=(2, 3), keepdim=True).sqrt()
    return torch.cat((m, std), dim=1).flatten(1)


def instance_norm(x: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """``(x - mean) / sqrt(var + eps)`` per sample and channel over the pixels (biased variance)."""
    m = x.mean(dim=(2, 3), keepdim=True)
    return (x - m) * torch.rsqrt((x - m).pow(2).mean(dim=(2, 3), keepdim=True) + eps)


def adain(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``AdaIN(x, y) = (1 + y_s) * IN(x) + y_b`` with ``y = [y_s, y_b]`` of shape ``(B, 2C)`` (the
    official ``style_mod`` after ``InstanceNorm2d(eps=1e-8)``)."""
    ys, yb = y.view(y.shape[0], 2, x.shape[1], 1, 1).unbind(1)
    return (1 + ys) * instance_norm(x) + yb


def pixel_norm(z: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    return z * torch.rsqrt(z.pow(2).mean(dim=1, keepdim=True) + eps)


def mapping(cin: int, width: int, cout: int, layers: int) -> nn.Sequential:
    """``layers`` x (EqualLinear(lrmul 0.1) - LReLU(0.2)), the last one included (official ``MappingBlock``)."""
    mods: list[nn.Module] = []
    for i in range(layers):
        mods += [EqualLinear(cin if i == 0 else width, cout if i == layers - 1 else width, lrmul=0.1), nn.LeakyReLU(0.2)]
    return nn.Sequential(*mods)


class EncodeBlock(nn.Module):
    def __init__(self, cin: int, cout: int, style: int) -> None:
        super().__init__()
        self.conv_1, self.bias_1 = EqualConv2d(cin, cin, 3, bias=False), nn.Parameter(torch.zeros(1, cin, 1, 1))
        self.blur = Blur()
        self.conv_2, self.bias_2 = EqualConv2d(cin, cout, 3, bias=False), nn.Parameter(torch.zeros(1, cout, 1, 1))
        self.style_1, self.style_2 = EqualLinear(2 * cin, style), EqualLinear(2 * cout, style)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = F.leaky_relu(self.conv_1(x) + self.bias_1, 0.2)
        s1 = style_stats(x)
        x = F.avg_pool2d(self.conv_2(self.blur(instance_norm(x, 1e-5))), 2)
        x = F.leaky_relu(x + self.bias_2, 0.2)
        s2 = style_stats(x)
        return instance_norm(x, 1e-5), self.style_1(s1), self.style_2(s2)


class DecodeBlock(nn.Module):
    def __init__(self, cin: int, cout: int, style: int, first: bool, noise: bool) -> None:
        super().__init__()
        self.conv_1 = None if first else EqualConv2d(cin, cout, 3, bias=False)
        self.blur = Blur()
        self.conv_2 = EqualConv2d(cout, cout, 3, bias=False)
        self.noise_1 = nn.Parameter(torch.zeros(1, cout, 1, 1)) if noise else None
        self.noise_2 = nn.Parameter(torch.zeros(1, cout, 1, 1)) if noise else None
        self.bias_1, self.bias_2 = nn.Parameter(torch.zeros(1, cout, 1, 1)), nn.Parameter(torch.zeros(1, cout, 1, 1))
        self.style_1, self.style_2 = EqualLinear(style, 2 * cout, gain=1.0), EqualLinear(style, 2 * cout, gain=1.0)

    def _noise(self, x: torch.Tensor, weight: nn.Parameter | None) -> torch.Tensor:
        if weight is None or not self.training:
            return x
        return x + weight * torch.randn(x.shape[0], 1, x.shape[2], x.shape[3], device=x.device, dtype=x.dtype)

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        if self.conv_1 is not None:
            x = self.blur(self.conv_1(F.interpolate(x, scale_factor=2, mode="nearest")))
        x = adain(F.leaky_relu(self._noise(x, self.noise_1) + self.bias_1, 0.2), self.style_1(w))
        x = self.conv_2(x)
        return adain(F.leaky_relu(self._noise(x, self.noise_2) + self.bias_2, 0.2), self.style_2(w))


class Staged(nn.Module):
    """The stage of a progressively grown network: ``level`` (``2^(level+2)`` pixels) and ``alpha``."""

    levels: int

    def set_stage(self, level: int, alpha: float = 1.0) -> None:
        if not 0 <= level < self.levels:
            raise ValueError(f"level {level} is outside 0..{self.levels - 1} ({4}..{self.resolution(self.levels - 1)} px)")
        if not 0.0 <= alpha <= 1.0 or (level == 0 and alpha != 1.0):
            raise ValueError(f"alpha {alpha} must be in [0, 1] (and 1 at level 0)")
        self.level, self.alpha = int(level), float(alpha)

    @staticmethod
    def resolution(level: int) -> int:
        return 2 ** (level + 2)


def channel_counts(levels: int, start: int, most: int) -> list[int]:
    """Channels of the feature maps from the full resolution down to 4x4 and one more halving (the
    official ``min(maxf, startf * 2^i)``): ``levels + 1`` counts."""
    return [min(most, start * 2**i) for i in range(levels + 1)]


class StyleEncoder(Staged):
    def __init__(self, data_shape: tuple[int, int, int], zdim: int, cfg: StyleConfig) -> None:
        super().__init__()
        c, self.levels = data_shape[0], levels_of(data_shape)
        ch = channel_counts(self.levels, cfg.start_channels, cfg.max_channels)
        # block i runs at 2^(levels + 1 - i) pixels (i = 0: the full resolution; the last one at 4x4)
        self.from_rgb = nn.ModuleList(EqualConv2d(c, ch[i], 1) for i in range(self.levels))
        self.blocks = nn.ModuleList(EncodeBlock(ch[i], ch[i + 1], cfg.style) for i in range(self.levels))
        self.mapping = mapping(cfg.style, cfg.style, 2 * zdim, cfg.encoder_mapping_layers)
        self.style_size = cfg.style
        self.set_stage(self.levels - 1)

    def _rgb(self, i: int, x: torch.Tensor) -> torch.Tensor:
        return F.leaky_relu(F.leaky_relu(self.from_rgb[i](x), 0.2), 0.2)  # FromRGB's LReLU, then encode's

    def styles(self, x: torch.Tensor) -> torch.Tensor:
        """``w``: the sum of every active block's two mapped styles (the newest block's weighted by
        ``alpha`` while it is blended in), ``(B, style)``."""
        first = self.levels - 1 - self.level
        h, s1, s2 = self.blocks[first](self._rgb(first, x))
        w = s1 + s2
        if self.alpha < 1.0:
            w = w * self.alpha
            h = torch.lerp(self._rgb(first + 1, F.avg_pool2d(x, 2)), h, self.alpha)
        for block in self.blocks[first + 1 :]:
            h, s1, s2 = block(h)
            w = w + s1 + s2
        return w

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mapping(self.styles(x))


class StyleDecoder(Staged):
    def __init__(self, data_shape: tuple[int, int, int], zdim: int, cfg: StyleConfig) -> None:
        super().__init__()
        c, self.levels = data_shape[0], levels_of(data_shape)
        ch = channel_counts(self.levels, cfg.start_channels, cfg.max_channels)[: self.levels][::-1]  # 4x4 first
        self.mapping = mapping(zdim, cfg.style, cfg.style, cfg.mapping_layers)
        self.const = nn.Parameter(torch.ones(1, ch[0], 4, 4))
        self.blocks = nn.ModuleList(
            DecodeBlock(ch[max(i - 1, 0)], ch[i], cfg.style, i == 0, cfg.noise) for i in range(self.levels)
        )
        self.to_rgb = nn.ModuleList(EqualConv2d(ch[i], c, 1, gain=0.03) for i in range(self.levels))
        self.set_stage(self.levels - 1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        w = self.mapping(pixel_norm(z))
        h = self.const.expand(z.shape[0], -1, -1, -1)
        for block in self.blocks[: self.level]:
            h = block(h, w)
        prev = self.to_rgb[self.level - 1](h) if self.alpha < 1.0 else None
        y = self.to_rgb[self.level](self.blocks[self.level](h, w))
        if prev is not None:
            y = torch.lerp(F.interpolate(prev, scale_factor=2, mode="nearest"), y, self.alpha)
        return y


def levels_of(data_shape: tuple[int, ...]) -> int:
    """Stages from 4x4 to the image size (a square power of two, at least 4): ``log2(size) - 1``."""
    if len(data_shape) != 3:
        raise ValueError(f"the style backbone needs images (C, H, W), got data of shape {tuple(data_shape)}")
    _, h, w = data_shape
    if h != w or h < 4 or h & (h - 1):
        raise ValueError(
            f"the style backbone needs square images whose side is a power of two from 4 (4, 8, ..., 256, ...), got {h}x{w}"
        )
    return int(math.log2(h)) - 1


def build(config: StyleConfig, data_shape: tuple[int, ...], zdim: int) -> tuple[nn.Module, nn.Module]:
    levels_of(tuple(data_shape))
    return StyleEncoder(tuple(data_shape), zdim, config), StyleDecoder(tuple(data_shape), zdim, config)


build.packable = False
