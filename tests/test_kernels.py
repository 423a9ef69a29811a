"""Kernel paths of the Linear products (``--kernels``, introzoo.training.kernels): the oneDNN path computes what
torch's default computes to float32 rounding (forward, backward, 50 training steps of soft, intro and
soft-prior + mog), never changes a run's hash, is recorded in config.json, is chosen by measurement
(cached) for ``auto``, and packs stay equal to their solo runs on it."""

from __future__ import annotations

import copy
import json

import pytest
import torch

from introzoo import plugins

from introzoo.training import kernels
from introzoo.config import RunConfig, resolve
from introzoo.testing.checks_pack import compare_pack
from introzoo.training.loop import train

pytestmark = pytest.mark.skipif(not kernels.available("onednn"), reason="torch without oneDNN")


def test_onednn_linear_forward_and_backward_match_float64():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(512, 256, generator=g)
    w = torch.randn(128, 256, generator=g) * 0.05
    b = torch.randn(128, generator=g)
    grads = {}
    for path in kernels.PATHS:
        xs, ws, bs = (t.clone().requires_grad_() for t in (x, w, b))
        with kernels.use(path):
            y = kernels.linear(xs, ws, bs)
        (y * torch.linspace(-1, 1, 128)).sum().backward()
        grads[path] = (y.detach(), xs.grad, ws.grad, bs.grad)
    xd, wd, bd = (t.double().requires_grad_() for t in (x, w, b))
    yd = xd @ wd.T + bd
    (yd * torch.linspace(-1, 1, 128, dtype=torch.float64)).sum().backward()
    for path, got in grads.items():
        for a, ref in zip(got, (yd.detach(), xd.grad, wd.grad, bd.grad)):
            err = ((a.double() - ref).abs().max() / ref.abs().max()).item()
            assert err < 1e-5, (path, err)
    assert not torch.equal(grads["aten"][2], grads["onednn"][2])  # really another kernel


def test_other_inputs_take_torchs_default():
    x, w = torch.randn(4, 3, dtype=torch.float64), torch.randn(2, 3, dtype=torch.float64)
    with kernels.use("onednn"):
        assert torch.equal(kernels.linear(x, w), torch.nn.functional.linear(x, w))  # float64: aten
    with pytest.raises(ValueError, match="aten, onednn"):
        with kernels.use("fast"):
            pass


def _run(objective: str, kernel: str, **extra):
    cfg = {
        **dict(objective=objective, data="8gaussians", iterations=50, log_every=1, metrics=[], device="cpu", kernels=kernel),
        **extra,
    }
    return resolve(RunConfig(**cfg), plugins.registry())


@pytest.mark.parametrize(
    "objective,extra", [("soft,num_vae=0", {}), ("intro,num_vae=0", {}), ("soft-prior,num_vae=0", {"prior": "mog:8"})]
)
@pytest.mark.slow
def test_each_of_fifty_steps_on_onednn_agrees_with_aten_to_float32_rounding(objective, extra):
    """Along 50 steps of a run on the default path, each step is also taken on oneDNN from the same
    state and the same random draws: the losses and the encoder's gradients (the first player's, from
    the same weights) agree to float32 rounding: the median step to 1e-5 of the largest gradient entry
    (measured about 1e-6); a unit whose ReLU input lies within rounding of 0 takes the other
    derivative on the other path, so a few steps differ more (measured up to 7e-4; bound 1e-2). (The
    decoder's gradients come after the encoder's Adam
    step, where a rounding-sized gradient near 0 may flip an update's sign; a whole trajectory differs
    further: the adversarial game amplifies rounding, as between two machines.)"""
    from introzoo.training.loop import build

    built = build(_run(objective, "aten", **extra))
    data = built.dataset.batches(512, torch.Generator().manual_seed(0))
    worst_loss, grad_err = 0.0, []
    for it in range(50):
        x = next(data)
        twin = copy.deepcopy(built.objective)
        state = torch.get_rng_state()
        with kernels.use("onednn"):
            theirs = twin.train_step(x, it)
        torch.set_rng_state(state)
        ours = built.objective.train_step(x, it)
        for k in ours:
            worst_loss = max(worst_loss, abs(float(ours[k]) - float(theirs[k])) / max(1.0, abs(float(ours[k]))))
        grad_err.append(
            max(
                ((p.grad - q.grad).abs().max() / p.grad.abs().max()).item()
                for p, q in zip(built.model.encoder.parameters(), twin.model.encoder.parameters())
            )
        )
        with torch.no_grad():  # the next step from the same state again
            for p, q in zip(built.model.parameters(), twin.model.parameters()):
                q.copy_(p)
    grad_err.sort()
    assert 0 < worst_loss < 1e-5, worst_loss
    assert 0 < grad_err[25] < 1e-5 and grad_err[-1] < 1e-2, grad_err  # median, largest


