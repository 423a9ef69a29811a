"""Class-conditional networks and VAE (seed 001 §6.3, the class-conditional CIFAR-10 model; docs/images.md,
"Class-conditional models").

Wired as the official code's ``conditional`` networks (``soft_intro_vae/train_soft_intro_vae.py``,
``Encoder``/``Decoder`` with ``conditional=True, cond_dim``): the label enters as its one-hot vector ``o(y)``
(``cond_dim`` = the number of classes K),

- encoder: ``fc(concat(main(x).flatten(1), o(y)))``, the FC layer widened by K inputs
  (``nn.Linear(num_fc_features + cond_dim, 2 * zdim)``);
- decoder: ``main(fc(concat(z, o(y))))``, its first layer taking ``zdim + K`` inputs
  (``nn.Linear(zdim + cond_dim, num_fc_features)``).

Backbone-agnostic: the decoder is the backbone's own decoder built for a latent of ``zdim + K``; the
encoder of an image backbone with the :class:`~introzoo.backbones.base.ConvNet` parts and a linear ``fc``
(``resnet``, ``conv``) gets the official wiring above, any other encoder the one-hot as K extra input
channels (constant planes; extra entries for vector data).

Labels are given to the model, not to the objective: :meth:`ConditionalVAE.condition` sets the labels of
the rows that go through ``encode``/``decode`` next (the trainer sets each batch's, so a Soft-IntroVAE step
encodes and decodes real, reconstructed and fake images, ``z_p ~ p(z)`` decoded with the batch's labels,
with the labels of its batch), and every objective trains unchanged. A decoder given more latents than
labels repeats the labels (``labels.repeat(t)``: the order of ``x.repeat(t, ...)``, as importance
samples are laid out); without labels, ``decode`` draws them from the training label distribution and
``encode`` refuses (an image's label cannot be guessed).
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch
from torch import nn
from torch.nn import functional as F

from ..backbones.base import ConvNet
from ..errors import UsageError
from ..model import VAE


def one_hot(y: torch.Tensor, k: int, like: torch.Tensor) -> torch.Tensor:
    """The one-hot rows ``(B, k)`` of integer labels ``y``, in ``like``'s dtype and device."""
    return F.one_hot(y.to(device=like.device, dtype=torch.long), k).to(like.dtype)


class ConditionalEncoder(nn.Module):
    """``E(x, y)``: the one-hot before the FC layer (``wiring="fc"``) or as extra input channels
    (``wiring="channels"``); outputs the ``2*zdim`` numbers of the backbone's encoder."""

    def __init__(self, net: nn.Module, num_classes: int, wiring: str) -> None:
        super().__init__()
        self.net, self.num_classes, self.wiring = net, num_classes, wiring

    @staticmethod
    def wrap(build, data_shape: tuple[int, ...], zdim: int, num_classes: int) -> "ConditionalEncoder":
        """The backbone's encoder made conditional; ``build(data_shape, zdim) -> (encoder, decoder)``."""
        enc, _ = build(tuple(data_shape), zdim)
        fc = getattr(enc, "fc", None)
        if isinstance(enc, ConvNet) and isinstance(fc, nn.Linear):
            wide = type(fc)(fc.in_features + num_classes, fc.out_features, bias=fc.bias is not None)
            enc.fc = wide.to(fc.weight.dtype)
            return ConditionalEncoder(enc, num_classes, "fc")
        shape = (data_shape[0] + num_classes, *data_shape[1:])
        return ConditionalEncoder(build(shape, zdim)[0], num_classes, "channels")

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        o = one_hot(y, self.num_classes, x)
        if self.wiring == "fc":
            return self.net.fc(torch.cat([self.net.main(x).flatten(1), o], dim=1))
        planes = o.view(*o.shape, *([1] * (x.dim() - 2))).expand(-1, -1, *x.shape[2:])
        return self.net(torch.cat([x, planes], dim=1))


