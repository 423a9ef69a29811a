"""The submitit executor's data-parallel runs (``ddp=true``): the job's shape and one process's run."""

from __future__ import annotations

import json
import socket

import pytest

from introzoo.config import RunConfig, resolve
from introzoo.errors import UsageError
from introzoo.sweeps.slurm import SubmititConfig, SubmititExecutor, SweepRun
from introzoo.plugins import registry
from introzoo.sweeps.grid import SweepSpec
from introzoo.cli.sweep_run import make_executor

submitit = pytest.importorskip("submitit")
from test_slurm_executor import _sbatch_script  # noqa: E402


def test_ddp_asks_one_task_per_gpu(tmp_path, monkeypatch):
    cfg = SubmititConfig(gpus=4, cpus=8, ddp=True)
    params = SubmititExecutor(cfg).parameters(True, "introzoo-demo")
    assert params["gpus_per_node"] == 4 and params["tasks_per_node"] == 4 and params["cpus_per_task"] == 8
    script = _sbatch_script(cfg, tmp_path, monkeypatch)
    for line in ("--gpus-per-node=4", "--ntasks-per-node=4", "--cpus-per-task=8"):
        assert f"#SBATCH {line}\n" in script, line
    assert "tasks_per_node" not in SubmititExecutor(SubmititConfig(gpus=4)).parameters(True, "x")


def test_ddp_without_gpus_and_a_managed_sbatch_line_are_refused():
    with pytest.raises(UsageError, match="give gpus=N"):
        make_executor(registry(), SweepSpec(objective=["vae"], data=["rings"], executor="submitit,ddp=true"), None, None)
    with pytest.raises(ValueError, match="use the executor option 'ddp'"):
        SubmititConfig(gpus=2, sbatch=["--ntasks-per-node=2"])


def test_a_job_process_trains_the_run_data_parallel(tmp_path, monkeypatch):
    """What each Slurm task runs (here the only one, gloo on the CPU): process 0 writes the run."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    for k, v in {
        "RANK": "0",
        "WORLD_SIZE": "1",
        "LOCAL_RANK": "0",
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": str(port),
    }.items():
        monkeypatch.setenv(k, v)
    run = resolve(
        RunConfig(data="8gaussians", objective="soft,num_vae=2", iterations=4, batch_size=32, metrics=["kl"], device="cpu"),
        registry(),
    )
    out = tmp_path / "runs" / run.hash()
    result = SweepRun(0, 600, 90, None, ddp=True)(str(out), run.record(), 1, str(tmp_path))
    assert result["status"] == "finished"
    assert json.loads((out / "metrics.json").read_text())["iterations"] == 4
    assert not (out / "resume.pt").exists()
