"""A model that would not fit in memory is refused before anything is allocated (one line, exit 2)."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from introzoo.training import limits
from introzoo.cli import main
from introzoo.config import RunConfig, resolve
from introzoo.errors import UsageError
from introzoo.plugins import state


def test_impossible_mixture_is_one_line_exit_2():
    r = subprocess.run(
        [sys.executable, "-m", "introzoo.cli", "run", "-p", "mog:100000000", "-n", "2", "--device", "cpu", "-q"],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert "prior 'mog'" in r.stderr and "memory limit" in r.stderr


@pytest.mark.parametrize(
    "args,what",
    [
        (["-b", "mlp,hidden=2000000000"], "backbone 'mlp'"),  # beyond what PyTorch can index
        (["-b", "mlp,layers=100000000"], "backbone 'mlp'"),  # stopped part-way through the build
        (["-p", "vamp:100000000"], "prior 'vamp'"),  # (51200 x 10^8) matrix in the KL
        (["-p", "flow,hidden=2000000000"], "prior 'flow'"),
        (["-p", "flow:100000000"], "prior 'flow'"),  # 10^8 coupling layers: too many modules
        (["-p", "mog:100000000000000000000000"], "prior 'mog'"),  # not even a 64-bit size
    ],
)
def test_huge_components_are_refused(args, what, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv(limits.ENV, "4G")
    monkeypatch.setattr(limits, "MAX_MODULES", 2000)  # the same refusal, sooner
    assert main(["run", *args, "-n", "2", "--device", "cpu", "-q", "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and what in err, err
    assert not (tmp_path / "r" / "checkpoint.pt").exists()


def test_limit_from_environment(tmp_path, capsys, monkeypatch):
    # vamp:10^8 on 2D data: 2*10^8 float32 pseudo-input values, x4 with the gradient and Adam's states
    monkeypatch.setenv(limits.ENV, "1G")
    assert main(["run", "-p", "vamp:100000000", "-n", "2", "--device", "cpu", "-q", "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "prior 'vamp' needs more than" in err and "parameters" in err and "1.0 GB (INTROZOO_MEMORY_LIMIT)" in err
    monkeypatch.setenv(limits.ENV, "lots")
    assert main(["run", "-n", "2", "--device", "cpu", "-q", "--out", str(tmp_path / "s")]) == 2
    assert "INTROZOO_MEMORY_LIMIT='lots' is not a memory size" in capsys.readouterr().err


@pytest.mark.parametrize(
    "text,n", [("8G", 8 * 1024**3), ("512M", 512 * 1024**2), ("1.5K", 1536), ("1000", 1000), ("2GiB", 2 * 1024**3)]
)
def test_parse_size(text, n):
    assert limits.parse_size(text) == n


@pytest.mark.parametrize("text", ["", "0", "-1G", "8X", "G"])
def test_parse_size_refuses(text):
    with pytest.raises(UsageError):
        limits.parse_size(text)


def _run(prior: str, batch_size: int = 512):
    return resolve(RunConfig(prior=prior, batch_size=batch_size, metrics=[]), state().registry)


def test_kl_matrix_estimate(monkeypatch):
    # mog:1000 with 100 KL samples per posterior on a batch of 512: a 51200 x 1000 float32 matrix
    matrix = 512 * 100 * 1000 * 4
    run = _run("mog:1000")
    monkeypatch.setenv(limits.ENV, str(int(matrix * 0.99)))
    with pytest.raises(UsageError, match="prior 'mog' needs more than .* KL evaluation on a batch of 512"):
        limits.check_fits(run, (2,), 2)
    monkeypatch.setenv(limits.ENV, str(int(matrix * 1.05)))
    limits.check_fits(run, (2,), 2)


def test_parameter_estimate(monkeypatch):
    # mog:10^6, zdim 2: means and log-variances trainable (x4), weights frozen: (2+2)*4*4 + 4 bytes per
    # component; plus the mlp backbone's trainable weights (x4); one KL sample on a batch of 1 keeps
    # the KL's (1 x 10^6) matrix below that
    from introzoo.backbones.mlp import MLPConfig, build

    backbone = sum(p.numel() for m in build(MLPConfig(), (2,), 2) for p in m.parameters()) * 4 * 4
    params = 10**6 * (4 * 4 * 4 + 4) + backbone
    run = _run("mog:1000000,kl_samples=1", batch_size=1)
    monkeypatch.setenv(limits.ENV, str(params - 10**6))
    with pytest.raises(UsageError, match="prior 'mog' needs more than .* parameters"):
        limits.check_fits(run, (2,), 2)
    monkeypatch.setenv(limits.ENV, str(params + 10**6))
    limits.check_fits(run, (2,), 2)


def test_check_does_not_touch_the_random_stream():
    run = _run("vamp:16")
    torch.manual_seed(0)
    before = torch.get_rng_state()
    limits.check_fits(run, (2,), 2)
    assert torch.equal(torch.get_rng_state(), before)
