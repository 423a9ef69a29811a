"""Mixed precision (``--precision``, :mod:`introzoo.training.precision`): bf16 / fp16 track fp32, fp32 is untouched."""

from __future__ import annotations

import pytest
import torch

from introzoo.cli import main
from introzoo.config import RunConfig, resolve
from introzoo.errors import UsageError
from introzoo.plugins import registry
from introzoo.training.precision import Precision, check_supported
from introzoo.training.loop import build

#: the stated tolerance: over 50 steps every logged loss of a bf16 run stays within 2% of the fp32 run's
#: (measured on this setup: at most 0.4% for soft, 0.6% for vae)
RTOL = 0.02


def _losses(precision: str, objective: str = "soft", steps: int = 50, watch: list | None = None):
    cfg = RunConfig(
        objective=objective,
        data="digits",
        backbone="conv",
        batch_size=32,
        zdim=8,
        metrics=[],
        device="cpu",
        precision=precision,
    )
    built = build(resolve(cfg, registry()))
    if watch is not None:  # the dtype the first conv layer computes in, during the step
        conv = next(m for m in built.model.encoder.modules() if isinstance(m, torch.nn.Conv2d))
        conv.register_forward_hook(lambda mod, inp, out: watch.append(out.dtype))
    batches = built.dataset.batches(32, torch.Generator().manual_seed(0))
    out = [{k: float(v) for k, v in built.objective.train_step(next(batches), i).items()} for i in range(steps)]
    return out, built


def _worst(ref, got):
    return max(abs(a[k] - b[k]) / max(abs(a[k]), 1e-3) for a, b in zip(ref, got) for k in a)


def test_bf16_losses_track_fp32_over_50_steps():
    seen: list = []
    ref, _ = _losses("fp32")
    got, built = _losses("bf16", watch=seen)
    assert set(seen) == {torch.bfloat16}  # the networks ran under autocast during every step
    worst = _worst(ref, got)
    assert 0 < worst < RTOL, worst  # different numbers (autocast is on), within the tolerance
    # after training the networks compute in float32 again (evaluation, grids, sampling)
    x = built.dataset.sample(4, torch.Generator().manual_seed(1))
    assert built.model.encode(x)[0].dtype == torch.float32
    assert "forward" not in built.model.encoder.__dict__


def test_fp16_scales_the_losses_and_tracks_fp32():
    ref, _ = _losses("fp32", steps=20)
    got, built = _losses("fp16", steps=20)
    assert _worst(ref, got) < RTOL
    scaler = built.objective.precision.scaler
    assert scaler is not None and scaler.get_scale() > 1
    state = built.objective.state_dict()
    assert state["grad_scaler"]["scale"] == scaler.get_scale()  # resume points keep the loss scale


def test_fp32_is_the_unchanged_step():
    """fp32 adds nothing: no scaler, no autocast wrapper, the plain optimiser step (bit-for-bit: the
    objectives' hand-checked tests run under it)."""
    _, built = _losses("fp32", steps=1)
    obj = built.objective
    assert obj.precision.scaler is None and not obj.precision.enabled
    assert "grad_scaler" not in obj.state_dict()
    loss = torch.tensor(2.5)
    assert obj.precision.scale(loss) is loss


def test_precision_is_in_the_record_and_default_runs_keep_their_hash():
    reg = registry()
    a = resolve(RunConfig(data="8gaussians"), reg)
    b = resolve(RunConfig(data="8gaussians", precision="fp32"), reg)
    c = resolve(RunConfig(data="8gaussians", precision="bf16"), reg)
    assert a.train["precision"] == "fp32" and a.hash() == b.hash() != c.hash()
    # options recorded since, at the value of earlier runs, are left out of the hash (HASH_NEUTRAL)
    legacy = {k: v for k, v in a.to_json()["train"].items() if k not in ("precision", "conditional", "rec_loss")}
    import hashlib
    import json

    d = a.to_json()
    for key in ("device", "kernels", "log_every", "image_every"):  # kernels: recorded since, never hashed
        d.pop(key)
    d["train"] = legacy
    for k, v in list(d.items()):
        if isinstance(v, dict) and "plugin" in v:
            d[k] = {"name": v["name"], "options": v["options"]}
        elif isinstance(v, list):
            d[k] = [{"name": x["name"], "options": x["options"]} for x in v]
    assert a.hash() == hashlib.sha1(json.dumps(d, sort_keys=True).encode()).hexdigest()[:12]


def test_unsupported_precision_is_one_line_and_exit_2(monkeypatch, capsys, tmp_path):
    with pytest.raises(UsageError, match="choose one of: fp32, bf16, fp16"):
        check_supported("fp8", torch.device("cpu"))
    monkeypatch.setattr(torch.amp.autocast_mode, "is_autocast_available", lambda kind: False)
    with pytest.raises(UsageError, match="not available on device 'cpu'"):
        Precision("fp16", "cpu")
    assert (
        main(
            [
                "run",
                "-d",
                "8gaussians",
                "-n",
                "5",
                "--precision",
                "fp16",
                "--device",
                "cpu",
                "-q",
                "--out",
                str(tmp_path / "r"),
            ]
        )
        == 2
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--precision fp16 is not available" in err[0]
    assert not (tmp_path / "r").exists()
    assert main(["run", "-d", "8gaussians", "--precision", "fp8"]) == 2
