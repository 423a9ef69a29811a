"""Resume points: a run stopped at any iteration and continued from ``resume.pt`` ends exactly as an
uninterrupted run (weights, optimiser state, losses, metrics), across the warm-up's end too."""

from __future__ import annotations

import json

import pytest
import torch

from introzoo import plugins
from introzoo.config import RunConfig, resolve
from introzoo.training.resume import Resumable
from introzoo.training.run_dir import RunDir
from introzoo.training.loop import train

METRICS = ["kl,n_samples=300"]


class Stopped(Exception):
    pass


class StopAt(Resumable):
    """Saves every iteration and stops the run (as a kill would) once ``stop`` iterations are saved."""

    def __init__(self, stop: int | None) -> None:
        super().__init__(every_s=0)
        self.stop, self.resumed_at, self.saves = stop, None, []

    def due(self) -> bool:
        return self.stop is not None and len(self.saves) < 1_000

    def resumed(self, iteration: int) -> None:
        self.resumed_at = iteration

    def saved(self, iteration: int) -> None:
        self.saves.append(iteration)
        if self.stop is not None and iteration >= self.stop:
            raise Stopped


def _losses(rd: RunDir) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "time_s"} for r in rd.read_history()]


def _final(rd: RunDir) -> dict:
    return torch.load(rd.checkpoint, weights_only=False)


def _same_state(a, b) -> None:
    if isinstance(a, dict):
        assert a.keys() == b.keys()
        for k in a:
            _same_state(a[k], b[k])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            _same_state(x, y)
    elif isinstance(a, torch.Tensor):
        assert torch.equal(a, b)
    else:
        assert a == b


@pytest.mark.slow
@pytest.mark.parametrize(
    "objective,prior,regs,stops",
    [
        ("vae", "sg", [], [37]),
        ("soft,num_vae=20", "sg", [], [10, 55]),  # before and after the warm-up's end
        ("soft-prior,num_vae=20", "vamp:4,to_mog=true", ["clip-logvar"], [30]),  # prior converted, range fixed
        ("intro,num_vae=5,m=2", "mog:3,learn_weights=true", [], [33]),
        ("soft,num_vae=20", "flow:2", ["factor,layers=2,hidden=16"], [40]),  # the discriminator and its Adam
    ],
)
def test_stopped_and_resumed_equals_uninterrupted(tmp_path, objective, prior, regs, stops):
    cfg = RunConfig(
        objective=objective,
        prior=prior,
        regularizers=regs,
        data="8gaussians",
        iterations=70,
        batch_size=32,
        seed=3,
        device="cpu",
        metrics=METRICS,
        log_every=20,
    )
    ref_dir, cut_dir = RunDir(tmp_path / "ref"), RunDir(tmp_path / "cut")
    ref = train(resolve(cfg, plugins.registry()), ref_dir.path)
    assert not ref_dir.resume.exists()
    for stop in stops:  # stopped (possibly more than once), a resume point left behind each time
        with pytest.raises(Stopped):
            train(resolve(cfg, plugins.registry()), cut_dir.path, resumable=StopAt(stop))
        assert cut_dir.resume.exists() and not cut_dir.metrics.exists()
        assert all(r["iteration"] <= stop for r in cut_dir.read_history())
    again = StopAt(None)
    out = train(resolve(cfg, plugins.registry()), cut_dir.path, resumable=again)
    assert again.resumed_at == stops[-1]
    assert out["metrics"] == ref["metrics"] and out["status"] == "finished"
    assert _losses(cut_dir) == _losses(ref_dir)
    a, b = _final(ref_dir), _final(cut_dir)
    _same_state(a["model"], b["model"])
    _same_state(a["objective"], b["objective"])
    assert not cut_dir.resume.exists()  # a finished run keeps no resume point
    assert json.loads(cut_dir.metrics.read_text()).get("regularizers") == json.loads(ref_dir.metrics.read_text()).get(
        "regularizers"
    )


@pytest.mark.slow
def test_image_run_stopped_mid_epoch_resumes_exactly(tmp_path):
    """An image dataset's stream keeps an epoch's permutation between batches: it is replayed from the
    seed to the resume point; the progress grids draw prior samples in the loop."""
    cfg = RunConfig(
        objective="soft,num_vae=3",
        data="digits,subset=100",
        backbone="conv,channels=[4,8]",
        iterations=11,
        batch_size=32,
        seed=1,
        device="cpu",
        metrics=[],
        log_every=5,
    )
    ref_dir, cut_dir = RunDir(tmp_path / "ref"), RunDir(tmp_path / "cut")
    train(resolve(cfg, plugins.registry()), ref_dir.path)
    with pytest.raises(Stopped):  # 4 iterations per epoch: stopped in the second, after its grid at 4
        train(resolve(cfg, plugins.registry()), cut_dir.path, resumable=StopAt(6))
    again = StopAt(None)
    train(resolve(cfg, plugins.registry()), cut_dir.path, resumable=again)
    assert again.resumed_at == 6
    assert _losses(cut_dir) == _losses(ref_dir)
    _same_state(_final(ref_dir)["model"], _final(cut_dir)["model"])
    assert sorted(p.name for p in (cut_dir.path / "progress").iterdir()) == sorted(
        p.name for p in (ref_dir.path / "progress").iterdir()
    )


def test_resume_point_of_another_configuration_is_ignored(tmp_path):
    reg = plugins.registry()
    base = dict(objective="vae", data="8gaussians", iterations=30, batch_size=16, device="cpu", metrics=["kl,n_samples=200"])
    rd = RunDir(tmp_path / "run")
    with pytest.raises(Stopped):
        train(resolve(RunConfig(**base, seed=0), reg), rd.path, resumable=StopAt(10))
    again = StopAt(None)
    train(resolve(RunConfig(**base, seed=1), reg), rd.path, resumable=again)
    assert again.resumed_at is None  # seed 1 starts afresh rather than continue seed 0's state


def test_plain_runs_write_no_resume_point_and_drop_a_stale_one(tmp_path):
    reg = plugins.registry()
    cfg = RunConfig(
        objective="vae", data="8gaussians", iterations=30, batch_size=16, device="cpu", metrics=["kl,n_samples=200"]
    )
    rd = RunDir(tmp_path / "run")
    with pytest.raises(Stopped):
        train(resolve(cfg, reg), rd.path, resumable=StopAt(10))
    assert rd.resume.exists()
    train(resolve(cfg, reg), rd.path)  # no Resumable: from scratch, as before
    assert not rd.resume.exists()
    assert [r["iteration"] for r in rd.read_history()] == [30]
