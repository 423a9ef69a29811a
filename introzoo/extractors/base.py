"""The feature-extractor contract for the FID metrics (docs/conventions.md, "Image metrics").

``factory(config, dataset, device)`` returns an :class:`Extractor`: an ``nn.Module`` in eval mode mapping
float images ``(B, C, H, W)`` in [0, 1] to features ``(B, num_features)``, with ``info`` (what the metric
records next to its value: e.g. the classifier's test accuracy, the weights file). FID values carry the
extractor's name (``fid_gen@inception``, ``fid_gen@classifier``) so results of different extractors never
mix in a table. A factory may also take ``progress`` and ``chunk`` (keywords): the evaluation's reporter of
phases and its most images per pass (:mod:`introzoo.metrics.stream`), for an extractor that trains or
computes at build time; a factory without them is called without them.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from ..paths import cache_dir  # noqa: F401 - the extractors' cache root, kept importable here


class Extractor(nn.Module):
    num_features: int = 0

    def __init__(self) -> None:
        super().__init__()
        self.info: dict[str, Any] = {}
