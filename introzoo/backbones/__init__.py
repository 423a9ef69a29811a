"""Built-in backbones, registered through the same hook a plugin uses."""

from .. import hookimpl
from . import conv, lord, mlp, resnet, style


@hookimpl
def introzoo_register_backbones(register):
    register("mlp", mlp.build, mlp.MLPConfig, "MLP encoder/decoder for vector data (2D benchmarks), 3x256 ReLU.")
    register(
        "resnet",
        resnet.build,
        resnet.ResNetConfig,
        "IntroVAE-style residual conv encoder/decoder for images (Soft-IntroVAE Table 6); channels, norm as options.",
    )
    register("conv", conv.build, conv.ConvConfig, "Small plain conv encoder/decoder for tiny images (8x8 digits).")
    register(
        "style",
        style.build,
        style.StyleConfig,
        "Style-based encoder/decoder (Style Soft-IntroVAE, Soft-IntroVAE §6.3): AdaIN decoder, style-summing encoder; "
        "grows from 4x4 with --resolution.",
    )
    register(
        "lord",
        lord.build,
        lord.LordConfig,
        "LORD's class and content encoders with an AdaIN decoder, for image translation (Soft-IntroVAE §6.4).",
    )
