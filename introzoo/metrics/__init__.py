"""Built-in metrics, registered through the same hook a plugin uses."""

from .. import hookimpl
from . import prior, toy2d


@hookimpl
def introzoo_register_metrics(register):
    register("gnelbo", toy2d.Gnelbo, toy2d.GnelboConfig,
             "2D grid-normalised negative ELBO of the data, x1e7 (lower is better).")
    register("kl", toy2d.KL, toy2d.HistConfig, "2D histogram KL(real || generated), official scaling.")
    register("jsd", toy2d.JSD, toy2d.HistConfig, "2D histogram 'JSD' in the official convention (not textbook).")
    register("resp_entropy", prior.RespEntropyMetric, prior.RespEntropyMetricConfig,
             "Normalised entropy of the prior's mean responsibilities, and active components (mixtures).")
