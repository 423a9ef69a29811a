"""Built-in metrics, registered through the same hook a plugin uses."""

from .. import hookimpl
from . import factor, fid, fid_cond, likelihood, prior, probes, toy2d, translation


@hookimpl
def introzoo_register_metrics(register):
    register(
        "gnelbo", toy2d.Gnelbo, toy2d.GnelboConfig, "2D grid-normalised negative ELBO of the data, x1e7 (lower is better)."
    )
    register("kl", toy2d.KL, toy2d.HistConfig, "2D histogram KL(real || generated), official scaling.")
    register("jsd", toy2d.JSD, toy2d.HistConfig, "2D histogram 'JSD' in the official convention (not textbook).")
    register(
        "resp_entropy",
        prior.RespEntropyMetric,
        prior.RespEntropyMetricConfig,
        "Normalised entropy of the prior's mean responsibilities, and active components (mixtures).",
    )
    register(
        "fid_gen",
        fid.FIDGen,
        fid.FIDConfig,
        "FID of prior samples vs training images over an extractor (fid_gen@classifier / @inception).",
    )
    register(
        "fid_rec",
        fid.FIDRec,
        fid.FIDConfig,
        "FID of reconstructions (aggregated posterior) vs training images over an extractor.",
    )
    register(
        "fid_cond",
        fid_cond.FIDCond,
        fid_cond.FIDCondConfig,
        "Conditional FID of a class-conditional run: pooled (samples with the real images' labels) or per_class.",
    )
    register("svm", probes.SVM, probes.SVMConfig, "Linear SVM accuracy on latent means (test split).")
    register("knn5", probes.knn(5), probes.ProbeConfig, "5-NN accuracy on latent means (test split).")
    register("knn100", probes.knn(100), probes.ProbeConfig, "100-NN accuracy on latent means (test split).")
    register(
        "factor_score",
        factor.FactorScore,
        factor.FactorScoreConfig,
        "FactorVAE disentanglement metric (Kim & Mnih 2018): majority-vote accuracy (datasets with factors).",
    )
    register(
        "nll",
        likelihood.NLL,
        likelihood.NLLConfig,
        "Importance-weighted negative log-likelihood of test images, nats per image (K samples).",
    )
    register(
        "content_transfer",
        translation.ContentTransfer,
        translation.ContentTransferConfig,
        "Per-pixel MSE of translated images (class of one, content of another) against the ground truth.",
    )
