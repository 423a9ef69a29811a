"""Published reference values: what the papers report, shown beside introzoo's own results.

One source for every place that compares with the papers: ``introzoo run`` prints the values of
:data:`REFERENCES` beside a finished run's metrics, the leaderboard takes each dataset's protocol length
from :data:`PROTOCOL_ITERATIONS`, and the sweep files in ``benchmarks/`` carry the same numbers in their
``[published]`` and ``[references.*]`` tables (``tests/test_references.py`` checks that they are equal).

The papers are cited by short names (:data:`PAPERS`); docstrings elsewhere in the code use the
specification's labels ("seed 001" is Soft-IntroVAE, "seed 002" its appendix, "seed 003" Prior Learning in
Introspective VAEs, "seed 004" the dpVAE supplementary material), which :func:`plain` rewrites in text
that reaches a user (e.g. a ``published_source`` recorded in an older sweep manifest).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

#: the papers introzoo implements, by the short name user-visible text cites them with
PAPERS = {
    "Soft-IntroVAE": "Tal Daniel, Aviv Tamar. Soft-IntroVAE: Analyzing and Improving the Introspective "
    "Variational Autoencoder. CVPR 2021 (arXiv:2012.13253), with its appendix",
    "Prior Learning in Introspective VAEs": "Ioannis Athanasiadis, Fredrik Lindsten, Michael Felsberg. Prior "
    "Learning in Introspective VAEs",
    "dpVAE": "Riddhish Bhalodia, Iain Lee, Shireen Elhabian. dpVAEs: Fixing Sample Generation for "
    "Regularized VAEs (supplementary material)",
}

#: the internal labels of the specification -> the papers' short names (:func:`plain`)
_LABELS = {"001": "Soft-IntroVAE", "002": "Soft-IntroVAE", "003": "Prior Learning in Introspective VAEs", "004": "dpVAE"}

#: training iterations of the papers' protocol per dataset (Soft-IntroVAE, 2D: 30,000 iterations,
#: batch 512, 5 seeds); a run shorter than this is not comparable with the published numbers
PROTOCOL_ITERATIONS: dict[str, int] = {"8gaussians": 30_000, "2spirals": 30_000, "checkerboard": 30_000, "rings": 30_000}


@dataclass(frozen=True)
class Reference:
    """One column of published numbers: ``values[data][row][metric] = [mean, std]`` over ``n`` seeds, at
    the protocol's length (:data:`PROTOCOL_ITERATIONS`). A row of :data:`REFERENCES` is an objective with
    the paper's hyperparameters (the datasets' defaults), the standard Gaussian prior and no regularizer;
    other columns (:data:`REPLICATED`, :data:`TABLE1`) key a row as a sweep file does."""

    #: the column's name in a sweep file: ``published`` is ``reported``, else ``[references.NAME]``
    column: str
    #: short name, for a table header
    name: str
    #: one line: where the numbers come from
    source: str
    #: seeds behind each mean ± std
    n: int
    values: dict[str, dict[str, dict[str, list[float]]]]


#: Soft-IntroVAE Table 2: VAE, IntroVAE and Soft-IntroVAE on the 2D benchmarks (gnELBO x1e7, KL, JSD)
TABLE2 = Reference(
    column="reported",
    name="Soft-IntroVAE Table 2",
    n=5,
    source="Soft-IntroVAE Table 2 (mean ± std over 5 seeds)",
    values={
        "8gaussians": {
            "vae": {"gnelbo": [7.42, 0.07], "kl": [6.72, 0.46], "jsd": [16.04, 0.3]},
            "intro": {"gnelbo": [1.29, 0.76], "kl": [2.53, 1.07], "jsd": [1.67, 0.46]},
            "soft": {"gnelbo": [1.25, 0.35], "kl": [1.25, 0.11], "jsd": [0.96, 0.15]},
        },
        "2spirals": {
            "vae": {"gnelbo": [6.19, 0.06], "kl": [9.8, 0.48], "jsd": [4.89, 0.05]},
            "intro": {"gnelbo": [5.87, 0.03], "kl": [8.38, 0.45], "jsd": [3.58, 0.04]},
            "soft": {"gnelbo": [5.21, 0.04], "kl": [8.13, 0.3], "jsd": [3.37, 0.04]},
        },
        "checkerboard": {
            "vae": {"gnelbo": [8.53, 0.1], "kl": [20.91, 0.45], "jsd": [9.78, 0.04]},
            "intro": {"gnelbo": [8.54, 0.11], "kl": [19.03, 0.34], "jsd": [9.07, 0.1]},
            "soft": {"gnelbo": [4.47, 0.29], "kl": [20.27, 0.21], "jsd": [9.06, 0.15]},
        },
        "rings": {
            "vae": {"gnelbo": [6.4, 0.04], "kl": [13.16, 0.55], "jsd": [7.26, 0.07]},
            "intro": {"gnelbo": [7.25, 0.18], "kl": [10.21, 0.49], "jsd": [4.24, 0.11]},
            "soft": {"gnelbo": [6.3, 0.08], "kl": [9.18, 0.33], "jsd": [4.13, 0.09]},
        },
    },
)

#: the official Soft-IntroVAE code rerun with its published hyperparameters (Prior Learning in
#: Introspective VAEs, Appendix D.1, Table 4, column 2: closed-form KL, 5 seeds), soft only
OFFICIAL_RERUN = Reference(
    column="official_reproduced",
    name="official code rerun",
    n=5,
    source="the official Soft-IntroVAE code rerun with the published hyperparameters, Prior Learning in "
    "Introspective VAEs Table 4 column 2 (closed-form KL, 5 seeds)",
    values={
        "8gaussians": {"soft": {"gnelbo": [0.62, 0.13], "kl": [1.33, 0.52], "jsd": [1.16, 0.15]}},
        "2spirals": {"soft": {"gnelbo": [5.47, 0.05], "kl": [10.21, 0.39], "jsd": [4.03, 0.1]}},
        "checkerboard": {"soft": {"gnelbo": [6.28, 0.56], "kl": [19.72, 0.23], "jsd": [9.04, 0.19]}},
        "rings": {"soft": {"gnelbo": [5.81, 0.06], "kl": [10.67, 0.5], "jsd": [4.37, 0.12]}},
    },
)

REFERENCES: tuple[Reference, ...] = (TABLE2, OFFICIAL_RERUN)

# Columns with hyperparameters other than the datasets' defaults, or other priors: in their sweep files
# only (``benchmarks/toy2d_replicated.toml``, ``benchmarks/toy2d_prior.toml``), not printed by ``introzoo
# run`` (:func:`for_run`), whose runs take the defaults. Their rows are keyed as a sweep file's
# (``"objective[ + regularizer][ @ prior]"``).

#: Prior Learning in Introspective VAEs, Appendix D.1, Table 4, column 5 ("ours (replicated)"):
#: Soft-IntroVAE with the hyperparameters of the authors' own grid search (its Table 3, :data:`TABLE3`),
#: sample-based KL (100 draws), 5 seeds; the same numbers as its Table 1, column 2
REPLICATED = Reference(
    column="replicated",
    name="prior-learning paper, replicated",
    n=5,
    source="Prior Learning in Introspective VAEs Table 4 column 5, 'ours (replicated)': Soft-IntroVAE with its "
    "Table 3 hyperparameters (5 seeds)",
    values={
        "8gaussians": {"soft": {"gnelbo": [0.51, 0.15], "kl": [1.23, 0.11], "jsd": [1.01, 0.18]}},
        "2spirals": {"soft": {"gnelbo": [6.41, 0.61], "kl": [9.5, 1.23], "jsd": [4.21, 0.5]}},
        "checkerboard": {"soft": {"gnelbo": [7.21, 0.12], "kl": [19.62, 0.57], "jsd": [8.87, 0.15]}},
        "rings": {"soft": {"gnelbo": [6.03, 0.12], "kl": [9.99, 0.59], "jsd": [4.05, 0.15]}},
    },
)

#: Prior Learning in Introspective VAEs, Table 3: Soft-IntroVAE's (beta_rec, beta_kl, beta_neg) per 2D
#: dataset under the standard Gaussian prior, from the authors' grid search
TABLE3: dict[str, tuple[float, float, float]] = {
    "8gaussians": (0.2, 0.3, 0.9),
    "2spirals": (0.2, 0.05, 0.2),
    "checkerboard": (0.05, 0.2, 0.8),
    "rings": (0.2, 0.2, 0.6),
}

#: Prior Learning in Introspective VAEs, Table 1: the six columns on the 2D benchmarks (5 seeds): VAE and
#: Soft-IntroVAE with the standard Gaussian; the VampPrior turned into a fixed MoG (64) and the same
#: learned with the decoder (Intro-Prior, clip-logvar K = 10); MoG(64) with learnable contributions,
#: fixed and Intro-Prior. Its "25spirals" row is 2spirals.
TABLE1 = Reference(
    column="reported",
    name="prior-learning paper Table 1",
    n=5,
    source="Prior Learning in Introspective VAEs Table 1 (mean ± std over 5 seeds)",
    values={
        "8gaussians": {
            "vae @ sg": {"gnelbo": [7.48, 0.08], "kl": [6.94, 0.81], "jsd": [17.41, 0.28]},
            "soft @ sg": {"gnelbo": [0.51, 0.15], "kl": [1.23, 0.11], "jsd": [1.01, 0.18]},
            "soft @ vamp": {"gnelbo": [3.62, 0.7], "kl": [4.46, 5.89], "jsd": [1.77, 1.56]},
            "soft-prior + clip-logvar @ vamp": {"gnelbo": [4.8, 0.34], "kl": [2.36, 0.67], "jsd": [1.79, 0.2]},
            "soft @ mog": {"gnelbo": [0.25, 0.04], "kl": [1.94, 0.75], "jsd": [1.13, 0.28]},
            "soft-prior + clip-logvar @ mog": {"gnelbo": [0.26, 0.08], "kl": [2.24, 1.6], "jsd": [1.08, 0.15]},
        },
        "2spirals": {
            "vae @ sg": {"gnelbo": [6.23, 0.03], "kl": [10.18, 0.36], "jsd": [4.94, 0.24]},
            "soft @ sg": {"gnelbo": [6.41, 0.61], "kl": [9.5, 1.23], "jsd": [4.21, 0.5]},
            "soft @ vamp": {"gnelbo": [6.41, 0.96], "kl": [8.61, 0.79], "jsd": [3.76, 0.09]},
            "soft-prior + clip-logvar @ vamp": {"gnelbo": [6.04, 0.8], "kl": [8.31, 0.45], "jsd": [3.53, 0.09]},
            "soft @ mog": {"gnelbo": [5.81, 0.9], "kl": [9.45, 1.25], "jsd": [3.89, 0.18]},
            "soft-prior + clip-logvar @ mog": {"gnelbo": [6.47, 0.63], "kl": [8.02, 0.25], "jsd": [3.64, 0.16]},
        },
        "checkerboard": {
            "vae @ sg": {"gnelbo": [8.62, 0.11], "kl": [20.79, 0.17], "jsd": [9.97, 0.14]},
            "soft @ sg": {"gnelbo": [7.21, 0.12], "kl": [19.62, 0.57], "jsd": [8.87, 0.15]},
            "soft @ vamp": {"gnelbo": [8.0, 0.07], "kl": [18.58, 0.49], "jsd": [8.65, 0.1]},
            "soft-prior + clip-logvar @ vamp": {"gnelbo": [7.66, 0.29], "kl": [18.72, 0.6], "jsd": [8.71, 0.17]},
            "soft @ mog": {"gnelbo": [7.81, 0.21], "kl": [19.04, 1.45], "jsd": [8.9, 0.49]},
            "soft-prior + clip-logvar @ mog": {"gnelbo": [7.67, 0.12], "kl": [17.7, 0.25], "jsd": [8.46, 0.15]},
        },
        "rings": {
            "vae @ sg": {"gnelbo": [6.37, 0.09], "kl": [13.3, 0.63], "jsd": [7.4, 0.17]},
            "soft @ sg": {"gnelbo": [6.03, 0.12], "kl": [9.99, 0.59], "jsd": [4.05, 0.15]},
            "soft @ vamp": {"gnelbo": [6.73, 0.4], "kl": [10.07, 0.82], "jsd": [4.13, 0.18]},
            "soft-prior + clip-logvar @ vamp": {"gnelbo": [6.86, 0.35], "kl": [9.77, 0.7], "jsd": [4.12, 0.15]},
            "soft @ mog": {"gnelbo": [6.4, 0.75], "kl": [11.31, 1.25], "jsd": [5.19, 0.74]},
            "soft-prior + clip-logvar @ mog": {"gnelbo": [6.65, 0.41], "kl": [10.31, 2.29], "jsd": [4.33, 0.73]},
        },
    },
)


def for_run(
    data: str, objective: str, prior: str = "sg", regularizers: int = 0
) -> list[tuple[Reference, dict[str, list[float]]]]:
    """The published values that a run of ``objective`` on ``data`` compares with: (reference, metric ->
    [mean, std]) per column that has the pair; none for another prior or with a regularizer (the
    papers' numbers are for the standard Gaussian prior)."""
    if prior != "sg" or regularizers:
        return []
    return [(ref, ref.values[data][objective]) for ref in REFERENCES if objective in ref.values.get(data, {})]


def protocol_iterations(data: str) -> int | None:
    """The papers' training length on ``data`` (iterations), where a protocol with published numbers is known."""
    return PROTOCOL_ITERATIONS.get(data)


def sweep_tables() -> dict[str, Any]:
    """The references as a sweep file has them: ``{"published": ..., "references": {NAME: {...}}}``."""
    out: dict[str, Any] = {"published": TABLE2.values, "references": {}}
    for ref in REFERENCES[1:]:
        out["references"][ref.column] = dict(ref.values)
    return out


_LABEL = re.compile(r"\bseed (00[1-4])('s)?\b")


def plain(text: str) -> str:
    """``text`` with the specification's internal paper labels replaced by the papers' short names
    (``"seed 001 Table 2"`` -> ``"Soft-IntroVAE Table 2"``)."""
    return _LABEL.sub(lambda m: _LABELS[m.group(1)] + (m.group(2) or ""), text)


def fmt(mean: float, std: float) -> str:
    """A published value as the papers print it: ``1.25 ± 0.11`` (the digits as published)."""
    return f"{mean:g} ± {std:g}"


def warmup_dominates(num_vae: Any, iterations: Any) -> bool:
    """Whether a run spends at least half its iterations in the objective's plain-VAE warm-up
    (``num_vae``): it then trains fewer adversarial iterations than warm-up ones, too few for the model to
    show what the objective does (Soft-IntroVAE on 8 Gaussians at 3,000 iterations, 1,000 of them
    adversarial, still has a VAE's KL), and its numbers describe a VAE more than the objective."""
    try:
        warm, total = int(num_vae), int(iterations)
    except (TypeError, ValueError):
        return False
    return warm > 0 and total - warm < warm


def recorded_warmup_dominates(config: dict[str, Any]) -> bool:
    """:func:`warmup_dominates` for a run's recorded configuration (``config.json``, a sweep task's record)."""
    options = (config.get("objective") or {}).get("options") or {}
    return warmup_dominates(options.get("num_vae"), (config.get("train") or {}).get("iterations"))


def warmup_warning(run: Any) -> str | None:
    """The warning for a resolved run (:class:`introzoo.config.ResolvedRun`) whose warm-up takes half its
    iterations or more, else ``None``: what ``introzoo run`` prints and ``introzoo.train`` warns."""
    warm, iterations = getattr(run.objective.config, "num_vae", None), run.train["iterations"]
    if not warmup_dominates(warm, iterations):
        return None
    return warmup_text(run.objective.component.name, int(warm), int(iterations))


def warmup_text(name: str, num_vae: int, iterations: int) -> str:
    """The warning of :func:`warmup_dominates`, with what to do."""
    if num_vae >= iterations:
        what = f"the warm-up covers the whole run (num_vae={num_vae} >= {iterations} iterations): {name} trains as a plain VAE throughout"
    else:
        what = (
            f"only {iterations - num_vae:,} of {iterations:,} iterations come after the plain-VAE warm-up "
            f"(num_vae={num_vae}): {name} has barely started its adversarial game"
        )
    return f"{what}; give at least {2 * num_vae:,} iterations (-n), or a shorter warm-up (-o {name},num_vae=N)"
