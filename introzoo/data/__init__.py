"""Built-in datasets, registered through the same hook a plugin uses."""

from .. import hookimpl
from . import factors, folder, images, points, shapes, toy2d, translation_sets


@hookimpl
def introzoo_register_datasets(register):
    for name in toy2d.GENERATORS:
        register(name, toy2d.factory(name), toy2d.Toy2DConfig, toy2d.DOCS[name])
    register("moons", toy2d.Moons, toy2d.MoonsConfig, toy2d.MOONS_DOC)
    register(
        "factors2d",
        factors.build,
        factors.Factors2DConfig,
        "Two independent discrete factors on a 2D grid + noise (ground-truth factors for factor_score).",
    )
    for name in images.CLASSES:
        register(name, images.factory(name), images.ImageConfig, images.DOCS[name])
    register(
        "celeba",
        images.CelebA,
        images.CelebAConfig,
        "CelebA aligned faces, resized and centre-cropped to 64x64 (torchvision; 162,770 train / 19,962 test).",
    )
    register("folder", folder.build, folder.FolderConfig, folder.DOC)
    register("points", points.build, points.PointsConfig, points.DOC)
    register("shapes", shapes.build, shapes.ShapesConfig, shapes.DOC)
    register(
        "cars3d",
        translation_sets.factory(translation_sets.Cars3D),
        translation_sets.TranslationSetConfig,
        translation_sets.DOCS["cars3d"],
    )
    register(
        "kth",
        translation_sets.factory(translation_sets.KTH),
        translation_sets.TranslationSetConfig,
        translation_sets.DOCS["kth"],
    )
