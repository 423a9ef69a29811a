"""Progressive growing (``--resolution``, :mod:`introzoo.training.progressive`): the blend weight against
the official ``lod_driver.get_blend_factor``, the stages of the schedule, the stage inputs, a growing run
through every stage with its stage grids, and a run stopped mid-blend that resumes bit for bit."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image

from introzoo import plugins
from introzoo.config import RunConfig, resolve
from introzoo.errors import UsageError
from introzoo.training import progressive
from introzoo.training.loop import build, train
from introzoo.training.progressive import Schedule, blend_weight, stage_input
from introzoo.training.run_dir import RunDir
from test_resume import StopAt, Stopped, _final, _losses, _same_state

TINY = "style,style=6,mapping_layers=2,encoder_mapping_layers=2,start_channels=4,max_channels=8"


def image_folder(tmp_path, side: int, n: int = 24):
    d = tmp_path / f"images{side}"
    d.mkdir(exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (side, side, 3), dtype=np.uint8)).save(d / f"{i:02d}.png")
    return d


def test_blend_weight_hand_values():
    assert [blend_weight(t) for t in (0.0, 0.25, 0.5, 1.0, 1.5)] == pytest.approx(
        [0.0, 0.5 - 0.5 * math.cos(math.pi / 4), 0.5, 1.0, 1.0]
    )
    assert blend_weight(0.25) == pytest.approx(0.1464466, abs=1e-7)


def official_blend(epoch: int, images: int, epochs_per_lod: int, dataset_size: int, lod: int) -> float:
    """``lod_driver.LODDriver.get_blend_factor`` (``images``: seen in this epoch), with its transition rule."""
    in_transition = (epoch % epochs_per_lod) < epochs_per_lod // 2 and epoch // epochs_per_lod == lod > 0
    if not in_transition:
        return 1.0
    f = ((epoch % epochs_per_lod) * dataset_size + images) / (epochs_per_lod // 2 * dataset_size)
    return math.sin(f * math.pi - 0.5 * math.pi) * 0.5 + 0.5


def test_schedule_follows_the_official_blend_and_per_stage_lists():
    n, per_lod = 48, 6  # 48 images; 6 epochs per stage; batches 16, 8, 8 (the last value repeated)
    train = {
        "resolution": 16,
        "batch_size": 32,
        "stage_epochs": per_lod,
        "stage_batch_size": [16, 8],
        "stage_beta_neg": [2048.0, 1024.0, 512.0],
    }
    s = Schedule.from_train(train, lambda b: math.ceil(n / b))
    assert [(st.level, st.start, st.length, st.blend, st.batch_size, st.beta_neg) for st in s.stages] == [
        (0, 0, 18, 0, 16, 2048.0),
        (1, 18, 36, 18, 8, 1024.0),
        (2, 54, 36, 18, 8, 512.0),
    ]
    assert s.iterations == s.total == 90
    for st in s.stages:
        steps = math.ceil(n / st.batch_size)
        for it in range(st.start, st.start + st.length):
            p = s.at(it)
            epoch, k = divmod(it - st.start, steps)
            expect = official_blend(st.level * per_lod + epoch, k * st.batch_size, per_lod, n, st.level)
            assert (p.level, p.batch_size, p.beta_neg) == (st.level, st.batch_size, st.beta_neg)
            assert p.alpha == pytest.approx(expect, abs=1e-12)
            assert p.first == (it == st.start) and p.last == (it == st.start + st.length - 1)
    longer = Schedule.from_train({**train, "iterations": 100}, lambda b: math.ceil(n / b))
    assert longer.at(99).level == 2 and longer.at(99).last and not longer.at(89).last  # the last stage runs on


def test_lengths_in_iterations_and_blend_options():
    s = Schedule.from_train({"resolution": 16, "batch_size": 4, "stage_iterations": 10, "blend_iterations": 3}, lambda b: 99)
    assert [(st.start, st.length, st.blend) for st in s.stages] == [(0, 10, 0), (10, 10, 3), (20, 10, 3)]
    assert s.at(11).alpha == pytest.approx(blend_weight(1 / 3)) and s.at(13).alpha == 1.0
    s = Schedule.from_train({"resolution": 8, "batch_size": 4, "stage_epochs": 4, "blend_epochs": 1}, lambda b: 5)
    assert [(st.start, st.length, st.blend) for st in s.stages] == [(0, 20, 0), (20, 20, 5)]


def test_stage_input_pools_and_blends():
    x = torch.arange(16.0).view(1, 1, 4, 4)
    assert torch.equal(stage_input(x, 0, 1.0), x)
    y = stage_input(x, 0, 0.5)  # 2x2 means 2.5, 4.5, 10.5, 12.5, upsampled, half and half with x
    assert y[0, 0, 0, 0].item() == 1.25 and y[0, 0, 3, 3].item() == 13.75 and y[0, 0, 0, 3].item() == 0.5 * 3 + 0.5 * 4.5
    big = torch.arange(64.0).view(1, 1, 8, 8)
    assert torch.equal(stage_input(big, 0, 1.0), torch.nn.functional.avg_pool2d(big, 2))


def test_staged_data_stream_sizes(tmp_path):
    ds = (
        plugins.registry()
        .get("datasets", "folder")
        .build(plugins.registry().get("datasets", "folder").config(path=str(image_folder(tmp_path, 16))))
    )
    s = Schedule.from_train(
        {"resolution": 16, "batch_size": 8, "stage_iterations": 2, "stage_batch_size": [5, 3]}, ds.steps_per_epoch
    )
    it = progressive.StagedData(ds, s).batches(8, torch.Generator().manual_seed(0))
    assert [tuple(next(it).shape) for _ in range(6)] == [(5, 3, 4, 4)] * 2 + [(3, 3, 8, 8)] * 2 + [(3, 3, 16, 16)] * 2


def _cfg(folder, **kw):
    base = dict(
        objective="soft,num_vae=2",
        data=f"folder:{folder}",
        backbone=TINY,
        resolution=16,
        stage_iterations=4,
        batch_size=6,
        seed=2,
        device="cpu",
        metrics=[],
        log_every=2,
        kernels="aten",
        image_every=1000,
    )
    return RunConfig(**{**base, **kw})


def test_growing_run_passes_every_stage_and_resumes_mid_blend_bit_for_bit(tmp_path, monkeypatch):
    folder = image_folder(tmp_path, 16, 12)
    seen: dict[str, list] = {"ref": [], "cut": []}
    key = ["ref"]
    before = progressive.Growing.before_step

    def spy(self, it):
        p = before(self, it)
        seen[key[0]].append((it, self.nets[0].level, self.nets[0].alpha, self.nets[1].level, self.nets[1].alpha))
        return p

    monkeypatch.setattr(progressive.Growing, "before_step", spy)
    run = resolve(_cfg(folder, stage_beta_neg=[64.0, 32.0]), plugins.registry())
    assert run.train["iterations"] == 12 and "epochs" not in run.train
    ref_dir, cut_dir = RunDir(tmp_path / "ref"), RunDir(tmp_path / "cut")
    out = train(run, ref_dir.path)
    assert out["status"] == "finished"
    assert sorted(p.name for p in (ref_dir.path / "progress").glob("stage_*.png")) == [
        "stage_16.png",
        "stage_4.png",
        "stage_8.png",
    ]
    assert [s[1] for s in seen["ref"]] == [0] * 4 + [1] * 4 + [2] * 4
    assert seen["ref"][5][2] == pytest.approx(blend_weight(0.5)) and seen["ref"][3][2] == 1.0
    key[0] = "cut"
    with pytest.raises(Stopped):  # stopped in the middle of the 8x8 stage's blend
        train(resolve(_cfg(folder, stage_beta_neg=[64.0, 32.0]), plugins.registry()), cut_dir.path, resumable=StopAt(5))
    seen["cut"].clear()
    again = StopAt(None)
    train(resolve(_cfg(folder, stage_beta_neg=[64.0, 32.0]), plugins.registry()), cut_dir.path, resumable=again)
    assert again.resumed_at == 5
    assert seen["cut"] == seen["ref"][5:]  # the same stage and blend weight from the resumed iteration on
    assert _losses(cut_dir) == _losses(ref_dir)
    _same_state(_final(ref_dir)["model"], _final(cut_dir)["model"])
    _same_state(_final(ref_dir)["objective"], _final(cut_dir)["objective"])


def test_new_stage_empties_the_optimisers_and_sets_beta_neg(tmp_path):
    run = resolve(
        _cfg(image_folder(tmp_path, 8, 12), resolution=8, stage_iterations=2, stage_beta_neg=[8.0, 4.0]), plugins.registry()
    )
    built = build(run)
    grow = progressive.attach(run, built)
    x = built.dataset.sample(4, torch.Generator().manual_seed(0))
    for it in range(2):
        grow.before_step(it)
        built.objective.train_step(torch.nn.functional.avg_pool2d(x, 2), it)
    assert built.objective.config.beta_neg == 8.0 and all(o.state for o in built.objective.optimizers.values())
    grow.before_step(2)
    assert built.objective.config.beta_neg == 4.0 and not any(o.state for o in built.objective.optimizers.values())
    assert (built.model.decoder.level, built.model.decoder.alpha) == (1, 0.0)


@pytest.mark.parametrize(
    "kw,message",
    [
        (dict(resolution=32), "grows to 32x32 images"),
        (dict(resolution=12), "power of two"),
        (dict(resolution=None), "applies only with --resolution"),
        (dict(iterations=5), "ends before the last stage"),
        (dict(stage_batch_size=[4, 0]), "must be positive"),
    ],
)
def test_bad_growing_options_are_refused(tmp_path, kw, message):
    with pytest.raises(UsageError, match=message):
        resolve(_cfg(image_folder(tmp_path, 16, 4), **kw), plugins.registry())


def test_backbone_without_stages_is_refused(tmp_path):
    cfg = _cfg(image_folder(tmp_path, 8, 4), backbone="conv,channels=[4]", resolution=8, stage_iterations=2)
    with pytest.raises(UsageError, match="choose one that grows: style"):
        train(resolve(cfg, plugins.registry()), tmp_path / "run")
    assert not (tmp_path / "run" / "config.json").exists()


def test_cli_lists_the_backbone_and_refuses_bad_growing_in_one_line(tmp_path, capsys):
    from introzoo.cli import main

    assert main(["list", "backbones", "--json"]) == 0
    listed = {d["name"]: d for d in __import__("json").loads(capsys.readouterr().out)["backbones"]}
    assert {o["name"]: o["default"] for o in listed["style"]["options"]}["mapping_layers"] == 8
    folder = image_folder(tmp_path, 16, 4)
    code = main(
        [
            "run",
            "-o",
            "soft",
            "-b",
            "style",
            "-d",
            f"folder:{folder}",
            "--resolution",
            "32",
            "--threads",
            "1",
            "--out",
            str(tmp_path / "run"),
        ]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "grows to 32x32 images" in err[0] and "size=32" in err[0]
    assert not (tmp_path / "run").exists()
