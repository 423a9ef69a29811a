"""``mlp``: the 2D backbone of the papers (SPEC §5).

Encoder: Linear(in, h)-ReLU, ``layers`` x [Linear(h, h)-ReLU], Linear(h, 2*zdim) -> (mu, logvar).
Decoder mirrored: Linear(zdim, h)-ReLU, ``layers`` x [Linear(h, h)-ReLU], Linear(h, in).
The defaults (h = 256, 3 hidden layers) are the official 2D networks; the parameter names
(``net.0``, ``net.2``, ...) load the golden checkpoints' ``encoder.{0..4}`` / ``decoder.{0..4}`` weights
through :func:`load_sequential_weights`.
"""

from __future__ import annotations

import math

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn


class MLPConfig(BaseModel):
    """Options of the ``mlp`` backbone."""

    model_config = ConfigDict(extra="forbid")

    hidden: int = Field(256, gt=0, description="width of the hidden layers")
    layers: int = Field(3, ge=0, description="number of hidden Linear(h, h) layers")


def _mlp(n_in: int, n_out: int, hidden: int, layers: int) -> nn.Sequential:
    mods: list[nn.Module] = [nn.Linear(n_in, hidden), nn.ReLU(inplace=True)]
    for _ in range(layers):
        mods += [nn.Linear(hidden, hidden), nn.ReLU(inplace=True)]
    mods.append(nn.Linear(hidden, n_out))
    return nn.Sequential(*mods)


class MLPEncoder(nn.Module):
    def __init__(self, data_shape: tuple[int, ...], zdim: int, hidden: int, layers: int) -> None:
        super().__init__()
        self.net = _mlp(math.prod(data_shape), 2 * zdim, hidden, layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.reshape(x.shape[0], -1))


class MLPDecoder(nn.Module):
    def __init__(self, data_shape: tuple[int, ...], zdim: int, hidden: int, layers: int) -> None:
        super().__init__()
        self.data_shape = tuple(data_shape)
        self.net = _mlp(zdim, math.prod(data_shape), hidden, layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z).reshape((z.shape[0],) + self.data_shape)


def build(config: MLPConfig, data_shape: tuple[int, ...], zdim: int) -> tuple[nn.Module, nn.Module]:
    return (MLPEncoder(data_shape, zdim, config.hidden, config.layers),
            MLPDecoder(data_shape, zdim, config.hidden, config.layers))


build.packable = True  # trains in a pack (introzoo.pack)


def load_sequential_weights(module: nn.Module, state: dict[str, torch.Tensor], prefix: str) -> None:
    """Load ``{prefix}.{i}.weight/bias`` (i counting Linear layers only) into an MLP encoder/decoder."""
    linears = [m for m in module.modules() if isinstance(m, nn.Linear)]
    with torch.no_grad():
        for i, lin in enumerate(linears):
            lin.weight.copy_(state[f"{prefix}.{i}.weight"])
            lin.bias.copy_(state[f"{prefix}.{i}.bias"])
