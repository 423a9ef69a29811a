"""``mlp``: the 2D backbone of the papers (docs/conventions.md, "Backbones").

Encoder: Linear(in, h)-ReLU, ``layers`` x [Linear(h, h)-ReLU], Linear(h, 2*zdim) -> (mu, logvar).
Decoder mirrored: Linear(zdim, h)-ReLU, ``layers`` x [Linear(h, h)-ReLU], Linear(h, in).
``hidden`` as a list gives the widths layer by layer from the input to the latent (``layers`` is then
unused) and the decoder mirrors them: ``hidden=[100,50]`` is Linear(in,100)-ReLU-Linear(100,50)-ReLU-
Linear(50,2*zdim) and Linear(zdim,50)-ReLU-Linear(50,100)-ReLU-Linear(100,in), seed 004's two-moons
network (§3), the default on ``moons``.
The defaults (h = 256, 3 hidden layers) are the official 2D networks; the parameter names
(``net.0``, ``net.2``, ...) load the golden checkpoints' ``encoder.{0..4}`` / ``decoder.{0..4}`` weights
through :func:`load_sequential_weights`.
"""

from __future__ import annotations

import math
from typing import Union

import torch
from pydantic import BaseModel, ConfigDict, Field, PositiveInt, field_validator
from torch import nn

from ..training.kernels import Linear


class MLPConfig(BaseModel):
    """Options of the ``mlp`` backbone."""

    model_config = ConfigDict(extra="forbid")

    hidden: Union[int, list[PositiveInt]] = Field(
        256, description="width of the hidden layers, or their widths from the input on (e.g. [100,50]; decoder mirrored)"
    )
    layers: int = Field(3, ge=0, description="number of hidden Linear(h, h) layers (an int hidden only)")

    @field_validator("hidden")
    @classmethod
    def _positive(cls, v):
        if isinstance(v, int) and v <= 0 or isinstance(v, list) and not v:
            raise ValueError("must be a positive width or a non-empty list of widths")
        return v


def widths(hidden: int | list[int], layers: int) -> list[int]:
    """The hidden widths from the input on: ``[hidden] * (layers + 1)`` for an int, else the list."""
    return list(hidden) if isinstance(hidden, list) else [hidden] * (layers + 1)


def _mlp(n_in: int, n_out: int, sizes: list[int]) -> nn.Sequential:
    mods: list[nn.Module] = []
    for a, b in zip([n_in] + sizes[:-1], sizes):
        mods += [Linear(a, b), nn.ReLU(inplace=True)]
    mods.append(Linear(sizes[-1], n_out))
    return nn.Sequential(*mods)


class MLPEncoder(nn.Module):
    def __init__(self, data_shape: tuple[int, ...], zdim: int, hidden: int | list[int], layers: int) -> None:
        super().__init__()
        self.net = _mlp(math.prod(data_shape), 2 * zdim, widths(hidden, layers))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.reshape(x.shape[0], -1))


class MLPDecoder(nn.Module):
    def __init__(self, data_shape: tuple[int, ...], zdim: int, hidden: int | list[int], layers: int) -> None:
        super().__init__()
        self.data_shape = tuple(data_shape)
        self.net = _mlp(zdim, math.prod(data_shape), widths(hidden, layers)[::-1])

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z).reshape((z.shape[0],) + self.data_shape)


def build(config: MLPConfig, data_shape: tuple[int, ...], zdim: int) -> tuple[nn.Module, nn.Module]:
    return (
        MLPEncoder(data_shape, zdim, config.hidden, config.layers),
        MLPDecoder(data_shape, zdim, config.hidden, config.layers),
    )


build.packable = True  # trains in a pack (introzoo.packing.loop)


def load_sequential_weights(module: nn.Module, state: dict[str, torch.Tensor], prefix: str) -> None:
    """Load ``{prefix}.{i}.weight/bias`` (i counting Linear layers only) into an MLP encoder/decoder."""
    linears = [m for m in module.modules() if isinstance(m, nn.Linear)]
    with torch.no_grad():
        for i, lin in enumerate(linears):
            lin.weight.copy_(state[f"{prefix}.{i}.weight"])
            lin.bias.copy_(state[f"{prefix}.{i}.bias"])
