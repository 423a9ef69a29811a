"""Training options, declared once: :class:`TrainOptions`.

Everything else is derived from its fields: :class:`TrainOverrides` (every option optional, ``None`` =
not given) is the training part of a run's :class:`~introzoo.config.RunConfig`, of a sweep file and of
:class:`~introzoo.sweeps.grid.SweepSpec`; the ``run`` and ``sweep`` commands build one command-line option
per field (``lr_gamma`` -> ``--lr-gamma``; extra flags from ``json_schema_extra={"flags": [...]}``, help
from the description); the resolved values (introzoo's defaults < the dataset's protocol < explicit
options) are what ``config.json`` records under ``train`` and what an objective receives.

Adding a training option is one field here (see CONTRIBUTING.md).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, create_model, field_validator

#: the largest seed: numpy's generators take seeds below 2^32 (a run seeds torch, numpy and random)
MAX_SEED = 2**32 - 1
#: the evaluation's default chunk: the most images through a model in one pass (:mod:`introzoo.metrics.stream`)
EVAL_CHUNK = 256


class TrainOptions(BaseModel):
    """Training options with introzoo's defaults (a dataset's protocol overrides them:
    docs/conventions.md, "Where defaults come from")."""

    model_config = ConfigDict(extra="forbid")

    iterations: int = Field(
        30_000,
        gt=0,
        description="training iterations (dataset default; image datasets: epochs x batches per epoch)",
        json_schema_extra={"flags": ["-n"]},
    )
    epochs: Optional[int] = Field(None, gt=0, description="image datasets: training epochs (dataset default)")
    batch_size: int = Field(512, gt=0, description="batch size (dataset default)")
    lr: float = Field(2e-4, gt=0, description="Adam learning rate of every optimiser (2e-4)")
    lr_milestones: list[int] = Field(
        default_factory=list, description="iterations at which the learning rate is multiplied by lr_gamma (repeatable)"
    )
    lr_gamma: float = Field(0.1, gt=0, description="learning-rate factor at each milestone (0.1)")
    zdim: int = Field(2, gt=0, description="latent size (dataset default)")
    precision: Literal["fp32", "bf16", "fp16"] = Field(
        "fp32", description="training precision: fp32 | bf16 | fp16 (autocast; fp16 with a grad scaler) (fp32)"
    )
    # progressive growing (introzoo.training.progressive): none of these unless --resolution is given
    resolution: Optional[int] = Field(
        None,
        gt=0,
        description="grow the networks progressively from 4x4 to this "
        "image size, one stage per doubling (a backbone with stages: style)",
    )
    stage_epochs: Optional[int] = Field(None, gt=0, description="with --resolution: epochs per stage at its batch size (30)")
    stage_iterations: Optional[int] = Field(
        None, gt=0, description="with --resolution: iterations per stage (instead of --stage-epochs)"
    )
    blend_epochs: Optional[int] = Field(
        None, ge=0, description="with --resolution: epochs over which a new block blends in (half the stage)"
    )
    blend_iterations: Optional[int] = Field(
        None, ge=0, description="with --resolution: iterations over which a new block blends in (instead of --blend-epochs)"
    )
    stage_batch_size: Optional[list[int]] = Field(
        None, description="with --resolution: batch size per stage from 4x4, the last repeated (repeatable)"
    )
    stage_beta_neg: Optional[list[float]] = Field(
        None, description="with --resolution: the objective's beta_neg per stage from 4x4, the last repeated (repeatable)"
    )
    conditional: bool = Field(
        False,
        description="class-conditional encoder and decoder (the one-hot label "
        "concatenated, Soft-IntroVAE §6.3); labelled image datasets",
    )
    rec_loss: str = Field(
        "mse",
        description="the objectives' reconstruction distance: mse (the summed squared error) or "
        "perceptual,weights=FILE (LORD's VGG16 distance, Soft-IntroVAE §6.4; images)",
    )

    @field_validator("rec_loss")
    @classmethod
    def _rec_loss(cls, v: str) -> str:
        name, _, weights = v.partition(",weights=")
        if v != "mse" and not (name == "perceptual" and weights):
            raise ValueError(f"'{v}': choose mse or perceptual,weights=FILE")
        return v


#: options added after runs were first recorded, at the value that reproduces those runs: left out of
#: a run's hash there (:meth:`introzoo.config.ResolvedRun.hash`), so that earlier runs keep their hash
HASH_NEUTRAL: dict[str, Any] = {"precision": "fp32", "conditional": False, "rec_loss": "mse"}

#: introzoo's defaults of the options that have one (``epochs`` has none: iterations count)
TRAIN_DEFAULTS: dict[str, Any] = {k: v for k, v in TrainOptions().model_dump().items() if v is not None}


def _optional(name: str) -> tuple[Any, Any]:
    field = TrainOptions.model_fields[name]
    kind = Annotated[(field.annotation, *field.metadata)] if field.metadata else field.annotation
    return Optional[kind], Field(None, description=field.description)


#: every training option optional (``None``: the dataset's or introzoo's default)
TrainOverrides = create_model(
    "TrainOverrides", __config__=ConfigDict(extra="forbid"), **{name: _optional(name) for name in TrainOptions.model_fields}
)
TrainOverrides.__doc__ = "Training options as given (None: not given). Derived from TrainOptions."


def train_option_names() -> list[str]:
    return list(TrainOptions.model_fields)
