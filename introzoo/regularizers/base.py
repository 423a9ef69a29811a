"""The regularizer contract: act on an objective at declared points only.

- :meth:`Regularizer.check`: refuse a prior it cannot work with (called when the run is built).
- :meth:`Regularizer.encoder_loss`: a term added to the encoder loss ``L_E``.
- :meth:`Regularizer.on_warmup_end`: called once when the VAE warm-up ends (e.g. to fix a range).
"""

from __future__ import annotations

import torch


class Regularizer:
    name: str = ""

    def check(self, prior) -> None:
        """Raise :class:`introzoo.errors.UsageError` if this regularizer cannot act on ``prior``."""

    def encoder_loss(self, model, mu: torch.Tensor, logvar: torch.Tensor, z: torch.Tensor) -> torch.Tensor | None:
        """Extra term for L_E given the real batch's posterior; ``None`` for none."""
        return None

    def on_warmup_end(self, model) -> None:
        """Called once at the first adversarial iteration."""

    def report(self, model) -> dict:
        """What the run's ``metrics.json`` records about this regularizer at the end of training."""
        return {}
