"""Bad input never ends in a traceback: a corpus over every command, each case exit 2, one ``error:``
line naming the offending value, no traceback, and nothing written (the whole working tree, with the
run and sweep copies the case corrupts and its output targets, is the same before and after)."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from introzoo.cli import main

CHEAP = ["-m", "kl,n_samples=200"]


@pytest.fixture(scope="session")
def finished_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("bad-input") / "run"
    assert main(["run", "-n", "5", "--threads", "1", "-q", *CHEAP, "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="session")
def sweep_store(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("bad-input") / "sweep"
    assert main(["sweep", "-o", "vae", "-n", "5", *CHEAP, "--workers", "1", "--threads", "1", "-q", "--out", str(out)]) == 0
    return out


# --- how a case corrupts its copies (w: the case's working directory) ---------------------------


def _write(rel: str, data: bytes | str):
    def setup(w: Path) -> None:
        p = w / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data.encode() if isinstance(data, str) else data)

    return setup


def _truncate(rel: str, keep: int):
    def setup(w: Path) -> None:
        p = w / rel
        p.write_bytes(p.read_bytes()[:keep])

    return setup


def _all_run_configs(data: str):
    def setup(w: Path) -> None:
        for p in (w / "sweep" / "runs").glob("*/config.json"):
            p.write_text(data)

    return setup


def _edit_config(**train):
    def setup(w: Path) -> None:
        p = w / "run" / "config.json"
        c = json.loads(p.read_text())
        c["train"].update(train)
        p.write_text(json.dumps(c))

    return setup


def _drop_key(key: str):
    def setup(w: Path) -> None:
        p = w / "run" / "config.json"
        c = json.loads(p.read_text())
        del c[key]
        p.write_text(json.dumps(c))

    return setup


def _mkdir(rel: str):
    return lambda w: (w / rel).mkdir(parents=True)


def _rm(rel: str):
    return lambda w: (w / rel).unlink()


def _ckpt_as_dir(w: Path) -> None:
    (w / "run" / "checkpoint.pt").unlink()
    (w / "run" / "checkpoint.pt").mkdir()


def _runs_as_file(w: Path) -> None:
    shutil.rmtree(w / "sweep" / "runs")
    (w / "sweep" / "runs").write_text("x")


def _resume_point_without_state(w: Path) -> None:
    """An interrupted run (no metrics.json, no checkpoint) whose resume.pt has the run's hash and nothing else."""
    run = w / "run"
    run_hash = json.loads((run / "config.json").read_text())["hash"]
    for name in ("metrics.json", "checkpoint.pt"):
        (run / name).unlink()
    torch.save({"format": 1, "hash": run_hash}, run / "resume.pt")


# regularizers = every run's, regularizer = an axis: each run would get two replacements of the KL term
TWO_KL_SWEEP = """[sweep]
objective = ["vae"]
regularizers = ["beta-h"]
regularizer = ["tcvae", "none"]
iterations = 1
metrics = ["kl,n_samples=200"]
"""
FILE = _write("afile", "not a directory")
NO_CUDA = pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")

