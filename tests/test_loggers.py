"""Experiment loggers as run-hook plugins: ``--log tensorboard`` (:mod:`introzoo.loggers`)."""

from __future__ import annotations

import json
import os
import sys

import pytest

from introzoo.cli import main
from introzoo.loggers import LOG_ENV

RUN = ["run", "-d", "8gaussians", "-o", "soft,num_vae=10", "-n", "30", "--log-every", "10", "--metric", "kl", "-q"]


def test_tensorboard_event_file_holds_the_history_and_the_metrics(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = tmp_path / "run"
    assert main([*RUN, "--log", "tensorboard", "--out", str(out)]) == 0
    assert LOG_ENV not in os.environ  # --log holds for one command
    history = [json.loads(line) for line in (out / "history.jsonl").read_text().splitlines()]
    acc = EventAccumulator(str(out / "tensorboard"))
    acc.Reload()
    names = set(acc.Tags()["scalars"])
    assert {f"train/{k}" for k in history[-1] if k != "iteration"} <= names
    for key in ("loss_e", "loss_d", "rec", "kl", "lr"):  # the warm-up's records have "loss" instead
        events = acc.Scalars(f"train/{key}")
        got = {e.step: e.value for e in events}
        want = {r["iteration"]: r[key] for r in history if key in r}
        assert set(got) == set(want) and got  # the same iterations ...
        for step, value in want.items():  # ... and the same numbers (event files hold float32)
            assert got[step] == pytest.approx(value, rel=1e-6, abs=1e-9), (key, step)
    metrics = json.loads((out / "metrics.json").read_text())
    (final,) = acc.Scalars("eval/kl")
    assert final.step == 30 and final.value == pytest.approx(metrics["metrics"]["kl"], rel=1e-6)
    assert any(t.startswith("config") for t in acc.Tags()["tensors"])  # the run record, as text


def test_no_log_option_writes_no_event_file(tmp_path):
    out = tmp_path / "run"
    assert main([*RUN, "-n", "5", "--out", str(out)]) == 0
    assert not (out / "tensorboard").exists()


def test_unknown_logger_and_missing_package_are_one_line_and_exit_2(tmp_path, capsys, monkeypatch):
    assert main([*RUN, "--log", "tensorbord", "--out", str(tmp_path / "a")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown logger 'tensorbord'" in err[0] and "tensorboard" in err[0]
    monkeypatch.setitem(sys.modules, "tensorboard", None)  # as if not installed
    assert main([*RUN, "--log", "tensorboard", "--out", str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "pip install 'introzoo[tensorboard]'" in err[0]
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
