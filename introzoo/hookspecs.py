"""Hook specifications: how built-in and third-party plugins add components, commands and run loggers.

Every ``introzoo_register_<kind>`` hook receives one argument, ``register``, a callable::

    register(name, factory, config, doc)

- ``name``: the spec-string name (``"mog"``, ``"soft"``); unique within its kind across all plugins.
- ``factory``: called as ``factory(config, **context)`` to build the component (see each hook).
- ``config``: a pydantic model class with ``extra="forbid"``; its fields are the component's options.
  A ``ClassVar[str] primary`` names the option that ``name:value`` sets (``mog:100`` sets ``K``).
- ``doc``: one line shown by ``introzoo list``.

Besides components, a plugin can add commands to the command line (``introzoo_register_commands``,
called when ``introzoo`` runs a command that is not a built-in one, or lists them) and follow every run
(``introzoo_run_start`` / ``introzoo_run_log`` / ``introzoo_run_end``, called by the trainer; a logger
for W&B or TensorBoard). A run hook that raises is reported on one warning line and that plugin's run
hooks are not called again for the run: a logger never ends a run.

A plugin is a module (or object) with functions decorated by :data:`introzoo.hookimpl`, exposed through
the ``introzoo`` entry-point group. Registration hooks are called once, when the registry is first built.
"""

from __future__ import annotations

import pluggy

hookspec = pluggy.HookspecMarker("introzoo")

#: The component kinds, in the order ``introzoo list`` shows them; each has a hook
#: ``introzoo_register_<kind>``.
KINDS = ("objectives", "priors", "regularizers", "backbones", "datasets", "metrics", "extractors", "executors")
#: the run-lifecycle hooks, in the order a run calls them
RUN_HOOKS = ("introzoo_run_start", "introzoo_run_log", "introzoo_run_end")
#: every hook name
HOOKS = (*(f"introzoo_register_{k}" for k in KINDS), "introzoo_register_commands", *RUN_HOOKS)


@hookspec
def introzoo_register_objectives(register):
    """Register training objectives. ``factory(config, model, regularizers, train)`` returns an
    :class:`introzoo.objectives.base.Objective` that owns its optimisers and its training step."""


@hookspec
def introzoo_register_priors(register):
    """Register latent priors. ``factory(config, zdim)`` returns an :class:`introzoo.priors.base.Prior`
    (``sample``, ``log_prob``, ``kl``, ``learnable``)."""


@hookspec
def introzoo_register_regularizers(register):
    """Register regularizers. ``factory(config)`` returns an
    :class:`introzoo.regularizers.Regularizer` that acts at the objective's declared points."""


@hookspec
def introzoo_register_backbones(register):
    """Register encoder/decoder networks. ``factory(config, data_shape, zdim)`` returns
    ``(encoder, decoder)``: the encoder maps x to ``2*zdim`` numbers (mu, logvar), the decoder z to x."""


@hookspec
def introzoo_register_datasets(register):
    """Register datasets. ``factory(config)`` returns an :class:`introzoo.data.base.Dataset`
    declaring its shape, metric range and the paper defaults that apply to it."""


@hookspec
def introzoo_register_metrics(register):
    """Register evaluation metrics. ``factory(config)`` returns an :class:`introzoo.metrics.base.Metric`
    that computes named numbers from a trained model and says which direction is better."""


@hookspec
def introzoo_register_extractors(register):
    """Register feature extractors for the FID metrics. ``factory(config, dataset, device)`` returns an
    :class:`introzoo.extractors.base.Extractor`: an ``nn.Module`` mapping images in [0, 1] to
    ``(B, num_features)`` features, with an ``info`` dict the metric records (e.g. a test accuracy)."""


@hookspec
def introzoo_register_executors(register):
    """Register sweep executors. ``factory(config)`` returns an object that runs many run configs."""


@hookspec
def introzoo_register_commands(cli):
    """Add commands to the command line: ``cli`` is the ``typer.Typer`` app (``@cli.command()``,
    ``cli.add_typer(...)``). A command named like a built-in one is refused with a warning."""


@hookspec
def introzoo_run_start(run, out_dir):
    """A run starts: ``run`` is its :class:`introzoo.config.ResolvedRun`, ``out_dir`` the run directory
    (a :class:`pathlib.Path`; ``config.json`` is written already). Called again when a run resumes."""


@hookspec
def introzoo_run_log(run, iteration, record):
    """One history record (the dict appended to ``history.jsonl``: ``iteration``, the mean losses since
    the last record, ``lr``, ``time_s``), every ``log_every`` iterations and at the last one."""


@hookspec
def introzoo_run_end(run, result):
    """The run ended (finished or diverged): ``result`` is the content of ``metrics.json``, written
    already."""
