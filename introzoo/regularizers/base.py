"""The regularizer contract: act on an objective at declared points only.

- :meth:`Regularizer.check`: refuse a prior it cannot work with (called when the run is built).
- :meth:`Regularizer.bind`: called once when the objective is built, the model already on its device;
  a regularizer with a network of its own (FactorVAE's discriminator) builds it and its optimiser here.
- :meth:`Regularizer.kl_term`: the term that stands in the objective in place of the real batch's
  ``KL(x)`` (batch mean), for regularizers that replace or reweight it (``replaces_kl = True``).
- :meth:`Regularizer.encoder_loss`: a term added to the encoder loss ``L_E``.
- :meth:`Regularizer.after_step`: called after every training step (a regularizer's own optimiser steps
  here); returns named scalars for the history.
- :meth:`Regularizer.on_warmup_end`: called once when the VAE warm-up ends (e.g. to fix a range).
- :attr:`Regularizer.min_batch`: the smallest batch its terms can be computed on (beta-TCVAE's
  estimator: 2); a run with a smaller batch is refused before it starts.
- :meth:`Regularizer.parameters`, :meth:`Regularizer.state_dict`, :meth:`Regularizer.load_state_dict`:
  its own trainable parameters (never in the model's parameter groups) and its checkpoint state, which
  the objective's ``state_dict`` holds.

How the objectives compose with :meth:`kl_term` (one regularizer at most may replace the KL):

- ``vae``: ``beta_rec*REC(x, x_r) + beta_kl*kl_term`` instead of ``beta_rec*REC + beta_kl*KL(x)``;
- ``soft``, ``soft-prior``, ``intro``: the real data's ``KL(x)`` in the encoder's loss ``L_E`` is replaced
  (inside the ``s`` scaling of ``soft``); the fakes' and reconstructions' KLs (the exp-ELBO, the hinge,
  the decoder's terms) and ``soft-prior``'s prior-fitting ``KL(q.detach() || p)`` stay;
- the VAE warm-up of the introspective objectives is a plain VAE: no regularizer term in it.

``beta_kl`` of the objective multiplies the replacement as it multiplied the KL (1 by default).
"""

from __future__ import annotations

from typing import Any

import torch


class Regularizer:
    name: str = ""
    #: whether :meth:`kl_term` replaces the objective's real-data KL (at most one regularizer per run)
    replaces_kl: bool = False
    #: training points of the run, for estimators that need the data set's size (beta-TCVAE): the
    #: dataset's ``n_train``, or for a generator the points a run draws (iterations x batch size); set by
    #: the trainer before the objective is built, 0 when unknown (an objective built by hand)
    data_size: int = 0
    #: the smallest batch the regularizer's terms can be computed on (an estimate from the batch's
    #: samples); a run with a smaller batch is refused before anything is written
    #: (:func:`introzoo.config.check_regularizers`)
    min_batch: int = 1

    def check(self, prior) -> None:
        """Raise :class:`introzoo.errors.UsageError` if this regularizer cannot act on ``prior``."""

    def bind(self, model) -> None:
        """Called once when the objective is built (``model`` on its device): build own networks here."""

    def kl_term(self, model, mu: torch.Tensor, logvar: torch.Tensor, z: torch.Tensor, iteration: int) -> torch.Tensor | None:
        """The scalar that replaces the batch-mean real-data ``KL(x)`` of the objective, given the real
        batch's posterior and its training sample ``z``; ``None`` to keep the KL."""
        return None

    def encoder_loss(self, model, mu: torch.Tensor, logvar: torch.Tensor, z: torch.Tensor) -> torch.Tensor | None:
        """Extra term for L_E given the real batch's posterior; ``None`` for none."""
        return None

    def after_step(self, model, x: torch.Tensor, iteration: int) -> dict[str, torch.Tensor] | None:
        """Called after each training step of the objective; named detached scalars for the history."""
        return None

    def on_warmup_end(self, model) -> None:
        """Called once at the first adversarial iteration."""

    def parameters(self) -> list[torch.nn.Parameter]:
        """This regularizer's own trainable parameters (not the model's, never in its groups)."""
        return []

    def state_dict(self) -> dict[str, Any]:
        """Checkpoint state; by default every tensor attribute (``clip-logvar``'s range)."""
        return {k: v.detach().clone() for k, v in vars(self).items() if isinstance(v, torch.Tensor)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`; tensors in place where they exist (closures installed at the end of
        the warm-up hold them)."""
        for k, v in state.items():
            cur = getattr(self, k, None)
            if isinstance(cur, torch.Tensor) and isinstance(v, torch.Tensor) and cur.shape == v.shape:
                with torch.no_grad():
                    cur.copy_(v)
            else:
                setattr(self, k, v)

    def report(self, model) -> dict:
        """What the run's ``metrics.json`` records about this regularizer at the end of training."""
        return {}
