"""Packed training of the image backbones (``conv``, ``resnet``): every member is its solo run (float64,
1e-10), BatchNorm running statistics and image progress grids included."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from introzoo import plugins
from introzoo.config import RunConfig, resolve
from introzoo.data.images import ImageDataset
from introzoo.errors import UsageError
from introzoo.packing.conv import PackedConvNet
from introzoo.sweeps.packs import pack_key
from introzoo.testing import checks_pack
from introzoo.testing.checks_pack import compare_pack

# 1,437 training images in batches of 64: iteration 23 is an epoch's last, smaller batch (29 images)
SMALL = dict(data="digits", iterations=30, batch_size=64, log_every=5, image_every=12, metrics=[], device="cpu")


@pytest.fixture
def float64(monkeypatch):
    """float64 throughout; images are scaled to [0, 1] in the default dtype (the loaders give float32)."""
    monkeypatch.setattr(ImageDataset, "to_float", staticmethod(lambda x: x.to(torch.get_default_dtype()).div_(255.0)))
    with checks_pack.float64():
        yield


def _runs(objective: str, backbone: str, members: list[dict]) -> list:
    reg = plugins.registry()
    return [
        resolve(RunConfig(objective=f"{objective},{m.pop('opts')}", backbone=backbone, **{**SMALL, **m}), reg)
        for m in members
    ]


def _same_progress(out: Path, n: int) -> None:
    """Each member's progress grids: the files its solo run writes, pixel for pixel."""
    for i in range(n):
        names = sorted(p.name for p in (out / f"s{i}" / "progress").iterdir())
        assert names == ["iter_0000012.png", "iter_0000024.png", "iter_0000030.png"]  # the last at the end
        assert sorted(p.name for p in (out / f"p{i}" / "progress").iterdir()) == names
        for name in names:
            a, b = (np.asarray(Image.open(out / f"{d}{i}" / "progress" / name)) for d in "ps")
            assert a.shape == b.shape and np.array_equal(a, b), f"member {i}: {name} differs"


def test_conv_pack_equals_solo_runs(tmp_path, float64):
    members = [
        dict(seed=0, opts="beta_kl=0.5,num_vae=0"),
        dict(seed=1, opts="beta_neg=32.0,num_vae=8", lr=5e-4),
        dict(seed=2, opts="beta_rec=0.5,beta_kl=2.0,num_vae=30", lr_milestones=[12], lr_gamma=0.5),
        dict(seed=3, opts="beta_neg=64.0,gamma_r=1e-3,num_vae=15", metrics=["knn5"]),
    ]
    statuses = compare_pack(_runs("soft", "conv,channels=[8,16]", members), tmp_path, 1e-10)
    assert statuses == ["finished"] * 4
    _same_progress(tmp_path, 4)


def test_intro_conv_pack_equals_solo_runs(tmp_path, float64):
    members = [
        dict(seed=0, opts="m=5.0,beta_kl=0.5,num_vae=0"),
        dict(seed=1, opts="m=2.0,beta_neg=0.5,num_vae=8"),
        dict(seed=2, opts="m=8.0,beta_rec=0.5,num_vae=30"),
    ]
    assert compare_pack(_runs("intro", "conv,channels=[8,16]", members), tmp_path, 1e-10) == ["finished"] * 3


@pytest.mark.slow
def test_resnet_pack_equals_solo_runs_batchnorm_included(tmp_path, float64):
    members = [
        dict(seed=0, opts="beta_kl=0.5,num_vae=5"),  # iterations 0-4 and 20-29: the whole pack in one
        dict(seed=1, opts="beta_neg=32.0,num_vae=5"),  # phase; 5-19: the members split by phase
        dict(seed=2, opts="beta_rec=0.5,beta_neg=8.0,num_vae=20", lr=2e-3),
    ]
    runs = _runs("soft", "resnet,channels=[8,16]", members)
    assert compare_pack(runs, tmp_path, 1e-10) == ["finished"] * 3
    _same_progress(tmp_path, 3)
    ck = torch.load(tmp_path / "p1" / "checkpoint.pt", weights_only=True)["model"]
    stats = [k for k in ck if k.endswith("running_mean")]
    assert stats and int(ck["encoder.main.1.num_batches_tracked"]) > 30  # moved: BatchNorm is in the comparison
    assert float(ck["encoder.main.1.running_var"].sub(1).abs().max()) > 1e-3


def test_image_runs_get_pack_keys_and_stacked_layers_keep_solo_names(float64):
    runs = _runs("soft", "resnet,channels=[8,16]", [dict(seed=0, opts="num_vae=0"), dict(seed=1, opts="beta_kl=2.0")])
    assert pack_key(runs[0]) is not None and pack_key(runs[0]) == pack_key(runs[1])
    from introzoo.training.loop import build

    models = [build(r).model for r in runs]
    net = PackedConvNet([m.decoder for m in models], "decoder")
    assert [n for n, _ in net.named_parameters()] == [n for n, _ in models[0].decoder.named_parameters()]
    z = torch.randn(2, 5, int(runs[0].train["zdim"]))
    with torch.no_grad():
        for m in models:
            m.decoder.eval()
        net.eval()
        out = net(z, None)
        for i, m in enumerate(models):
            assert torch.allclose(out[i], m.decoder(z[i]), rtol=0, atol=1e-12)
        one = net(z[1:], torch.tensor([1]))
        assert torch.allclose(one[0], models[1].decoder(z[1]), rtol=0, atol=1e-12)


def test_layers_that_do_not_pack_say_so():
    class Dropping(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.main = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.Dropout(0.5))
            self.fc = torch.nn.Linear(4, 2)
            self.feature_shape = (4, 1, 1)

    with pytest.raises(UsageError, match="'main.1' \\(Dropout\\) of the backbone does not pack"):
        PackedConvNet([Dropping(), Dropping()], "encoder")


def test_a_pack_holds_one_image_split_whatever_its_size(tmp_path, monkeypatch):
    """A pack shares one dataset: 16 members load the training split once, so the pack's data takes one
    member's memory (the same tensor storage), where one load per member took 16 times it."""
    from introzoo.packing.loop import train_pack

    runs = _runs(
        "vae", "conv,channels=[4]", [dict(seed=s, opts="beta_kl=1.0", iterations=2, image_every=100) for s in range(16)]
    )
    cls, loads = type(runs[0].dataset), []
    original = cls._load

    def counted(self, train):
        loads.append(train)
        return original(self, train)

    monkeypatch.setattr(cls, "_load", counted)
    from introzoo.training import loop as solo

    built, build = [], solo.build
    monkeypatch.setattr(solo, "build", lambda *a, **k: built.append(build(*a, **k)) or built[-1])
    train_pack(runs, [tmp_path / f"p{i}" for i in range(16)])
    assert loads.count(True) == 1  # one training split for 16 members
    assert len(built) == 16 and len({id(b.dataset) for b in built}) == 1
    storages = {b.dataset.images("train")[0].untyped_storage().data_ptr() for b in built}
    assert len(storages) == 1  # the pack's image data is one member's
