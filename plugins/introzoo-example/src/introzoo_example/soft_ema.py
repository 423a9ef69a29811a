"""``soft-ema``: Soft-IntroVAE whose re-decoded terms come from an exponential moving average of the
decoder, a smooth variant of the official bootstrap's periodic copies (introzoo's ``soft-boot``).

After every iteration the target decoder's parameters become ``tau * target + (1 - tau) * decoder``
(Polyak averaging; its buffers are copied); it is never trained. The losses are ``soft-boot``'s with
this target. Written only with the parts of :class:`introzoo.objectives.soft.SoftIntroVAE` that
introzoo documents for variants (``redecode``, ``detach_redecoded``, ``step``), and it takes a
dataset's ``soft`` defaults (``defaults_from``).
"""

from __future__ import annotations

import copy
from typing import ClassVar

import torch
from pydantic import Field

from introzoo.objectives.soft import SoftConfig, SoftIntroVAE


class SoftEMAConfig(SoftConfig):
    defaults_from: ClassVar[str] = "soft"  # a dataset's soft defaults apply

    tau: float = Field(0.999, ge=0, lt=1, description="decay of the target decoder's moving average")


class SoftEMA(SoftIntroVAE):
    name = "soft-ema"
    detach_redecoded: ClassVar[bool] = False  # as the bootstrap: the fakes' reconstructions pass gradients

    def __init__(self, config: SoftEMAConfig, model, regularizers=None, train=None) -> None:
        super().__init__(config, model, regularizers, train)
        self.target = copy.deepcopy(model.decoder).requires_grad_(False)

    def redecode(self, z: torch.Tensor) -> torch.Tensor:
        return self.target(z)

    def step(self, x: torch.Tensor, iteration: int) -> dict[str, torch.Tensor]:
        losses = super().step(x, iteration)  # warm-up or soft's two players
        with torch.no_grad():
            for t, p in zip(self.target.parameters(), self.model.decoder.parameters()):
                t.lerp_(p, 1.0 - self.config.tau)
            for t, b in zip(self.target.buffers(), self.model.decoder.buffers()):
                t.copy_(b)
        return losses

    def state_dict(self) -> dict:
        return {**super().state_dict(), "target": self.target.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.target.load_state_dict(state["target"])


def build(config: SoftEMAConfig, model, regularizers=None, train=None) -> SoftEMA:
    return SoftEMA(config, model, regularizers, train)
