"""What a backbone may declare beyond ``factory(config, data_shape, zdim) -> (encoder, decoder)``.

A backbone's encoder and decoder are plain ``nn.Module``s. One capability is optional structure,
declared by having the members (a runtime-checkable ``typing.Protocol``, like the priors' capabilities):

- :class:`ConvNet`: an image encoder or decoder in the two parts a pack stacks (:mod:`introzoo.packing.conv`,
  docs/packing.md); ``conv`` and ``resnet`` have them.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from torch import nn


@runtime_checkable
class ConvNet(Protocol):
    """An image encoder that computes ``fc(main(x).flatten(1))``, or a decoder that computes
    ``main(fc(z).view(B, *feature_shape))``: ``main`` the convolutional part (its modules act per
    channel), ``fc`` the linear part, ``feature_shape`` the ``(channels, height, width)`` of the feature
    map between them. What a pack needs of an image backbone with ``build.packable = True``; one
    without these members does not pack."""

    main: nn.Module
    fc: nn.Module
    feature_shape: tuple[int, int, int]
