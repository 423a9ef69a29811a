"""Built-in priors, registered through the same hook a plugin uses."""

from .. import hookimpl
from . import gaussian


@hookimpl
def introzoo_register_priors(register):
    register("sg", gaussian.build, gaussian.SGConfig, "Standard Gaussian N(0, I), closed-form KL.")
