"""Built-in regularizers, registered through the same hook a plugin uses."""

from .. import hookimpl
from . import beta, clip_logvar, factor, info, resp_entropy, tcvae
from .base import Regularizer

__all__ = ["Regularizer"]


@hookimpl
def introzoo_register_regularizers(register):
    register(
        "clip-logvar",
        clip_logvar.build,
        clip_logvar.ClipLogvarConfig,
        "Adaptive soft clipping of the prior's log-variances, range fixed at the end of warm-up.",
    )
    register(
        "resp-entropy",
        resp_entropy.build,
        resp_entropy.RespEntropyConfig,
        "Encoder maximises the normalised entropy of the prior's mean responsibilities.",
    )
    register("beta-h", beta.build_beta_h, beta.BetaHConfig, "beta-VAE (Higgins et al.): the KL term weighted by beta.")
    register(
        "beta-b",
        beta.build_beta_b,
        beta.BetaBConfig,
        "beta-VAE with a capacity schedule (Burgess et al.): gamma |KL - C(t)|.",
    )
    register(
        "tcvae",
        tcvae.build,
        tcvae.TCVAEConfig,
        "beta-TCVAE (Chen et al.): KL split into MI, total correlation and dimension-wise KL, each weighted.",
    )
    register(
        "factor",
        factor.build,
        factor.FactorConfig,
        "FactorVAE (Kim & Mnih): KL plus gamma x a discriminator's total-correlation estimate.",
    )
    register(
        "info",
        info.build,
        info.InfoConfig,
        "InfoVAE (Zhao et al.): (1 - alpha) KL plus (alpha + lambda - 1) MMD to the prior.",
    )
