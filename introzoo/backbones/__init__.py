"""Built-in backbones, registered through the same hook a plugin uses."""

from .. import hookimpl
from . import mlp


@hookimpl
def introzoo_register_backbones(register):
    register("mlp", mlp.build, mlp.MLPConfig, "MLP encoder/decoder for vector data (2D benchmarks), 3x256 ReLU.")
