"""The TensorBoard logger (``introzoo run --log tensorboard``; ``pip install 'introzoo[tensorboard]'``).

Writes event files with :class:`torch.utils.tensorboard.SummaryWriter` into ``RUN/tensorboard/``:

- ``train/<name>``: every value of every history record (the same numbers as ``history.jsonl``:
  the mean losses since the last record, ``lr``, ``time_s``), at step = the record's iteration;
- ``eval/<metric>``: the final metrics of ``metrics.json``, at step = the last iteration;
- the text ``config``: the run's ``config.json`` record.

``tensorboard --logdir runs`` shows every run under ``runs/``. A plugin of the run-lifecycle hooks like any
other (:mod:`introzoo.hookspecs`); a W&B or MLflow logger has the same three functions.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from .. import hookimpl
from . import wanted

NAME = "tensorboard"
_writers: dict[int, Any] = {}  # id(run) -> SummaryWriter, between a run's start and end


@hookimpl
def introzoo_run_start(run, out_dir):
    if not wanted(NAME):
        return
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(log_dir=str(Path(out_dir) / "tensorboard"))
    writer.add_text("config", "```\n" + json.dumps(run.record(), indent=1, default=str) + "\n```")
    _writers[id(run)] = writer


@hookimpl
def introzoo_run_log(run, iteration, record):
    writer = _writers.get(id(run))
    if writer is None:
        return
    for key, value in record.items():
        if key != "iteration" and isinstance(value, (int, float)):
            writer.add_scalar(f"train/{key}", value, iteration)


@hookimpl
def introzoo_run_end(run, result):
    writer = _writers.pop(id(run), None)
    if writer is None:
        return
    step = int(result.get("iterations") or 0)
    for key, value in (result.get("metrics") or {}).items():
        if isinstance(value, (int, float)) and math.isfinite(value):
            writer.add_scalar(f"eval/{key}", value, step)
    writer.close()
