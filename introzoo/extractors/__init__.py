"""Built-in feature extractors for the FID metrics, registered through the same hook a plugin uses."""

from .. import hookimpl
from . import classifier, inception


@hookimpl
def introzoo_register_extractors(register):
    register(
        "inception",
        inception.build,
        inception.InceptionConfig,
        "Inception-v3 pool features (2048); needs weights: a path or torch's hub cache.",
    )
    register(
        "classifier",
        classifier.build,
        classifier.ClassifierConfig,
        "A small CNN introzoo trains on the dataset's training split and caches; reports its test accuracy.",
    )
