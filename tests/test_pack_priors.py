"""Packs with learned priors and regularizers: every member is the run trained alone (float64, 1e-10).

Each test trains its members as one pack and each alone and compares, member by member, every history
line, the metrics, the regularizer reports and every checkpoint tensor: encoder, decoder and prior
parameters, each optimiser's Adam moments and step, schedules, regularizer state
(:func:`introzoo.testing.checks_pack.compare_pack`).
"""

from __future__ import annotations

import json

import pytest
import torch

from introzoo import plugins
from introzoo.config import RunConfig, resolve
from introzoo.packing.loop import Pack
from introzoo.testing import checks_pack
from introzoo.testing.checks_pack import compare_pack

SMALL = dict(
    backbone="mlp,hidden=32,layers=1",
    batch_size=64,
    log_every=20,
    device="cpu",
    metrics=["gnelbo,grid=64,n_data=512", "kl,n_samples=500"],
)


@pytest.fixture
def float64():
    with checks_pack.float64():
        yield


def _runs(objective: str, prior: str, regs: list[str], data: str, iterations: int, members: list[dict]) -> list:
    reg = plugins.registry()
    return [
        resolve(
            RunConfig(
                objective=f"{objective},{m.pop('opts')}",
                prior=prior,
                regularizers=regs,
                data=data,
                iterations=iterations,
                **{**SMALL, **m},
            ),
            reg,
        )
        for m in members
    ]


@pytest.mark.slow
def test_soft_prior_mog_clip_logvar_pack_equals_solo_runs(tmp_path, float64):
    """soft-prior + mog:8 + clip-logvar: each member fixes its clipping range at its own warm-up end."""
    members = [
        dict(seed=0, opts="beta_kl=0.3,num_vae=0"),
        dict(seed=1, opts="beta_kl=0.5,beta_neg=0.7,gamma=0.5,num_vae=50"),
        dict(seed=2, opts="beta_rec=0.5,gamma_r=0.1,num_vae=100", lr=5e-4, lr_milestones=[60, 120], lr_gamma=0.5),
        dict(seed=3, opts="beta_neg=2.0,num_vae=200"),  # warm-up over the whole run: the range never fixed
        dict(seed=0, opts="beta_kl=1.0,gamma=2.0,num_vae=10", lr=1e-3),
        dict(seed=5, opts="beta_rec=100,beta_kl=50,num_vae=40", lr=2.0),  # diverges after its warm-up
    ]
    runs = _runs("soft-prior", "mog:8,kl_samples=20", ["clip-logvar"], "8gaussians", 200, members)
    statuses = compare_pack(runs, tmp_path, 1e-10)
    assert statuses == ["finished"] * 5 + ["diverged"]
    res = [json.loads((tmp_path / f"p{i}" / "metrics.json").read_text()) for i in range(6)]
    assert 40 <= res[5]["diverged_at"] < 150  # mid-pack, the others go on
    ranges = [r["regularizers"]["clip-logvar"] for r in res[:5]]
    assert ranges[3] == {"range_fixed": False} and all(r.get("inside") for r in ranges[:3] + ranges[4:])
    assert len({json.dumps(r["lo"]) for r in ranges[:3] + ranges[4:]}) == 4  # each member its own range


def test_learned_weights_data_init_resp_entropy_pack_equals_solo_runs(tmp_path, float64):
    """mog with learnable weights, components at the members' own data posteriors (init=data), and
    resp-entropy's fresh posterior draws from each member's stream."""
    members = [
        dict(seed=0, opts="num_vae=0"),
        dict(seed=1, opts="beta_kl=0.5,num_vae=30"),
        dict(seed=2, opts="beta_neg=0.5,gamma=0.3,num_vae=60", lr=1e-3),
        dict(seed=3, opts="num_vae=15", lr_milestones=[50], lr_gamma=0.3),
    ]
    runs = _runs(
        "soft-prior",
        "mog:4,learn_weights=true,init=data,kl_samples=10",
        ["clip-logvar", "resp-entropy,samples=5"],
        "rings",
        100,
        members,
    )
    assert compare_pack(runs, tmp_path, 1e-10) == ["finished"] * 4


def test_fixed_mog_soft_pack_equals_solo_runs(tmp_path, float64):
    """soft with a fixed mog (seed 003's fixed-MoG baseline): no prior optimiser in the pack."""
    members = [dict(seed=s, opts=f"beta_kl={b},num_vae={n}") for s, b, n in ((0, 0.5, 0), (1, 1.0, 20), (2, 0.2, 50))]
    runs = _runs("soft", "mog:3,learn_means=false,learn_logvars=false,kl_samples=10", [], "2spirals", 80, members)
    assert compare_pack(runs, tmp_path, 1e-10) == ["finished"] * 3


@pytest.mark.parametrize("prior", ["vamp:3,to_mog=true,kl_samples=10", "flow:2,hidden=16"])
def test_vamp_and_flow_pack_equal_solo_runs(tmp_path, float64, prior):
    """vamp reads the pack's encoder and turns into a mog at each member's warm-up end; flow."""
    members = [dict(seed=s, opts=f"beta_kl={b},num_vae={n}") for s, b, n in ((0, 0.5, 0), (1, 1.0, 25), (2, 0.2, 50))]
    runs = _runs("soft-prior", prior, [], "8gaussians", 80, members)
    assert compare_pack(runs, tmp_path, 1e-10) == ["finished"] * 3


def test_warmup_end_hooks_run_per_member_at_their_own_iteration(float64):
    """The prior's and the regularizers' warm-up end hooks run once, at member i's own ``num_vae``."""
    members = [dict(seed=s, opts=f"num_vae={n}") for s, n in ((0, 2), (1, 5))]
    runs = _runs("soft-prior", "mog:3,kl_samples=5", ["clip-logvar"], "8gaussians", 8, members)
    from introzoo.training import loop as solo

    builts, gens = [], []
    for r in runs:
        builts.append(solo.build(r))
        gens.append(torch.Generator())
        gens[-1].set_state(torch.get_rng_state())
    pack = Pack(runs, builts, gens)
    calls = []
    for i, b in enumerate(builts):
        clip = b.objective.regularizers[0]
        orig = clip.on_warmup_end
        clip.on_warmup_end = lambda model, i=i, orig=orig: (calls.append((i, it, model.i)), orig(model))
    for it in range(8):
        xs = torch.stack([b.dataset.sample(64, torch.Generator().manual_seed(it)) for b in builts])
        pack.step(xs.to(torch.float64), [0, 1], it)
    assert calls == [(0, 2, 0), (1, 5, 1)]
    lo0, lo1 = (b.objective.regularizers[0].lo for b in builts)
    assert lo0 is not None and lo1 is not None and not torch.equal(lo0, lo1)
