"""Packed runs are their solo runs bit for bit in float32 at the default network size (``mlp`` 3x256,
batch 512, the 2D sets' defaults): every history line, metric and checkpoint tensor, with members that
differ in seed, float options (products of them included), learning rate and warm-up, about a hundred
iterations past the warm-up (the warm-up's end and a learning-rate milestone included). In float32 the
adversarial game amplifies a one-ulp difference to different models within a few hundred iterations, so
anything short of bit equality would let a packed sweep store other results than a solo one under the
same run hash; the comparison is exact at every logged iteration, so a difference shows where it starts."""

from __future__ import annotations

import pytest
import torch

from introzoo import plugins
from introzoo.config import RunConfig, resolve
from introzoo.objectives.members import MemberOption
from introzoo.testing.checks_pack import compare_pack

# bit-for-bit checks at the default network size: minutes each (run with --full, as CI does)
pytestmark = pytest.mark.slow

# the metrics are functions of the checkpoint, which is compared tensor by tensor: small ones suffice
DEFAULT = dict(
    data="8gaussians",
    iterations=130,
    log_every=10,
    device="cpu",
    metrics=["kl,n_samples=500", "jsd,n_samples=500", "gnelbo,grid=32,n_data=256"],
)


def _runs(objective: str, members: list[dict], **extra) -> list:
    reg = plugins.registry()
    runs = [resolve(RunConfig(objective=f"{objective},{m.pop('opts')}", **{**DEFAULT, **extra, **m}), reg) for m in members]
    assert runs[0].train["batch_size"] == 512 and runs[0].backbone.config.hidden == 256
    assert runs[0].backbone.config.layers == 3 and torch.get_default_dtype() == torch.float32
    return runs


def test_soft_float32_default_network_bit_for_bit(tmp_path):
    members = [
        dict(seed=0, opts="num_vae=10"),
        dict(seed=1, opts="beta_kl=0.3,beta_neg=0.7,gamma_r=0.3,beta_rec=0.6,num_vae=20", lr=5e-4),
    ]
    assert compare_pack(_runs("soft", members), tmp_path, 0.0) == ["finished", "finished"]


def test_intro_float32_default_network_bit_for_bit(tmp_path):
    members = [
        dict(seed=0, opts="m=3,num_vae=20"),
        dict(seed=1, opts="m=7,beta_kl=0.3,beta_neg=0.7,beta_rec=0.6,num_vae=0", lr_milestones=[100]),
    ]
    assert compare_pack(_runs("intro", members), tmp_path, 0.0) == ["finished", "finished"]


def test_soft_prior_mog_clip_logvar_float32_default_network_bit_for_bit(tmp_path):
    members = [dict(seed=0, opts="num_vae=10"), dict(seed=1, opts="gamma=0.7,beta_kl=0.3,gamma_r=0.3,num_vae=20")]
    runs = _runs("soft-prior", members, prior="mog:8,kl_samples=20", regularizers=["clip-logvar"], iterations=120)
    assert compare_pack(runs, tmp_path, 0.0) == ["finished", "finished"]


@pytest.mark.parametrize("a,b", [(0.3, 0.6), (1e-8, 0.7), (0.37, 1.9), (4.0, 0.1)])
def test_member_options_compute_as_python_floats_then_round_at_the_tensor(a, b):
    """Alone, ``0.5 * gamma_r * beta_rec * t`` multiplies Python floats (double) and rounds once where
    the product meets the float32 tensor; a pack's options must do the same (float32 columns multiplied
    one by one round after each product and give another float32 about a third of the time)."""
    t = torch.tensor([[1.0, 3.0, 0.1], [7.0, -2.5, 11.0]])
    ga, gb = MemberOption([a, 2 * a]), MemberOption([b, b / 3])
    got = 0.5 * ga * gb * t
    for i, (x, y) in enumerate([(a, b), (2 * a, b / 3)]):
        assert torch.equal(got[i], 0.5 * x * y * t[i])
    assert got.dtype == torch.float32
    assert torch.equal(t * ga, torch.stack([t[0] * a, t[1] * 2 * a]))  # the tensor on the left
    assert torch.equal(torch.exp(ga * t), torch.stack([torch.exp(a * t[0]), torch.exp(2 * a * t[1])]))
    assert torch.equal((1 - ga) / gb * t, torch.stack([(1 - a) / b * t[0], (1 - 2 * a) / (b / 3) * t[1]]))
    assert torch.equal(-ga * t, torch.stack([-a * t[0], -2 * a * t[1]]))


def test_float32_columns_would_round_differently():
    """Why :class:`MemberOption` exists: the old (k, 1) float32 columns give another product."""
    a, b = 0.3, 0.7
    t = torch.ones(1, 1)
    col = 0.5 * torch.tensor([[a]]) * torch.tensor([[b]]) * t
    assert not torch.equal(col[0], 0.5 * a * b * t[0])
