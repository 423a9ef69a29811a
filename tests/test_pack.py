"""Packed training: every member of a pack is the run trained alone (float64, 1e-10)."""

from __future__ import annotations

import pytest
import torch

from introzoo import hookimpl, plugins
from introzoo.config import RunConfig, resolve
from introzoo.errors import UsageError
from introzoo.packing.loop import check_packable
from introzoo.packing.model import MaskedAdam
from introzoo.testing import checks_pack
from introzoo.testing.checks_pack import compare_pack

SMALL = dict(
    backbone="mlp,hidden=32,layers=1",
    iterations=160,
    batch_size=64,
    log_every=20,
    metrics=["gnelbo,grid=64,n_data=512", "kl,n_samples=500"],
    device="cpu",
)


def _runs(objective: str, data: str, members: list[dict]) -> list:
    reg = plugins.registry()
    return [resolve(RunConfig(objective=f"{objective},{m.pop('opts')}", data=data, **{**SMALL, **m}), reg) for m in members]


@pytest.fixture
def float64():
    with checks_pack.float64():
        yield


def test_soft_pack_equals_solo_runs(tmp_path, float64):
    members = [
        dict(seed=0, opts="beta_kl=0.3,num_vae=0"),
        dict(seed=1, opts="beta_kl=0.5,beta_neg=0.7,num_vae=50"),
        dict(seed=2, opts="beta_rec=0.5,gamma_r=0.1,num_vae=100", lr=5e-4, lr_milestones=[60, 120], lr_gamma=0.5),
        dict(seed=3, opts="beta_neg=2.0,num_vae=160"),  # warm-up over the whole run
        dict(seed=0, opts="beta_kl=1.0,num_vae=10", lr=1e-3),
        dict(seed=5, opts="beta_rec=1e4,beta_neg=1e-3,num_vae=40", lr=50.0),  # diverges mid-pack
    ]
    statuses = compare_pack(_runs("soft", "8gaussians", members), tmp_path, 1e-10)
    assert statuses.count("diverged") == 1 and statuses[-1] == "diverged"


@pytest.mark.slow
def test_intro_pack_equals_solo_runs(tmp_path, float64):
    members = [
        dict(seed=0, opts="m=5,beta_kl=0.5,num_vae=0"),
        dict(seed=1, opts="m=2,beta_neg=0.8,num_vae=40"),
        dict(seed=2, opts="m=8,beta_rec=0.5,num_vae=100", lr_milestones=[80], lr_gamma=0.1),
        dict(seed=3, opts="m=5,num_vae=20", lr=1e-3),
        dict(seed=4, opts="m=1,beta_kl=0.2,num_vae=0"),
        dict(seed=5, opts="m=1e6,beta_neg=1e3,num_vae=30", lr=100.0),  # diverges mid-pack
    ]
    statuses = compare_pack(_runs("intro", "rings", members), tmp_path, 1e-10)
    assert statuses.count("diverged") == 1 and statuses[-1] == "diverged"


def test_vae_pack_equals_solo_runs(tmp_path, float64):
    members = [dict(seed=s, opts=f"beta_kl={b}", iterations=60) for s, b in ((0, 0.05), (1, 1.0), (2, 0.3))]
    compare_pack(_runs("vae", "2spirals", members), tmp_path, 1e-10)


def test_masked_adam_is_torch_adam_and_leaves_other_members_alone():
    torch.manual_seed(0)
    w = torch.nn.Parameter(torch.randn(3, 4, 5, dtype=torch.float64))
    solo = [torch.nn.Parameter(w[i].detach().clone()) for i in range(3)]
    lrs = [1e-3, 5e-2, 2e-4]
    opts = [torch.optim.Adam([p], lr=lr, foreach=True) for p, lr in zip(solo, lrs)]
    adam = MaskedAdam([w], lrs)
    for t in range(5):
        grads = torch.randn(3, 4, 5, dtype=torch.float64)
        members = [0, 2] if t % 2 else [0, 1, 2]
        w.grad = grads.clone()
        frozen = w[1].detach().clone(), adam.exp_avg[0][1].clone()
        adam.step(members)
        for i in members:
            solo[i].grad = grads[i].clone()
            opts[i].step()
        if 1 not in members:
            assert torch.equal(w[1], frozen[0]) and torch.equal(adam.exp_avg[0][1], frozen[1])
        for i in range(3):
            assert torch.allclose(w[i], solo[i], rtol=0, atol=1e-15)