class ConditionalDecoder(nn.Module):
    """``D(z, y) = net(concat(z, o(y)))``, ``net`` the backbone's decoder for a latent of ``zdim + K``."""

    def __init__(self, net: nn.Module, num_classes: int) -> None:
        super().__init__()
        self.net, self.num_classes = net, num_classes

    def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([z, one_hot(y, self.num_classes, z)], dim=1))


class ConditionalVAE(VAE):
    """A :class:`~introzoo.model.VAE` whose encoder and decoder take the labels set by :meth:`condition`.
    ``label_probs`` (a buffer, saved with the model): the training split's class frequencies, from which
    ``decode`` draws labels when none are set (prior samples, ``fid_gen``)."""

    def __init__(
        self,
        encoder: ConditionalEncoder,
        decoder: ConditionalDecoder,
        prior,
        data_shape,
        zdim: int,
        label_probs: torch.Tensor,
    ) -> None:
        super().__init__(encoder, decoder, prior, data_shape, zdim)
        self.num_classes = int(label_probs.numel())
        self.register_buffer("label_probs", label_probs.double())
        self.labels: torch.Tensor | None = None

    def condition(self, labels: torch.Tensor | None) -> None:
        """The labels of the rows encoded and decoded from now on (``None``: none)."""
        if labels is not None:
            labels = torch.as_tensor(labels).long().reshape(-1)
            bad = labels[(labels < 0) | (labels >= self.num_classes)]
            if bad.numel():
                raise UsageError(f"class {int(bad[0])} is out of range: this model has classes 0..{self.num_classes - 1}")
        self.labels = labels

    @contextmanager
    def conditioned(self, labels: torch.Tensor | None) -> Iterator[None]:
        """``with model.conditioned(y):`` labels ``y`` for the block, the earlier ones restored after."""
        before = self.labels
        self.condition(labels)
        try:
            yield
        finally:
            self.labels = before

    def draw_labels(self, n: int) -> torch.Tensor:
        """``n`` labels from the training label distribution (torch's global generator)."""
        return torch.multinomial(self.label_probs.float().cpu(), n, replacement=True)

    def _labels_for(self, rows: int, what: str) -> torch.Tensor:
        y = self.labels
        if y is None or rows % y.numel():
            have = "no labels are set" if y is None else f"{y.numel()} labels are set"
            raise UsageError(f"this class-conditional model {what} {rows} rows but {have}: use model.conditioned(labels)")
        return y.repeat(rows // y.numel())

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, logvar = self.encoder(x, self._labels_for(x.shape[0], "encodes")).chunk(2, dim=1)
        return mu, logvar

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        y = self.draw_labels(z.shape[0]) if self.labels is None else self._labels_for(z.shape[0], "decodes")
        return self.decoder(z, y)

    @torch.no_grad()
    def sample(self, n: int, labels: torch.Tensor | None = None) -> torch.Tensor:
        """``n`` decoded prior draws with ``labels`` (default: drawn from the training distribution)."""
        z = self.prior.sample(n)
        with self.conditioned(self.draw_labels(n) if labels is None else labels):
            return self.decode(z)


def conditioned(model: nn.Module, labels: torch.Tensor | None):
    """``model.conditioned(labels)`` for a class-conditional model, a no-op context otherwise (what the
    metrics and figures wrap their passes over labelled images in)."""
    from contextlib import nullcontext

    return model.conditioned(labels) if isinstance(model, ConditionalVAE) else nullcontext()


def first_rows(model: nn.Module, n: int):
    """The labels of the first ``n`` rows of the current batch for the block (a figure shows ``x[:n]``); a
    no-op context for an unconditional model or one without labels."""
    from contextlib import nullcontext

    labels = getattr(model, "labels", None) if isinstance(model, ConditionalVAE) else None
    return nullcontext() if labels is None else model.conditioned(labels[:n])
