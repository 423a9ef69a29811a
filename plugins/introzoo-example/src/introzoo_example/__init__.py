"""introzoo-example: the template introzoo plugin.

It registers an objective, two priors, a regularizer, a dataset and a metric through the same hooks
introzoo's built-ins use:

- ``soft-ema``: Soft-IntroVAE with a moving-average target decoder (a variant built from ``soft``'s parts);
- ``laplace``: factorised Laplace prior with a closed-form KL (optionally learnable scales);
- ``student-t:df``: factorised Student-t prior, KL by Monte Carlo through the base class;
- ``mmd``: maximum mean discrepancy between the posterior samples and prior samples, an encoder term;
- ``gaussgrid``: a 2D grid of Gaussian modes (25 by default);
- ``modes``: modes covered by the model's samples and the fraction of high-quality samples.

``pyproject.toml`` exposes this module in the ``introzoo`` entry-point group under the name
``example``; ``pip install`` it and ``introzoo plugins`` lists it.
"""

from introzoo import hookimpl

from . import grid, laplace, mmd, modes, soft_ema, student_t

__version__ = "0.1.0"


@hookimpl
def introzoo_register_objectives(register):
    register(
        "soft-ema",
        soft_ema.build,
        soft_ema.SoftEMAConfig,
        "Soft-IntroVAE whose re-decoded terms use a moving average of the decoder (soft's defaults).",
    )


@hookimpl
def introzoo_register_priors(register):
    register(
        "laplace",
        laplace.build,
        laplace.LaplaceConfig,
        "Factorised Laplace prior (heavier tails than N(0, I)), closed-form KL; learnable scales optional.",
    )
    register(
        "student-t",
        student_t.build,
        student_t.StudentTConfig,
        "Factorised Student-t prior with df degrees of freedom, Monte Carlo KL.",
    )


@hookimpl
def introzoo_register_regularizers(register):
    register(
        "mmd",
        mmd.build,
        mmd.MMDConfig,
        "Encoder term: weight * s * MMD^2 between posterior samples and prior samples (InfoVAE).",
    )


@hookimpl
def introzoo_register_datasets(register):
    register("gaussgrid", grid.build, grid.GridConfig, "A side x side grid of Gaussian modes in 2D (25 by default).")


@hookimpl
def introzoo_register_metrics(register):
    register(
        "modes",
        modes.build,
        modes.ModesConfig,
        "Modes covered by the model's samples and the fraction within 3 std of a mode (datasets with centres).",
    )