def test_the_kernel_path_is_recorded_and_not_part_of_the_hash(tmp_path):
    records = {}
    for k in kernels.PATHS:
        train(_run("soft,num_vae=5", k, iterations=10), tmp_path / k)
        records[k] = json.loads((tmp_path / k / "config.json").read_text())
        assert records[k]["kernels"] == records[k]["kernels_used"] == k
    assert records["aten"]["hash"] == records["onednn"]["hash"] == _run("soft,num_vae=5", "auto", iterations=10).hash()


def test_auto_measures_once_and_caches_per_machine(tmp_path, monkeypatch):
    monkeypatch.delenv(kernels.ENV, raising=False)
    monkeypatch.setenv("INTROZOO_CACHE", str(tmp_path))
    monkeypatch.setattr(kernels, "_memo", {})
    calls = []
    timer = lambda path: calls.append(path) or {"aten": 2.0, "onednn": 1.0}[path]  # noqa: E731
    args = ("auto", torch.device("cpu"), torch.float32, [(2, 8), (8, 2)], 16)
    assert kernels.choose(*args, timer=timer, what="soft")[0] == "onednn"
    assert sorted(calls) == ["aten", "onednn"]
    cached = json.loads((tmp_path / "kernels.json").read_text())
    assert list(cached.values()) == [{"aten": 2.0, "onednn": 1.0}]
    monkeypatch.setattr(kernels, "_memo", {})  # a new process: read from the file
    assert kernels.choose(*args, timer=timer, what="soft") == ("onednn", "measured: aten 2000.00 ms, onednn 1000.00 ms")
    assert len(calls) == 2
    assert kernels.choose("aten", *args[1:], timer=timer)[0] == "aten"  # asked for: no measurement
    assert kernels.choose("auto", torch.device("cpu"), torch.float64, [(2, 8)], 16, timer)[0] == "aten"
    monkeypatch.setenv(kernels.ENV, "aten")
    assert kernels.choose(*args, timer=timer, what="soft")[0] == "aten"


def test_auto_picks_a_path_by_timing_a_copy_without_touching_the_run(tmp_path, monkeypatch):
    """``--kernels auto`` times steps of a copy of the run: the run itself is the one the chosen path
    gives when asked for directly (its random streams untouched)."""
    monkeypatch.delenv(kernels.ENV, raising=False)
    monkeypatch.setenv("INTROZOO_CACHE", str(tmp_path))
    monkeypatch.setattr(kernels, "_memo", {})
    train(_run("soft,num_vae=5", "auto", iterations=10), tmp_path / "auto")
    chosen = json.loads((tmp_path / "auto" / "config.json").read_text())["kernels_used"]
    assert chosen in kernels.PATHS
    train(_run("soft,num_vae=5", chosen, iterations=10), tmp_path / "asked")
    hist = [(tmp_path / d / "history.jsonl").read_text().splitlines() for d in ("auto", "asked")]
    strip = lambda lines: [{k: v for k, v in json.loads(x).items() if k != "time_s"} for x in lines]  # noqa: E731
    assert strip(hist[0]) == strip(hist[1])


@pytest.mark.slow
def test_packs_on_onednn_equal_their_solo_runs_bit_for_bit(tmp_path):
    reg = plugins.registry()
    runs = [
        resolve(
            RunConfig(
                objective=f"soft,num_vae={w}",
                data="8gaussians",
                iterations=40,
                log_every=5,
                metrics=["kl,n_samples=500"],
                device="cpu",
                seed=s,
                kernels="onednn",
            ),
            reg,
        )
        for s, w in ((0, 10), (1, 0))
    ]
    assert compare_pack(runs, tmp_path, 0.0) == ["finished", "finished"]
