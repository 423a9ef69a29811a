"""Built-in objectives, registered through the same hook a plugin uses."""

from .. import hookimpl
from . import intro, soft, soft_boot, soft_prior, vae


@hookimpl
def introzoo_register_objectives(register):
    register("vae", vae.build, vae.VAEConfig, "Plain beta-VAE: one joint step on beta_rec*REC + beta_kl*KL.")
    register("intro", intro.build, intro.IntroConfig, "IntroVAE: hard-margin hinge on the fakes' KL (needs m).")
    register("soft", soft.build, soft.SoftConfig, "Soft-IntroVAE: exponential ELBO of fakes for the encoder.")
    register(
        "soft-boot",
        soft_boot.build,
        soft_boot.SoftBootConfig,
        "Soft-IntroVAE with a target decoder copied every epoch or copy_every iterations (official bootstrap).",
    )
    register(
        "soft-prior",
        soft_prior.build,
        soft_prior.SoftPriorConfig,
        "Three-player Soft-IntroVAE: a learnable prior cooperates with the decoder.",
    )