# (id, command line with {w} for the working directory, setup, words the one error line must hold)
CASES = [
    # run: sizes, numbers, paths, devices, components
    ("run-batch-size-huge", "run --batch-size 2000000000 -n 1 --out {w}/o", None, ["batch of 2000000000", "memory limit"]),
    ("run-mog-huge", "run -p mog:100000000 -n 1 --out {w}/o", None, ["prior 'mog'", "memory limit"]),
    ("run-mlp-huge", "run -b mlp,hidden=2000000000 -n 1 --out {w}/o", None, ["backbone 'mlp'", "memory limit"]),
    ("run-seed-2^32", "run --seed 99999999999 -n 1 --out {w}/o", None, ["--seed", "99999999999"]),
    ("run-seed-negative", "run --seed -1 -n 1 --out {w}/o", None, ["--seed", "-1"]),
    ("run-kernels-unknown", "run --kernels fast -n 1 --out {w}/o", None, ["--kernels", "fast", "onednn"]),
    ("sweep-kernels-unknown", "sweep -o vae -n 1 --kernels fast --out {w}/s", None, ["--kernels", "fast", "aten"]),
    ("run-out-is-file", "run -n 1 --out {w}/afile", FILE, ["afile", "exists as a file"]),
    ("run-out-under-file", "run -n 1 --out {w}/afile/x", FILE, ["afile", "is a file"]),
    ("run-out-proc", "run -n 1 --out /proc/introzoo-run", None, ["/proc/introzoo-run", "virtual"]),
    ("run-out-sys", "run -n 1 --out /sys/introzoo/run", None, ["/sys/introzoo/run", "virtual"]),
    ("run-device-tpu", "run --device tpu -n 1 --out {w}/o", None, ["tpu", "devices here: auto, cpu"]),
    pytest.param("run-device-cuda", "run --device cuda -n 1 --out {w}/o", None, ["cuda", "devices here"], marks=NO_CUDA),
    ("run-beta-rec-inf", "run -o soft,beta_rec=inf -n 1 --out {w}/o", None, ["beta_rec", "inf"]),
    ("run-beta-kl-1e400", "run -o soft,beta_kl=1e400 -n 1 --out {w}/o", None, ["beta_kl"]),
    ("run-lr-nan", "run --lr nan -n 1 --out {w}/o", None, ["--lr", "nan"]),
    ("run-lr-negative", "run --lr -1 -n 1 --out {w}/o", None, ["--lr", "-1"]),
    ("run-iterations-0", "run -n 0 --out {w}/o", None, ["--iterations", "0"]),
    ("run-batch-size-0", "run --batch-size 0 -n 1 --out {w}/o", None, ["--batch-size", "0"]),
    ("run-zdim-0", "run --zdim 0 -n 1 --out {w}/o", None, ["--zdim", "0"]),
    ("run-log-every-0", "run --log-every 0 -n 1 --out {w}/o", None, ["--log-every", "0"]),
    ("run-threads-0", "run --threads 0 -n 1 --out {w}/o", None, ["--threads"]),
    ("run-unknown-objective", "run -o sofft -n 1 --out {w}/o", None, ["sofft", "soft"]),
    ("run-unknown-data", "run -d 9gaussians -n 1 --out {w}/o", None, ["9gaussians", "8gaussians"]),
    ("run-unknown-metric", "run -m kll -n 1 --out {w}/o", None, ["kll"]),
    ("run-unknown-reg", "run --reg clip -n 1 --out {w}/o", None, ["clip"]),
    ("run-option-not-a-number", "run -o soft,beta_kl=abc -n 1 --out {w}/o", None, ["beta_kl", "abc"]),
    ("run-unknown-option", "run -o soft,beta_kll=1 -n 1 --out {w}/o", None, ["beta_kll"]),
    ("run-iterations-not-int", "run -n ten --out {w}/o", None, ["--iterations"]),
    ("run-resume-every-negative", "run --resume-every -5 -n 1 --out {w}/o", None, ["--resume-every", "-5"]),
    ("run-resume-every-nan", "run --resume-every nan -n 1 --out {w}/o", None, ["--resume-every", "nan"]),
    (
        "sweep-resume-every-negative",
        "sweep -o vae -d rings -n 1 --resume-every -1 --out {w}/s",
        None,
        ["--resume-every", "-1"],
    ),
    (
        "sweep-resume-every-not-local",
        "sweep -o vae -d rings -n 1 --resume-every 60 -e submitit --out {w}/s",
        None,
        ["--resume-every", "local", "submitit"],
    ),
    (
        "run-resume-point-without-state",
        "run -n 5 --threads 1 -q -m kl,n_samples=200 --resume-every 60 --out {w}/run",
        _resume_point_without_state,
        ["{w}/run/resume.pt", "cannot be used", "remove it"],
    ),
    ("run-tcvae-batch-1", "run -o vae --reg tcvae --batch-size 1 -n 1 --out {w}/o", None, ["'tcvae'", "at least 2", "1"]),
    (
        "run-info-unbiased-batch-1",
        "run -o vae --reg info,estimator=unbiased --batch-size 1 -n 1 --out {w}/o",
        None,
        ["'info'", "at least 2"],
    ),
    # sweep: sweep files someone else wrote, paths, numbers
    ("sweep-file-not-utf8", "sweep {w}/s.toml --dry-run", _write("s.toml", b"\xff\xfe[sweep]\n"), ["s.toml", "UTF-8"]),
    (
        "sweep-file-string-table",
        "sweep {w}/s.toml --dry-run",
        _write("s.toml", 'sweep = "x"\n'),
        ["s.toml", "'sweep'", "table"],
    ),
    (
        "sweep-file-published-string",
        "sweep {w}/s.toml --dry-run",
        _write("s.toml", 'published = 3\n[sweep]\n'),
        ["s.toml", "'published'"],
    ),
    ("sweep-file-directory", "sweep {w}/s.toml --dry-run", _mkdir("s.toml"), ["s.toml", "directory"]),
    ("sweep-file-missing", "sweep {w}/none.toml --dry-run", None, ["none.toml", "not found"]),
    ("sweep-file-bad-toml", "sweep {w}/s.toml --dry-run", _write("s.toml", "[sweep\n"), ["s.toml", "TOML"]),
    (
        "sweep-file-wrong-type",
        "sweep {w}/s.toml --dry-run",
        _write("s.toml", "[sweep]\nobjective = 3\n"),
        ["s.toml", "objective"],
    ),
    (
        "sweep-file-unknown-key",
        "sweep {w}/s.toml --dry-run",
        _write("s.toml", "[sweep]\nobjectiv = ['soft']\n"),
        ["s.toml", "objectiv"],
    ),
    (
        "sweep-file-executor-string",
        "sweep {w}/s.toml --dry-run",
        _write("s.toml", "[sweep]\n[executor]\nlocal = 1\n"),
        ["s.toml", "local"],
    ),
    (
        "sweep-file-seed-past-2^32",
        "sweep {w}/s.toml --dry-run",
        _write("s.toml", "[sweep]\nseeds = 2\nseed_start = 4294967295\n"),
        ["s.toml", "4294967296"],
    ),
    ("sweep-file-beta-inf", "sweep {w}/s.toml --dry-run", _write("s.toml", "[sweep]\nlr = inf\n"), ["s.toml", "lr"]),
    (
        "sweep-file-metrics-number",
        "sweep {w}/s.toml --dry-run",
        _write("s.toml", "[sweep]\nmetrics = 3\n"),
        ["s.toml", "metrics", "list of metric specs", "table"],
    ),
    (
        "sweep-file-metrics-table-string",
        "sweep {w}/s.toml --dry-run",
        _write("s.toml", '[sweep.metrics]\n8gaussians = "kl"\n'),
        ["s.toml", "metrics", "list of metric specs", "table"],
    ),
    (
        "sweep-file-objective-table-unknown-dataset",
        "sweep {w}/s.toml --dry-run",
        _write(
            "s.toml",
            '[sweep]\ndata = ["8gaussians", "rings"]\n[sweep.objective]\n8gaussians = ["vae"]\nrings = ["vae"]\n'
            'ringz = ["soft"]\n',
        ),
        ["s.toml", "[sweep.objective]", "'ringz'", "valid: 8gaussians, rings"],
    ),
    (
        "sweep-file-objective-table-missing-dataset",
        "sweep {w}/s.toml --dry-run",
        _write("s.toml", '[sweep]\ndata = ["8gaussians", "rings"]\n[sweep.objective]\n8gaussians = ["vae"]\n'),
        ["s.toml", "no entry for dataset 'rings'", "--objective"],
    ),
    (
        "sweep-file-prior-table-number",
        "sweep {w}/s.toml --dry-run",
        _write("s.toml", "[sweep.prior]\n8gaussians = 3\n"),
        ["s.toml", "prior", "list of prior specs", "table"],
    ),
    (
        "sweep-file-regularizers-and-axis",
        "sweep {w}/s.toml --workers 1 --threads 1 -q --out {w}/sw",
        _write("s.toml", TWO_KL_SWEEP),
        ["beta-h", "tcvae", "replace the KL term"],
    ),
    (
        "sweep-select-unknown",
        "sweep -o vae -n 1 -m kl,n_samples=200 --select nosuch --workers 1 --threads 1 -q --out {w}/sw",
        None,
        ["--select", "nosuch", "kl"],
    ),
    ("sweep-out-is-file", "sweep -n 1 --out {w}/afile", FILE, ["afile", "exists as a file"]),
    ("sweep-out-under-file", "sweep -n 1 --out {w}/afile/x", FILE, ["afile", "is a file"]),
    ("sweep-out-proc", "sweep -n 1 --out /proc/introzoo-sweep", None, ["/proc/introzoo-sweep", "virtual"]),
    ("sweep-store-runs-is-file", "sweep -n 1 --out {w}/sweep", _runs_as_file, ["runs", "exists as a file"]),
    ("sweep-seeds-0", "sweep --seeds 0 --dry-run", None, ["--seeds", "0"]),
    ("sweep-seeds-huge", "sweep --seeds 99999999999 --dry-run", None, ["--seeds", "99999999999"]),
    ("sweep-grid-too-large", "sweep -o soft,beta_kl=1|2|3|4|5|6|7|8|9|10 --seeds 20000 --dry-run", None, ["200000 runs"]),
    ("sweep-batch-size-huge", "sweep --batch-size 2000000000 -n 1 --out {w}/o", None, ["batch of 2000000000"]),
    ("sweep-empty-alternative", "sweep -o soft,beta_kl=0.1| --dry-run", None, ["0.1|"]),
    ("sweep-unknown-executor", "sweep -e slurmm --dry-run", None, ["slurmm"]),
    ("sweep-workers-0", "sweep --workers 0 --dry-run", None, ["workers"]),
    ("sweep-beta-inf", "sweep -o soft,beta_kl=inf --dry-run", None, ["beta_kl", "inf"]),
    ("sweep-lr-nan", "sweep --lr nan --dry-run", None, ["--lr", "nan"]),
    # leaderboard: stores someone else wrote, paths, options
    (
        "leaderboard-manifest-truncated",
        "leaderboard {w}/sweep",
        _truncate("sweep/sweep.json", 30),
        ["sweep.json", "not valid JSON"],
    ),
    ("leaderboard-manifest-empty", "leaderboard {w}/sweep", _write("sweep/sweep.json", ""), ["sweep.json", "empty"]),
    ("leaderboard-manifest-list", "leaderboard {w}/sweep", _write("sweep/sweep.json", "[]"), ["sweep.json", "JSON list"]),
    (
        "leaderboard-manifest-runs-string",
        "leaderboard {w}/sweep",
        _write("sweep/sweep.json", '{"runs": "abc"}'),
        ["sweep.json", "'runs'"],
    ),
    (
        "leaderboard-selection-broken",
        "leaderboard {w}/sweep",
        _write("sweep/selection.json", '{"metric": "kl"}'),
        ["selection.json", "'keys'"],
    ),
    ("leaderboard-run-config-list", "leaderboard {w}/sweep", _all_run_configs("[1]"), ["config.json", "1 unreadable"]),
    (
        "leaderboard-run-config-truncated",
        "leaderboard {w}/sweep",
        _all_run_configs('{"hash": "ab'),
        ["config.json", "1 unreadable"],
    ),
    ("leaderboard-run-config-empty", "leaderboard {w}/sweep", _all_run_configs(""), ["config.json", "1 unreadable"]),
    ("leaderboard-out-under-file", "leaderboard {w}/sweep -f md --out {w}/afile/x.md", FILE, ["afile", "is a file"]),
    ("leaderboard-out-proc", "leaderboard {w}/sweep -f md --out /proc/x.md", None, ["/proc/x.md", "virtual"]),
    ("leaderboard-out-directory", "leaderboard {w}/sweep -f md --out {w}/sweep", None, ["sweep", "is a directory"]),
    ("leaderboard-out-no-parent", "leaderboard {w}/sweep -f md --out {w}/nodir/x.md", None, ["nodir", "no such parent"]),
    ("leaderboard-not-a-store", "leaderboard {w}/run", None, ["run", "not a sweep directory"]),
    ("leaderboard-format", "leaderboard {w}/sweep -f xls", None, ["xls"]),
    ("leaderboard-group-by", "leaderboard {w}/sweep --group-by prior", None, ["prior"]),
    ("leaderboard-sort", "leaderboard {w}/sweep --sort fid", None, ["fid"]),
    # list, plugins
    ("list-unknown-kind", "list prior5", None, ["prior5"]),
    ("list-bad-option", "list --yaml", None, ["--yaml"]),
    ("plugins-extra-argument", "plugins extra", None, ["extra"]),
    ("unknown-command", "trian", None, ["trian"]),
    # eval: run directories someone else wrote, numbers, devices
    ("eval-seed-negative", "eval {w}/run --seed -1", None, ["--seed", "-1"]),
    ("eval-seed-2^32", "eval {w}/run --seed 4294967296", None, ["--seed", "4294967296"]),
    ("eval-device-tpu", "eval {w}/run --device tpu", None, ["tpu", "devices here"]),
    pytest.param("eval-device-cuda", "eval {w}/run --device cuda", None, ["cuda", "devices here"], marks=NO_CUDA),
    ("eval-unknown-metric", "eval {w}/run -m kll", None, ["kll"]),
    ("eval-metric-option", "eval {w}/run -m kl,n_samples=abc", None, ["n_samples", "abc"]),
    ("eval-not-a-run", "eval {w}/sweep", None, ["sweep", "no config.json"]),
    ("eval-checkpoint-truncated", "eval {w}/run", _truncate("run/checkpoint.pt", 100), ["checkpoint.pt", "truncated"]),
    ("eval-checkpoint-garbage", "eval {w}/run", _write("run/checkpoint.pt", "{}"), ["checkpoint.pt", "not a readable"]),
    ("eval-checkpoint-directory", "eval {w}/run", _ckpt_as_dir, ["checkpoint.pt", "directory"]),
    ("eval-checkpoint-missing", "eval {w}/run", _rm("run/checkpoint.pt"), ["checkpoint.pt"]),
    ("eval-config-bad-json", "eval {w}/run", _write("run/config.json", '{"x'), ["config.json", "not valid JSON"]),
    ("eval-config-list", "eval {w}/run", _write("run/config.json", "[1, 2]"), ["config.json", "JSON list"]),
    ("eval-config-empty", "eval {w}/run", _write("run/config.json", ""), ["config.json", "empty"]),
    ("eval-config-no-objective", "eval {w}/run", _drop_key("objective"), ["config.json", "objective"]),
    ("eval-checkpoint-other-zdim", "eval {w}/run", _edit_config(zdim=3), ["checkpoint.pt", "does not match config.json"]),
    # sample
    ("sample-n-huge", "sample {w}/run --n 2000000000 --out {w}/s.npy", None, ["--n 2000000000", "memory limit"]),
    ("sample-n-0", "sample {w}/run --n 0 --out {w}/s.npy", None, ["--n"]),
    ("sample-seed-negative", "sample {w}/run --seed -1 --out {w}/s.npy", None, ["--seed", "-1"]),
    ("sample-out-type", "sample {w}/run --out {w}/s.txt", None, ["s.txt", ".txt"]),
    ("sample-out-under-file", "sample {w}/run --out {w}/afile/s.png", FILE, ["afile", "is a file"]),
    # traverse / interpolate
    ("traverse-seed-negative", "traverse {w}/run --seed -1 --out {w}/t.png", None, ["--seed", "-1"]),
    ("traverse-device", "traverse {w}/run --device tpu --out {w}/t.png", None, ["tpu"]),
    ("interpolate-seed-negative", "interpolate {w}/run --seed -1 --out {w}/i.png", None, ["--seed", "-1"]),
    ("interpolate-device", "interpolate {w}/run --device tpu --out {w}/i.png", None, ["tpu"]),
    ("traverse-range-nan", "traverse {w}/run --range nan --out {w}/t.png", None, ["--range", "nan"]),
    ("traverse-range-inf", "traverse {w}/run --range inf --out {w}/t.png", None, ["--range", "inf"]),
    ("traverse-out-type-in-new-dir", "traverse {w}/run --out {w}/sub/t.txt", None, ["t.txt", ".png"]),
    ("interpolate-out-type-in-new-dir", "interpolate {w}/run --out {w}/sub/i.txt", None, ["i.txt", ".png"]),
    ("sample-out-proc", "sample {w}/run --out /proc/s.png", None, ["/proc/s.png", "virtual"]),
    ("sample-out-directory", "sample {w}/run --out {w}/d.png", _mkdir("d.png"), ["d.png", "is a directory"]),
    ("sample-device-tpu", "sample {w}/run --device tpu --out {w}/s.npy", None, ["tpu", "devices here"]),
    (
        "sample-checkpoint-truncated",
        "sample {w}/run --out {w}/s.npy",
        _truncate("run/checkpoint.pt", 1000),
        ["checkpoint.pt", "truncated"],
    ),
    (
        "sample-checkpoint-other-zdim",
        "sample {w}/run --out {w}/s.npy",
        _edit_config(zdim=4),
        ["checkpoint.pt", "does not match"],
    ),
    ("sample-missing-run", "sample {w}/nothing --out {w}/s.npy", None, ["nothing", "not a run directory"]),
    # ood
    ("ood-2d-run", "ood {w}/run --against digits", None, ["run", "not an image dataset"]),
    ("ood-against-2d", "ood {w}/run --against 8gaussians", None, ["8gaussians", "image dataset"]),
    ("ood-against-unknown", "ood {w}/run --against mnistt", None, ["mnistt"]),
    ("ood-score", "ood {w}/run --against digits --score likelihood", None, ["likelihood", "elbo, iw"]),
    ("ood-k-0", "ood {w}/run --against digits --k 0", None, ["--k"]),
    ("ood-seed-negative", "ood {w}/run --against digits --seed -5", None, ["--seed", "-5"]),
    ("ood-device-tpu", "ood {w}/run --against digits --device tpu", None, ["tpu", "devices here"]),
    (
        "ood-checkpoint-truncated",
        "ood {w}/run --against digits",
        _truncate("run/checkpoint.pt", 100),
        ["checkpoint.pt", "truncated"],
    ),
    ("ood-missing-against", "ood {w}/run", None, ["--against"]),
]


