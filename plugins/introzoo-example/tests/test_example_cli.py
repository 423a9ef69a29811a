"""The plugin from introzoo's command line: listed, attributed, trained with."""

import json

from introzoo.cli import main

FAST = ["--metric", "kl,n_samples=500", "--metric", "gnelbo,grid=32,n_data=256", "-q"]


def test_plugins_and_list_show_the_plugin(capsys):
    assert main(["plugins", "--json"]) == 0
    plugins = {p["name"]: p for p in json.loads(capsys.readouterr().out)["plugins"]}
    assert plugins["example"]["registers"] == {
        "objectives": ["soft-ema"],
        "priors": ["laplace", "student-t"],
        "regularizers": ["mmd"],
        "datasets": ["gaussgrid"],
        "metrics": ["modes"],
    }
    assert plugins["example"]["version"] == "0.1.0"
    assert main(["list", "priors"]) == 0
    out = capsys.readouterr().out
    assert "laplace" in out and "student-t" in out and "example 0.1.0" in out


def test_run_with_the_laplace_prior_records_the_plugin(tmp_path, capsys):
    out = tmp_path / "run"
    assert (
        main(["run", "-p", "laplace", "-d", "8gaussians", "-o", "soft,num_vae=10", "-n", "30", "--out", str(out), *FAST])
        == 0
    )
    config = json.loads((out / "config.json").read_text())
    assert config["prior"] == {
        "name": "laplace",
        "options": {"std": 1.0, "learn_scale": False},
        "plugin": "example",
        "version": "0.1.0",
    }
    assert json.loads((out / "metrics.json").read_text())["status"] == "finished"


def test_prior_learning_with_a_learnable_laplace_and_the_mmd_regularizer(tmp_path, capsys):
    out = tmp_path / "run"
    assert (
        main(
            [
                "run",
                "-o",
                "soft-prior,num_vae=10",
                "-p",
                "laplace,learn_scale=true",
                "--reg",
                "mmd:2",
                "-n",
                "30",
                "--out",
                str(out),
                *FAST,
            ]
        )
        == 0
    )
    config = json.loads((out / "config.json").read_text())
    assert config["regularizers"] == [
        {"name": "mmd", "options": {"weight": 2.0, "kernel": "imq", "c": None}, "plugin": "example", "version": "0.1.0"}
    ]


def test_bad_option_is_one_line_naming_the_valid_choices(capsys):
    assert main(["run", "-p", "student-t,dof=3"]) == 2
    err = capsys.readouterr().err
    assert "unknown option 'dof'" in err and "known: df, scale, kl_samples" in err
    assert len(err.strip().splitlines()) == 1
