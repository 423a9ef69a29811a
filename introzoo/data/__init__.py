"""Built-in datasets, registered through the same hook a plugin uses."""

from .. import hookimpl
from . import images, toy2d


@hookimpl
def introzoo_register_datasets(register):
    for name in toy2d.GENERATORS:
        register(name, toy2d.factory(name), toy2d.Toy2DConfig, toy2d.DOCS[name])
    for name in images.CLASSES:
        register(name, images.factory(name), images.ImageConfig, images.DOCS[name])
