"""introzoo-example: the template introzoo plugin.

It registers two priors and a regularizer through the same hooks introzoo's built-ins use:

- ``laplace``: factorised Laplace prior with a closed-form KL (optionally learnable scales);
- ``student-t:df``: factorised Student-t prior, KL by Monte Carlo through the base class;
- ``mmd``: maximum mean discrepancy between the posterior samples and prior samples, an encoder term.

``pyproject.toml`` exposes this module in the ``introzoo`` entry-point group under the name
``example``; ``pip install`` it and ``introzoo plugins`` lists it.
"""

from introzoo import hookimpl

from . import laplace, mmd, student_t

__version__ = "0.1.0"


@hookimpl
def introzoo_register_priors(register):
    register("laplace", laplace.build, laplace.LaplaceConfig,
             "Factorised Laplace prior (heavier tails than N(0, I)), closed-form KL; learnable scales optional.")
    register("student-t", student_t.build, student_t.StudentTConfig,
             "Factorised Student-t prior with df degrees of freedom, Monte Carlo KL.")


@hookimpl
def introzoo_register_regularizers(register):
    register("mmd", mmd.build, mmd.MMDConfig,
             "Encoder term: weight * s * MMD^2 between posterior samples and prior samples (InfoVAE).")
