"""Built-in priors, registered through the same hook a plugin uses."""

from .. import hookimpl
from . import flow, gaussian, mog, vamp


@hookimpl
def introzoo_register_priors(register):
    register("sg", gaussian.build, gaussian.SGConfig, "Standard Gaussian N(0, I), closed-form KL.")
    register("mog", mog.build, mog.MoGConfig, "Mixture of K Gaussians, learnable means/variances (and weights).")
    register("vamp", vamp.build, vamp.VampConfig, "VampPrior: mixture of the encoder's posteriors at K pseudo-inputs.")
    register("flow", flow.build, flow.FlowConfig, "dpVAE decoupled prior: L affine couplings onto N(0, I).")
