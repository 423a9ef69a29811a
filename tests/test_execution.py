"""Every computing command takes the execution options of ``run`` (--device, --threads; --chunk where it
evaluates) and applies them; ``run`` checks the data before it creates anything, shows the resolved prior
options, and warns when the warm-up covers the whole run."""

from __future__ import annotations

from urllib.error import URLError

import pytest
import torch

from introzoo.training import loop as train_module
from introzoo.cli import main


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setenv("INTROZOO_CACHE", str(tmp_path_factory.mktemp("cache")))
    out = tmp_path_factory.mktemp("runs") / "digits"
    assert main(["run", "-d", "digits", "-n", "3", "--metric", "knn5", "--out", str(out), "-q"]) == 0
    yield out
    mp.undo()


@pytest.fixture
def threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def commands(run, tmp):
    return {
        "run": ["run", "-d", "digits", "-n", "2", "--metric", "knn5", "--out", str(tmp / "again"), "-q"],
        "sample": ["sample", str(run), "--n", "4", "--out", str(tmp / "s.pt")],
        "eval": ["eval", str(run), "--metric", "knn5", "--no-save", "-q"],
        "ood": ["ood", str(run), "--against", "digits", "--n", "20", "-q"],
        "traverse": ["traverse", str(run), "--steps", "2", "--out", str(tmp / "t.png")],
        "interpolate": ["interpolate", str(run), "--pairs", "1", "--steps", "2", "--out", str(tmp / "i.png")],
    }


@pytest.mark.parametrize("command", ["run", "sample", "eval", "ood", "traverse", "interpolate"])
def test_every_computing_command_applies_threads_and_device(command, digits_run, tmp_path, monkeypatch, threads, capsys):
    seen = []
    real = train_module.pick_device
    monkeypatch.setattr(train_module, "pick_device", lambda name: seen.append(name) or real(name))
    target = 3 if torch.get_num_threads() != 3 else 2
    args = commands(digits_run, tmp_path)[command]
    assert main(args + ["--threads", str(target), "--device", "cpu"]) == 0, capsys.readouterr().err
    assert torch.get_num_threads() == target
    assert seen and set(seen) == {"cpu"}

    assert main(args + ["--threads", "0"]) == 2
    assert "--threads must be at least 1" in capsys.readouterr().err
    if not torch.cuda.is_available():
        assert main(args + ["--device", "cuda"]) == 2
        err = capsys.readouterr().err
        assert "no CUDA device" in err and "Traceback" not in err


@pytest.mark.parametrize("command", ["eval", "ood"])
def test_the_evaluating_commands_refuse_a_chunk_under_one(command, digits_run, tmp_path, capsys):
    assert main(commands(digits_run, tmp_path)[command] + ["--chunk", "0"]) == 2
    assert "--chunk must be at least 1" in capsys.readouterr().err


def test_eval_prints_each_metric_time_and_records_it(digits_run, capsys):
    assert main(["eval", str(digits_run), "--metric", "knn5", "--chunk", "7"]) == 0
    out = capsys.readouterr().out
    assert "knn5: " in out and " s" in out
    import json

    m = json.loads((digits_run / "metrics.json").read_text())
    assert m["eval_times_s"]["knn5"] >= 0


@pytest.fixture
def offline(monkeypatch):
    """Downloads fail as they do without a network."""
    import torchvision.datasets.mnist as tv_mnist

    def fail(url, *args, **kwargs):
        raise URLError(OSError(-2, "Name or service not known"))

    monkeypatch.setattr(tv_mnist, "download_and_extract_archive", fail)


def test_offline_mnist_creates_nothing_and_names_the_cause(tmp_path, monkeypatch, offline, capsys):
    monkeypatch.chdir(tmp_path)
    root = tmp_path / "data"
    rc = main(["run", "-o", "soft", "-p", "mog:100", "-d", "mnist", "--data-root", str(root)])
    out, err = capsys.readouterr()
    assert rc == 2 and "Traceback" not in err
    assert "dataset 'mnist' is not under" in err and "(no network: [Errno -2] Name or service not known)" in err
    assert "soft (" not in out  # stopped before the plan line
    assert list(tmp_path.iterdir()) == []  # no runs/, no data root, no empty MNIST/raw


def test_a_failed_download_keeps_what_was_in_the_data_root(tmp_path, offline, capsys):
    root = tmp_path / "data"
    (root / "other").mkdir(parents=True)
    (root / "other" / "file").write_text("kept")
    out = tmp_path / "run"
    assert main(["run", "-d", "mnist", "--data-root", str(root), "--out", str(out), "-q"]) == 2
    assert sorted(p.name for p in root.iterdir()) == ["other"] and (root / "other" / "file").read_text() == "kept"
    assert not out.exists()
    assert "no network" in capsys.readouterr().err


def test_plan_shows_the_prior_options_and_a_covering_warm_up_warns(tmp_path, capsys):
    assert main(["run", "-p", "mog:100", "-n", "5", "--metric", "kl,n_samples=100", "--out", str(tmp_path / "a")]) == 0
    out, err = capsys.readouterr()
    assert "prior mog (K=100, " in out
    warnings = [line for line in err.splitlines() if "warm-up" in line]
    assert len(warnings) == 1 and "num_vae=2000 >= 5 iterations" in warnings[0] and "plain VAE" in warnings[0]

    assert (
        main(["run", "-o", "soft,num_vae=2", "-n", "5", "--metric", "kl,n_samples=100", "--out", str(tmp_path / "b"), "-q"])
        == 0
    )
    assert "warm-up" not in capsys.readouterr().err


def test_run_without_threads_takes_one_thread_on_2d_and_says_so(tmp_path, threads, capsys, monkeypatch):
    """2D runs: one thread unless --threads says otherwise; images: torch's default capped by the cores
    the load average leaves free; the plan line says which and why."""
    from introzoo.cli import common as cli_common

    torch.set_num_threads(2)
    assert main(["run", "-n", "3", "-m", "kl,n_samples=100", "--out", str(tmp_path / "a")]) == 0
    assert torch.get_num_threads() == 1 and "threads 1 (2D: one thread" in capsys.readouterr().out
    torch.set_num_threads(2)
    assert main(["run", "-n", "3", "-m", "kl,n_samples=100", "--threads", "2", "--out", str(tmp_path / "b")]) == 0
    assert torch.get_num_threads() == 2 and "threads 1" not in capsys.readouterr().out
    monkeypatch.setattr("os.cpu_count", lambda: 4)
    monkeypatch.setattr("os.getloadavg", lambda: (2.6, 0.0, 0.0))
    torch.set_num_threads(4)
    assert cli_common.default_threads("image") == (1, "4 cores, about 3 busy")
    monkeypatch.setattr("os.getloadavg", lambda: (0.2, 0.0, 0.0))
    assert cli_common.default_threads("image")[0] == 4
