"""What a user reads: --help of every command, `introzoo list`, messages and docs name the papers (no
internal labels), show flags without a type, spec strings as written; quiet sweeps and library runs
still report what a user needs."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest
import typer

from introzoo.cli import app, main
from introzoo.cli.commands import EVAL_EPILOG

ROOT = Path(__file__).resolve().parents[1]
CLI = typer.main.get_command(app)
COMMANDS = sorted(name for name, cmd in CLI.commands.items() if not cmd.hidden)
INTERNAL = re.compile(r"seed 00\d|SPEC §")
USER_DOCS = sorted((ROOT / "docs").glob("*.md")) + [ROOT / "README.md"]


def _help(capsys, *command: str) -> str:
    assert main([*command, "--help"]) == 0
    return capsys.readouterr().out


@pytest.mark.parametrize("command", [None] + COMMANDS)
def test_help_names_papers_not_internal_labels_and_flags_have_no_type(command, capsys):
    text = _help(capsys, *([command] if command else []))
    assert not INTERNAL.findall(text), f"introzoo {command or ''} --help: {INTERNAL.findall(text)}"
    assert "<bool>" not in text and "BOOLEAN" not in text


def test_list_names_papers_and_shows_plain_types(capsys):
    assert main(["list"]) == 0
    text = capsys.readouterr().out
    assert main(["list", "--json"]) == 0
    text += capsys.readouterr().out  # the options' docs too
    assert not INTERNAL.findall(text), INTERNAL.findall(text)
    assert "Annotated" not in text and "<bool>" not in text
    assert main(["list", "backbones", "--json"]) == 0
    mlp = {d["name"]: d for d in json.loads(capsys.readouterr().out)["backbones"]}["mlp"]
    assert {o["name"]: o["type"] for o in mlp["options"]}["hidden"] == "int | list[int]"
    assert main(["list", "backbones"]) == 0
    assert "hidden: int | list[int]" in capsys.readouterr().out  # [int] is not eaten as markup


@pytest.mark.parametrize("path", USER_DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_docs_name_papers_not_internal_labels(path):
    found = [(i + 1, line) for i, line in enumerate(path.read_text().splitlines()) if INTERNAL.search(line)]
    assert not found, f"{path.relative_to(ROOT)}: {found}"


def test_the_user_text_check_can_fail():
    assert INTERNAL.findall("as in seed 001 Table 2 (SPEC §8)") == ["seed 001", "SPEC §"]


def test_a_spec_string_is_echoed_as_written(capsys):
    assert main(["run", "-p", "mog:0"]) == 2
    err = capsys.readouterr().err
    assert "'mog:0'" in err and ":=" not in err and len(err.strip().splitlines()) == 1
    assert main(["sweep", "-p", "mog:0,learn_weights=true", "--dry-run"]) == 2
    assert "'mog:0,learn_weights=true'" in capsys.readouterr().err


def test_the_inception_fid_example_of_eval_help_parses_to_the_extractor():
    from introzoo.plugins import registry
    from introzoo.spec import resolve

    line = next(x for x in EVAL_EPILOG.splitlines() if "inception" in x)
    words = shlex.split(line)
    spec = words[words.index("--metric") + 1]
    comp, cfg = resolve(registry(), "metrics", spec)
    assert comp.name == "fid_gen"
    ext, ext_cfg = resolve(registry(), "extractors", cfg.features)
    assert ext.name == "inception" and ext_cfg.weights == "pt_inception.pth"


def test_resp_entropy_is_not_reported_for_a_prior_without_components(tmp_path, capsys):
    out = tmp_path / "sg"
    assert (
        main(
            [
                "run",
                "-n",
                "5",
                "-m",
                "kl,n_samples=200",
                "-m",
                "resp_entropy,n_data=200",
                "--threads",
                "1",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    text = capsys.readouterr().out.replace(str(out), "RUN")
    assert "resp_entropy" not in text and "active_components" not in text  # no time line, no table row
    m = json.loads((out / "metrics.json").read_text())
    assert set(m["metrics"]) == {"kl"} and set(m["directions"]) == {"kl"} and set(m["eval_times_s"]) == {"kl"}


def test_a_quiet_sweep_still_prints_its_leaderboard(tmp_path, capsys):
    assert (
        main(
            [
                "sweep",
                "-o",
                "vae",
                "-n",
                "5",
                "-m",
                "kl,n_samples=200",
                "--workers",
                "1",
                "--threads",
                "1",
                "-q",
                "--out",
                str(tmp_path / "s"),
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "leaderboard: s" in out and "kl ↓" in out and "sweep ->" not in out  # results, not progress


def test_the_python_facade_shows_progress(tmp_path, capsys):
    import introzoo

    run = introzoo.train(iterations=5, metric="kl,n_samples=200", out=tmp_path / "a", threads=1)
    assert run.status == "finished"
    out = capsys.readouterr().out
    assert "training" in out and "5/5" in out
    introzoo.train(iterations=5, metric="kl,n_samples=200", out=tmp_path / "b", threads=1, progress=False)
    assert "training" not in capsys.readouterr().out
