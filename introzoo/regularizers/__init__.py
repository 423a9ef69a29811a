"""Built-in regularizers, registered through the same hook a plugin uses."""

from .. import hookimpl
from . import clip_logvar, resp_entropy
from .base import Regularizer

__all__ = ["Regularizer"]


@hookimpl
def introzoo_register_regularizers(register):
    register("clip-logvar", clip_logvar.build, clip_logvar.ClipLogvarConfig,
             "Adaptive soft clipping of the prior's log-variances, range fixed at the end of warm-up.")
    register("resp-entropy", resp_entropy.build, resp_entropy.RespEntropyConfig,
             "Encoder maximises the normalised entropy of the prior's mean responsibilities.")
