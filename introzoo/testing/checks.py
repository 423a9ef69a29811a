"""Contract checks: what every component of a kind must do, run on tiny random data in seconds.

Each ``check_<kind>(name, options=None, ...)`` builds the registered component with its default
options (``options`` override them), checks it and raises ``AssertionError`` with a message saying what
is wrong and what was expected. A component that needs options nobody gave is skipped with that
reason; so is a dataset whose data is not available here (it raises ``UsageError``) and a metric that
declares ``heavy = True``. The checks (details in each docstring and in ``docs/plugins.md``):

- every component: a closed config with a description per option, a doc line, a spec-safe name, and a
  default config that survives the ``config.json`` round trip;
- prior: shapes, ``log_prob`` is the density of ``sample`` (histogram of 100,000 draws against
  ``exp(log_prob)`` integrated over the same cells), ``kl`` against an independent Monte Carlo estimate,
  gradient routing (``stop_gradient``, ``sample(with_grad=True)``), checkpoint round trip, the flags
  and capabilities it declares (``Mixture`` components reproduce ``log_prob``, ...);
- objective: finite detached losses; one step changes the encoder and the decoder and nothing the
  objective has no optimiser for, nor the batch; a checkpoint loaded into a fresh build continues
  identically; all of it under ``--precision`` fp32, bf16 and fp16, and the losses go through
  ``self.backward`` and the optimisers through ``self.step_optimizers`` (a loss scale of 2^12 changes
  no step);
- regularizer: refuses priors with ``UsageError`` only; an encoder term (and a KL replacement when it
  declares ``replaces_kl``) that reaches the encoder only and changes a training step; its own
  parameters are not the model's; its ``state_dict`` round trip; ``on_warmup_end`` and ``report`` work;
  its state survives a checkpoint and resume (hooks, losses, model, report and attributes agree with a
  run without the break);
- backbone: encoder output ``(B, 2*zdim)``, decoder output ``(B, *data_shape)`` for the data shapes it
  declares (``data_shapes`` on its config class) or the first of :data:`DEFAULT_SHAPES` it runs for;
  every parameter gets a gradient; state round trip;
- dataset: declared shape and kind, seeded samples reproducible, paper defaults naming real options;
- metric: directions, finite values for names with a direction, same seed same values, on an untrained
  and on a briefly trained model;
- executor: builds and has ``run(tasks, sweep_dir, on_done)``.

The checks live in :mod:`~introzoo.testing.checks_base` (shared helpers, registration),
:mod:`~introzoo.testing.checks_model` (priors, objectives, regularizers) and
:mod:`~introzoo.testing.checks_pipeline` (backbones, datasets, metrics, executors); this module gathers
them.
"""

from __future__ import annotations

from typing import Callable

from .checks_base import DEFAULT_SHAPES, check_registration, component_config, tiny_model
from .checks_model import check_objective, check_prior, check_regularizer
from .checks_pipeline import check_backbone, check_dataset, check_executor, check_metric

__all__ = [
    "CHECKS",
    "DEFAULT_SHAPES",
    "check_backbone",
    "check_dataset",
    "check_executor",
    "check_metric",
    "check_objective",
    "check_prior",
    "check_registration",
    "check_regularizer",
    "component_config",
    "tiny_model",
]

#: kind -> its contract check (kinds without an entry get the registration checks only)
CHECKS: dict[str, Callable[..., None]] = {
    "priors": check_prior,
    "objectives": check_objective,
    "regularizers": check_regularizer,
    "backbones": check_backbone,
    "datasets": check_dataset,
    "metrics": check_metric,
    "executors": check_executor,
}
