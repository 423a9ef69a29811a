"""Packed training: every member of a pack is the run trained alone (float64, 1e-10)."""

from __future__ import annotations

import json
import math

import pytest
import torch

from introzoo import plugins
from introzoo.config import RunConfig, resolve
from introzoo.errors import UsageError
from introzoo.pack import check_packable, train_pack
from introzoo.packed import MaskedAdam
from introzoo.train import load, train

SMALL = dict(backbone="mlp,hidden=32,layers=1", iterations=160, batch_size=64, log_every=20,
             metrics=["gnelbo,grid=64,n_data=512", "kl,n_samples=500"], device="cpu")


def _runs(objective: str, data: str, members: list[dict]) -> list:
    reg = plugins.registry()
    return [resolve(RunConfig(objective=f"{objective},{m.pop('opts')}", data=data, **{**SMALL, **m}), reg)
            for m in members]


def _close(a: float, b: float, tol: float) -> bool:
    if not (math.isfinite(a) and math.isfinite(b)):
        return (math.isnan(a) and math.isnan(b)) or a == b
    return abs(a - b) <= tol * max(1.0, abs(a), abs(b))


def _compare(runs, tmp_path, tol: float):
    packed = train_pack(runs, [tmp_path / f"p{i}" for i in range(len(runs))])
    statuses = []
    for i, (run, res) in enumerate(zip(runs, packed)):
        ref = train(run, tmp_path / f"s{i}")
        statuses.append(ref["status"])
        assert res["status"] == ref["status"] and res["iterations"] == ref["iterations"]
        assert res.get("diverged_at") == ref.get("diverged_at")
        pc = json.loads((tmp_path / f"p{i}" / "config.json").read_text())
        sc = json.loads((tmp_path / f"s{i}" / "config.json").read_text())
        assert pc["hash"] == sc["hash"] == run.hash()
        ph = [json.loads(x) for x in (tmp_path / f"p{i}" / "history.jsonl").read_text().splitlines()]
        sh = [json.loads(x) for x in (tmp_path / f"s{i}" / "history.jsonl").read_text().splitlines()]
        assert len(ph) == len(sh)
        for a, b in zip(ph, sh):
            assert a.keys() == b.keys()
            for k in a:
                if k != "time_s":
                    assert _close(a[k], b[k], tol), (i, a["iteration"], k, a[k], b[k])
        assert res["metrics"].keys() == ref["metrics"].keys()
        for k in ref["metrics"]:
            assert _close(res["metrics"][k], ref["metrics"][k], tol), (i, k)
        if ref["status"] == "finished":
            _, pb = load(tmp_path / f"p{i}")
            _, sb = load(tmp_path / f"s{i}")
            for (n, p), (_, q) in zip(pb.model.state_dict().items(), sb.model.state_dict().items()):
                assert torch.allclose(p, q, rtol=0, atol=tol), n
            po = torch.load(tmp_path / f"p{i}" / "checkpoint.pt", weights_only=True)["objective"]
            so = torch.load(tmp_path / f"s{i}" / "checkpoint.pt", weights_only=True)["objective"]
            for g in so["optimizers"]:
                assert po["optimizers"][g]["param_groups"][0]["lr"] == so["optimizers"][g]["param_groups"][0]["lr"]
                for k, st in so["optimizers"][g]["state"].items():
                    assert float(po["optimizers"][g]["state"][k]["step"]) == float(st["step"])
                    assert torch.allclose(po["optimizers"][g]["state"][k]["exp_avg"], st["exp_avg"], rtol=0, atol=tol)
            assert po["schedulers"]["encoder"]["last_epoch"] == so["schedulers"]["encoder"]["last_epoch"]
    return statuses


@pytest.fixture
def float64():
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)


def test_soft_pack_equals_solo_runs(tmp_path, float64):
    members = [
        dict(seed=0, opts="beta_kl=0.3,num_vae=0"),
        dict(seed=1, opts="beta_kl=0.5,beta_neg=0.7,num_vae=50"),
        dict(seed=2, opts="beta_rec=0.5,gamma_r=0.1,num_vae=100", lr=5e-4, lr_milestones=[60, 120], lr_gamma=0.5),
        dict(seed=3, opts="beta_neg=2.0,num_vae=160"),  # warm-up over the whole run
        dict(seed=0, opts="beta_kl=1.0,num_vae=10", lr=1e-3),
        dict(seed=5, opts="beta_rec=1e4,beta_neg=1e-3,num_vae=40", lr=50.0),  # diverges mid-pack
    ]
    statuses = _compare(_runs("soft", "8gaussians", members), tmp_path, 1e-10)
    assert statuses.count("diverged") == 1 and statuses[-1] == "diverged"


def test_intro_pack_equals_solo_runs(tmp_path, float64):
    members = [
        dict(seed=0, opts="m=5,beta_kl=0.5,num_vae=0"),
        dict(seed=1, opts="m=2,beta_neg=0.8,num_vae=40"),
        dict(seed=2, opts="m=8,beta_rec=0.5,num_vae=100", lr_milestones=[80], lr_gamma=0.1),
        dict(seed=3, opts="m=5,num_vae=20", lr=1e-3),
        dict(seed=4, opts="m=1,beta_kl=0.2,num_vae=0"),
        dict(seed=5, opts="m=1e6,beta_neg=1e3,num_vae=30", lr=100.0),  # diverges mid-pack
    ]
    statuses = _compare(_runs("intro", "rings", members), tmp_path, 1e-10)
    assert statuses.count("diverged") == 1 and statuses[-1] == "diverged"


def test_vae_pack_equals_solo_runs(tmp_path, float64):
    members = [dict(seed=s, opts=f"beta_kl={b}", iterations=60) for s, b in ((0, 0.05), (1, 1.0), (2, 0.3))]
    _compare(_runs("vae", "2spirals", members), tmp_path, 1e-10)


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
    runs = [resolve(RunConfig(objective="soft", prior="mog:4", data="8gaussians"), reg)]
    with pytest.raises(UsageError, match="prior 'mog' does not pack"):
        check_packable(runs)
    runs = [resolve(RunConfig(objective="soft", data="8gaussians"), reg),
            resolve(RunConfig(objective="soft", data="rings"), reg)]
    with pytest.raises(UsageError, match="share their dataset"):
        check_packable(runs)
    assert reg.get("objectives", "soft").describe()["packable"]
    assert not reg.get("objectives", "soft-prior").describe()["packable"]