def test_components_that_do_not_pack_say_so():
    reg = plugins.registry()
    runs = [resolve(RunConfig(objective="soft", regularizers=["factor"], data="8gaussians"), reg)]
    with pytest.raises(UsageError, match="regularizer 'factor' does not pack"):
        check_packable(runs)
    runs = [
        resolve(RunConfig(objective="soft", prior="mog:4", regularizers=r, data="8gaussians"), reg)
        for r in (["clip-logvar"], ["clip-logvar,K=5"])
    ]
    with pytest.raises(UsageError, match="share their regularizers"):
        check_packable(runs)
    runs = [
        resolve(RunConfig(objective="soft", data="8gaussians"), reg),
        resolve(RunConfig(objective="soft", data="rings"), reg),
    ]
    with pytest.raises(UsageError, match="share their dataset"):
        check_packable(runs)
    assert reg.get("objectives", "soft").describe()["packable"]
    assert reg.get("regularizers", "clip-logvar").describe()["packable"]
    assert not reg.get("regularizers", "factor").describe()["packable"]


class _Logger:
    """A logger plugin: every run-lifecycle hook call, by run (its hash) and attempt (packed first)."""

    def __init__(self) -> None:
        self.calls: dict[str, list[list]] = {}

    @hookimpl
    def introzoo_run_start(self, run, out_dir):
        self.calls.setdefault(run.hash(), []).append([("start", out_dir.name)])

    @hookimpl
    def introzoo_run_log(self, run, iteration, record):
        self.calls[run.hash()][-1].append(("log", iteration, {k: v for k, v in record.items() if k != "time_s"}))

    @hookimpl
    def introzoo_run_end(self, run, result):
        self.calls[run.hash()][-1].append(("end", result["status"], result.get("diverged_at"), sorted(result["metrics"])))


def test_a_logger_plugin_sees_each_packed_member_as_its_solo_run(tmp_path, float64, register_plugin):
    """One training loop: a packed member calls the run hooks as its solo run does (records, divergence
    and end), and writes the same metrics.json keys; one member diverges."""
    from introzoo.packing.loop import train_pack
    from introzoo.training.loop import train

    logger = _Logger()
    register_plugin(logger, name="logger")
    members = [
        dict(seed=0, opts="beta_kl=0.3,num_vae=20", iterations=60),
        dict(seed=5, opts="beta_rec=1e4,beta_neg=1e-3,num_vae=40", lr=50.0, iterations=60),
    ]
    runs = _runs("soft", "8gaussians", members)
    packed = train_pack(runs, [tmp_path / f"p{i}" for i in range(2)])
    alone = [train(r, tmp_path / f"s{i}") for i, r in enumerate(runs)]
    assert [r["status"] for r in packed] == [r["status"] for r in alone] == ["finished", "diverged"]
    for i in range(2):
        p, s = logger.calls[runs[i].hash()]
        assert p[0] == ("start", f"p{i}") and s[0] == ("start", f"s{i}")
        assert [c[:2] for c in p[1:]] == [c[:2] for c in s[1:]] and p[-1] == s[-1]
        for a, b in zip(p[1:-1], s[1:-1]):
            assert a[2].keys() == b[2].keys()
            assert all(a[2][k] == pytest.approx(b[2][k], rel=1e-9, nan_ok=True) for k in a[2])
        assert set(packed[i]) - {"packed"} == set(alone[i])
    assert logger.calls[runs[1].hash()][0][-1][2] == alone[1]["diverged_at"] < 59
