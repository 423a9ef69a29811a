"""Data-parallel training (``introzoo run --ddp`` under torchrun, :mod:`introzoo.training.distributed`)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from torch import distributed as dist

import introzoo
from introzoo.cli import main
from introzoo.config import RunConfig, resolve
from introzoo.training.distributed import DataParallel
from introzoo.errors import UsageError
from introzoo.plugins import registry
from introzoo.training.loop import train

ROOT = Path(introzoo.__file__).resolve().parents[1]
#: a soft run with a 5-iteration VAE warm-up: both kinds of step (one joint optimiser step; the
#: encoder's then the decoder's backward pass and step)
ARGS = [
    "run",
    "-d",
    "8gaussians",
    "-o",
    "soft,num_vae=5",
    "-n",
    "20",
    "--batch-size",
    "64",
    "--log-every",
    "1",
    "--device",
    "cpu",
    "--metric",
    "kl",
    "-q",
]
#: a float64 launcher: the processes' default dtype is float64 (8gaussians and the MLP follow it), so the
#: only difference to one process is the order of floating-point sums
LAUNCHER = "import sys, torch\ntorch.set_default_dtype(torch.float64)\nfrom introzoo.cli import main\nsys.exit(main(sys.argv[1:]))\n"


def _history(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "history.jsonl").read_text().splitlines()]


@pytest.mark.skipif(not (dist.is_available() and dist.is_gloo_available()), reason="torch.distributed with gloo")
def test_two_processes_equal_one_process_with_the_whole_batch(tmp_path):
    launcher, scratch = tmp_path / "launch.py", tmp_path / "tmp"
    launcher.write_text(LAUNCHER)
    scratch.mkdir()
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
        "OMP_NUM_THREADS": "1",
        "TMPDIR": str(scratch),
    }
    out2 = tmp_path / "ddp"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node",
            "2",
            str(launcher),
            *ARGS,
            "--ddp",
            "--out",
            str(out2),
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]

    old = torch.get_default_dtype()  # the one-process reference, in this process, also in float64
    torch.set_default_dtype(torch.float64)
    try:
        opts = dict(
            objective="soft,num_vae=5",
            data="8gaussians",
            iterations=20,
            batch_size=64,
            log_every=1,
            device="cpu",
            metrics=["kl"],
        )
        train(resolve(RunConfig(**opts), registry()), tmp_path / "one")
    finally:
        torch.set_default_dtype(old)
    one, two = _history(tmp_path / "one"), _history(out2)
    assert len(one) == len(two) == 20 and "loss_e" in one[-1] and "loss" in one[0]
    for a, b in zip(one, two):
        for k in a:
            if k != "time_s":
                assert b[k] == pytest.approx(a[k], rel=1e-10, abs=1e-12), (a["iteration"], k)
    w1 = torch.load(tmp_path / "one" / "checkpoint.pt", weights_only=False)["model"]
    w2 = torch.load(out2 / "checkpoint.pt", weights_only=False)["model"]
    for k in w1:
        torch.testing.assert_close(w2[k], w1[k], rtol=1e-9, atol=1e-12)
    # only process 0 wrote: the run directory, nothing else (process 1's scratch directory is gone)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ddp", "launch.py", "one", "tmp"]
    assert not list(scratch.glob("introzoo-*"))
    assert json.loads((out2 / "metrics.json").read_text())["status"] == "finished"


def test_ddp_outside_torchrun_is_one_line_and_exit_2(monkeypatch, capsys, tmp_path):
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(k, raising=False)
    assert main(["run", "-d", "8gaussians", "-n", "5", "--ddp", "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "torchrun" in err[0] and "RANK" in err[0]
    assert not (tmp_path / "r").exists()


def test_a_batch_that_does_not_split_is_refused():
    run = SimpleNamespace(train={"batch_size": 63})
    with pytest.raises(UsageError, match="multiple of 2"):
        DataParallel(0, 2, 0).start(run, torch.device("cpu"))


def test_each_process_keeps_its_rows_of_every_global_batch():
    """[x_f; x_r] of a shard: the process's rows of the global x_f, then of the global x_r (hand layout)."""
    b, world = 3, 2
    x = torch.arange(2 * b).reshape(2 * b, 1)  # the global batch B = 6
    full = torch.arange(4 * b).reshape(4 * b, 1)  # noise drawn for [x_f; x_r] of the global batch (2B rows)
    for rank in range(world):
        dp = DataParallel(rank, world, rank)
        assert dp.shard(x).flatten().tolist() == list(range(rank * b, rank * b + b))
        rows = dp._rows(full, 2 * b).flatten().tolist()
        assert rows == [*range(rank * b, rank * b + b), *range(2 * b + rank * b, 2 * b + rank * b + b)]
        assert dp._rows(full[: 2 * b], b).flatten().tolist() == list(range(rank * b, rank * b + b))
    dp = DataParallel(1, 2, 1)
    assert dp.shard(x[:5]).flatten().tolist() == [2, 3]  # a partial batch of 5: 2 rows each
    assert dp.shard(x[:1]).flatten().tolist() == [0]  # fewer rows than processes: every process takes all


def test_factor_regularizer_is_refused():
    reg = SimpleNamespace(name="factor", disc=torch.nn.Linear(2, 1))
    built = SimpleNamespace(objective=SimpleNamespace(regularizers=[reg]))
    with pytest.raises(UsageError, match="trains a network of its own"):
        DataParallel(0, 2, 0).attach(built)