def _snapshot(root: Path) -> dict[str, tuple]:
    out = {}
    for p in sorted(root.rglob("*")):
        st = p.lstat()
        out[str(p.relative_to(root))] = ("dir",) if p.is_dir() else (st.st_size, st.st_mtime_ns)
    return out


def _params():
    for case in CASES:
        if hasattr(case, "marks"):  # already a pytest.param
            yield pytest.param(*case.values, id=case.values[0], marks=case.marks)
        else:
            yield pytest.param(*case, id=case[0])


@pytest.mark.parametrize("name,command,setup,words", list(_params()))
def test_bad_input_is_one_line_exit_2_and_writes_nothing(
    name, command, setup, words, finished_run, sweep_store, tmp_path, monkeypatch, capsys
):
    w = tmp_path / "w"
    w.mkdir()
    shutil.copytree(finished_run, w / "run")
    shutil.copytree(sweep_store, w / "sweep")
    if setup:
        setup(w)
    monkeypatch.chdir(w)  # default outputs (runs/, sweeps/) would land here
    monkeypatch.setenv("INTROZOO_DEBUG", "")
    before = _snapshot(w)
    capsys.readouterr()
    rc = main([a.replace("{w}", str(w)) for a in command.split()])
    cap = capsys.readouterr()
    text = cap.out + cap.err
    assert rc == 2, text
    assert "Traceback" not in text
    errors = [line for line in cap.err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, cap.err
    assert len(cap.err.strip().splitlines()) == 1, cap.err  # nothing but the error line
    for word in words:
        assert word.replace("{w}", str(w)) in cap.err, f"{word!r} not in {cap.err!r}"
    assert _snapshot(w) == before, "a bad input wrote or changed files"


def test_corpus_covers_every_command_and_is_large():
    commands = {c.values[1] if hasattr(c, "marks") else c[1] for c in CASES}
    assert len(CASES) >= 60
    for cmd in ("run", "sweep", "leaderboard", "list", "plugins", "eval", "sample", "ood"):
        assert any(c.split()[0] == cmd for c in commands), cmd


def test_leaderboard_leaves_out_and_names_an_unreadable_run(sweep_store, tmp_path, capsys):
    store = tmp_path / "sweep"
    shutil.copytree(sweep_store, store)
    (good,) = (store / "runs").iterdir()
    bad = store / "runs" / "0badrun00000"
    shutil.copytree(good, bad)
    (bad / "config.json").write_text('{"hash": "0bad')
    manifest = json.loads((store / "sweep.json").read_text())
    manifest["runs"].append(bad.name)
    (store / "sweep.json").write_text(json.dumps(manifest))
    capsys.readouterr()
    assert main(["leaderboard", str(store), "-f", "json"]) == 0
    cap = capsys.readouterr()
    board = json.loads(cap.out)
    assert len(board["rows"]) == 1 and board["rows"][0]["n"] == 1
    assert "1 unreadable run(s)" in cap.err and str(bad / "config.json") in cap.err


def test_internal_error_is_one_line_with_a_hint_and_a_traceback_under_debug(monkeypatch, capsys):
    from introzoo.cli import commands as cli

    def boom(*args, **kwargs):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(cli, "registry", boom)
    monkeypatch.delenv("INTROZOO_DEBUG", raising=False)
    assert main(["list"]) == 1
    err = capsys.readouterr().err
    assert "error: internal error: ZeroDivisionError: a bug" in err and "--debug" in err and "Traceback" not in err
    with pytest.raises(ZeroDivisionError):
        main(["--debug", "list"])
    monkeypatch.setenv("INTROZOO_DEBUG", "1")
    with pytest.raises(ZeroDivisionError):
        main(["list"])


@pytest.mark.parametrize(
    "exc,words",
    [
        (MemoryError(), ["out of memory", "INTROZOO_MEMORY_LIMIT"]),
        (
            RuntimeError(
                "[enforce fail at alloc_cpu.cpp:127] DefaultCPUAllocator: can't allocate memory: you tried to "
                "allocate 16000000000 bytes."
            ),
            ["out of memory", "16000000000 bytes", "memory limit"],
        ),
        (torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB"), ["out of memory", "20.00 GiB"]),
        (PermissionError(13, "Permission denied", "/data/x.json"), ["'/data/x.json'", "Permission denied"]),
        (OSError(28, "No space left on device"), ["No space left on device"]),
    ],
)
def test_allocation_and_os_failures_are_one_line_exit_2(exc, words, monkeypatch, capsys):
    from introzoo.cli import commands as cli

    def fail(*args, **kwargs):
        raise exc

    monkeypatch.setattr(cli, "registry", fail)
    assert main(["list"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    for word in words:
        assert word in err


# --- bad input the corpus cannot spell: an environment, an empty argument -------------------------

RUN_1 = ["run", "-o", "vae", "-n", "1", "-m", "kl,n_samples=200", "--threads", "1", "-q"]
SWEEP_1 = ["sweep", "-o", "vae", "-n", "1", "-m", "kl,n_samples=200", "--workers", "1", "--threads", "1", "-q"]


@pytest.fixture
def workdir(finished_run, sweep_store, tmp_path, monkeypatch) -> Path:
    """A working directory (the current one) holding copies of the finished run and the sweep store."""
    w = tmp_path / "w"
    w.mkdir()
    shutil.copytree(finished_run, w / "run")
    shutil.copytree(sweep_store, w / "sweep")
    monkeypatch.chdir(w)
    monkeypatch.setenv("INTROZOO_DEBUG", "")
    return w


def _refused(argv: list[str], w: Path, capsys, words: list[str]) -> None:
    """``argv`` exits 2 with one ``error:`` line holding ``words``, nothing else on stderr, and leaves
    ``w`` as it was."""
    before = _snapshot(w)
    capsys.readouterr()
    rc = main(argv)
    err = capsys.readouterr().err
    assert rc == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and "Traceback" not in err, err
    for word in words:
        assert word in err, f"{word!r} not in {err!r}"
    assert _snapshot(w) == before, "a bad input wrote or changed files"


@pytest.mark.parametrize(
    "env,words",
    [
        ({"WORLD_SIZE": "0"}, ["WORLD_SIZE=0", "torchrun"]),
        ({"RANK": "x"}, ["RANK='x'", "whole number"]),
        ({"WORLD_SIZE": "2", "MASTER_ADDR": None}, ["MASTER_ADDR", "torchrun"]),
        ({"MASTER_PORT": "abc"}, ["MASTER_PORT='abc'", "whole number"]),
    ],
    ids=["world-size-0", "rank-x", "no-master-addr", "master-port-abc"],
)
def test_ddp_with_a_malformed_launch_environment_is_one_line_exit_2(env, words, workdir, monkeypatch, capsys):
    launch = {"RANK": "0", "WORLD_SIZE": "1", "LOCAL_RANK": "0", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29500", **env}
    for key, value in launch.items():
        if value is None:
            monkeypatch.delenv(key, raising=False)
        else:
            monkeypatch.setenv(key, value)
    _refused([*RUN_1, "--ddp", "--out", str(workdir / "o")], workdir, capsys, words)


@pytest.mark.parametrize("command", ["run", "sweep"])
@pytest.mark.parametrize(
    "value,missing,words",
    [
        ("nosuch", False, ["INTROZOO_LOG", "unknown logger 'nosuch'", "known: tensorboard"]),
        ("tensorboard", True, ["INTROZOO_LOG=tensorboard", "pip install 'introzoo[tensorboard]'"]),
    ],
    ids=["unknown", "not-installed"],
)
def test_introzoo_log_is_checked_as_log_is(command, value, missing, words, workdir, monkeypatch, capsys):
    monkeypatch.setenv("INTROZOO_LOG", value)
    if missing:
        monkeypatch.setitem(sys.modules, "tensorboard", None)  # as if not installed
    argv = [*(RUN_1 if command == "run" else SWEEP_1), "--out", str(workdir / "o")]
    _refused(argv, workdir, capsys, words)


@pytest.mark.parametrize(
    "argv",
    [
        [*RUN_1, "--out", ""],
        [*SWEEP_1, "--out", ""],
        ["sample", "{w}/run", "--out", ""],
        ["traverse", "{w}/run", "--out", ""],
        ["interpolate", "{w}/run", "--out", ""],
        ["leaderboard", "{w}/sweep", "-f", "md", "--out", ""],
    ],
    ids=["run", "sweep", "sample", "traverse", "interpolate", "leaderboard"],
)
def test_empty_out_is_refused_not_the_current_directory(argv, workdir, capsys):
    _refused([a.replace("{w}", str(workdir)) for a in argv], workdir, capsys, ["--out", "empty path"])


# --- Ctrl-C -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("resume_every", [None, "600"], ids=["no-resume-points", "resume-points"])
def test_ctrl_c_says_where_the_run_stopped_and_how_to_continue(resume_every, tmp_path):
    """SIGINT to a training ``introzoo run``: exit 130 and one line with the iteration and how to go on;
    with resume points the run stops at an iteration boundary, with a resume point written there."""
    out = tmp_path / "run"
    cmd = [
        sys.executable,
        "-m",
        "introzoo",
        *RUN_1[:4],
        "1000000",
        *RUN_1[5:],
        "--log-every",
        "1",
        "--out",
        str(out),
        *(["--resume-every", resume_every] if resume_every else []),
    ]
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "INTROZOO_DEBUG": ""},
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )  # even if ignored here
    try:
        deadline = time.monotonic() + 300
        while not (out / "history.jsonl").exists():  # training has started
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the run did not start"
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    stopped = re.search(r"interrupted at iteration (\d+) of 1000000; ", lines[0])
    assert stopped, lines[0]
    if resume_every:
        state = torch.load(out / "resume.pt", map_location="cpu", weights_only=False)
        assert state["iteration"] == int(stopped.group(1))
        assert f"rerun the same command to continue from iteration {state['iteration']}" in lines[0]
    else:
        assert not (out / "resume.pt").exists()
        assert "no resume point" in lines[0] and "from the start" in lines[0] and "--resume-every" in lines[0]


# --- messages ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("layout", ["v2", "v1"])
def test_memory_limit_is_the_cgroup_limit_when_lower_and_says_so(layout, tmp_path, monkeypatch, capsys):
    from introzoo.cli import commands as cli
    from introzoo.training import limits

    limit = 64 * 1024**2
    root = tmp_path / "cgroup"
    if layout == "v2":  # the limit on the parent of the process's cgroup
        (root / "jobs" / "job1").mkdir(parents=True)
        (root / "memory.max").write_text("max\n")
        (root / "jobs" / "memory.max").write_text(f"{limit}\n")
        (root / "jobs" / "job1" / "memory.max").write_text("max\n")
        cgroups, where = "0::/jobs/job1\n", root / "jobs" / "memory.max"
    else:
        (root / "memory" / "job1").mkdir(parents=True)
        (root / "memory" / "memory.limit_in_bytes").write_text("9223372036854771712\n")
        (root / "memory" / "job1" / "memory.limit_in_bytes").write_text(f"{limit}\n")
        cgroups, where = "5:pids:/job1\n4:memory:/job1\n0::/\n", root / "memory" / "job1" / "memory.limit_in_bytes"
    (tmp_path / "self-cgroup").write_text(cgroups)
    monkeypatch.setattr(limits, "CGROUP_ROOT", root)
    monkeypatch.setattr(limits, "PROC_CGROUP", tmp_path / "self-cgroup")
    monkeypatch.delenv(limits.ENV, raising=False)
    found, source = limits.memory_limit()
    assert found == limit and str(where) in source and "below the physical memory" in source

    def fail(*args, **kwargs):
        raise MemoryError()

    monkeypatch.setattr(cli, "registry", fail)
    assert main(["list"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "out of memory" in err
    assert "the memory limit is 64.0 MB (the cgroup limit" in err and str(where) in err


def test_atomic_writes_honour_the_umask(finished_run, tmp_path):
    from introzoo.training.run_dir import atomic_write_json

    for mask, mode in ((0o022, 0o644), (0o077, 0o600), (0o002, 0o664)):
        previous = os.umask(mask)
        try:
            atomic_write_json(tmp_path / f"umask{mask:03o}.json", {"a": 1})
        finally:
            os.umask(previous)
        assert stat.S_IMODE((tmp_path / f"umask{mask:03o}.json").stat().st_mode) == mode
        assert json.loads((tmp_path / f"umask{mask:03o}.json").read_text()) == {"a": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["umask002.json", "umask022.json", "umask077.json"]
    umask = os.umask(0o022)
    os.umask(umask)
    for name in ("config.json", "metrics.json"):  # a run's files, written under this process's umask
        assert stat.S_IMODE((finished_run / name).stat().st_mode) == 0o666 & ~umask, name


def test_an_unknown_option_names_the_help_of_its_command_however_introzoo_was_started():
    """`python -m introzoo.cli sample RUN -q`: the line points to `introzoo sample --help`, not to the
    interpreter's command line."""
    r = subprocess.run([sys.executable, "-m", "introzoo.cli", "sample", "somewhere", "-q"], capture_output=True, text=True)
    assert r.returncode == 2 and r.stderr.strip().splitlines() == [
        "error: No such option: -q (see 'introzoo sample --help')"
    ]
