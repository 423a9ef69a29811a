"""Every documented example trains a model that shows what its objective does.

``soft`` and ``intro`` spend their first ``num_vae`` iterations (2,000 on 2D data) as a plain VAE; an
example shorter than twice that trains, in effect, a VAE (:func:`introzoo.references.warmup_dominates`).
Each ``introzoo run`` / ``introzoo sweep`` line of README.md, docs/, the example plugin's README and
every command's ``--help`` is checked at its stated length with ``--dry-run`` (the options the command
line resolves, nothing trained), as is the README's Python example. ``introzoo run`` and ``sweep`` say so
themselves (one ``warning:`` line), the facade warns and the leaderboard marks such rows.
"""

from __future__ import annotations

import ast
import json
import re
import shlex
from pathlib import Path

import pytest
import typer

from introzoo.cli import app, main
from introzoo.references import warmup_dominates, warmup_text
from test_docs import examples  # the docs' command lines, as test_docs.py reads them

ROOT = Path(__file__).resolve().parents[1]
SOURCES = sorted((ROOT / "docs").glob("*.md")) + [ROOT / "README.md", ROOT / "plugins" / "introzoo-example" / "README.md"]
CLI = typer.main.get_command(app)


def _lines(text: str) -> list[str]:
    """The ``introzoo run`` / ``introzoo sweep`` command lines of the ```bash blocks of a markdown text."""
    return [line for line in examples(text) if line.split()[1:2] in (["run"], ["sweep"])]


def _help_lines() -> list[str]:
    out = []
    for name in ("run", "sweep"):
        cmd = CLI.commands[name]
        source = f"{cmd.help or ''}\n{cmd.epilog or ''}"
        out += [m.strip().split("   (")[0] for m in re.findall(r"^\s*(introzoo (?:run|sweep) .*)$", source, flags=re.M)]
    return out


def documented() -> list[tuple[str, str]]:
    found = [(str(p.relative_to(ROOT)), line) for p in SOURCES for line in _lines(p.read_text())]
    found += [("--help", line) for line in _help_lines()]
    out, seen = [], set()
    for where, line in found:
        if "<" in line or "..." in line:  # placeholders (runs/<run>)
            continue
        words = shlex.split(line)
        for flag in ("-e", "--executor", "--pack", "--workers", "--threads", "--out", "--dry-run", "-q"):
            while flag in words:  # where and how, not what trains: one check per configuration
                i = words.index(flag)
                del words[i : i + (1 if flag in ("--dry-run", "-q") else 2)]
        if shlex.join(words) not in seen:
            seen.add(shlex.join(words))
            out.append((where, line))
    return out


EXAMPLES = documented()


def test_the_examples_are_found():
    lines = [line for _, line in EXAMPLES]
    assert any(line.startswith("introzoo run") for line in lines) and any(
        line.startswith("introzoo sweep") for line in lines
    )
    assert "introzoo run --iterations 4000 --out runs/first" in lines  # the README's first command


@pytest.fixture
def example_plugin(register_plugin):
    import introzoo_example

    register_plugin(introzoo_example)


@pytest.mark.parametrize("where,line", EXAMPLES, ids=[f"{w}: {line}" for w, line in EXAMPLES])
def test_every_documented_example_leaves_the_warm_up(where, line, tmp_path, capsys, example_plugin, monkeypatch):
    monkeypatch.chdir(ROOT)  # sweep files are named from the repository's root
    args = shlex.split(line)[1:]
    if "--out" in args:  # nothing is written by a dry run; all the same, not into the repository
        i = args.index("--out")
        del args[i : i + 2]
    code = main(args + ["--out", str(tmp_path / "out"), "--dry-run"])
    out, err = capsys.readouterr()
    if code == 2 and any(w in err for w in ("not available", "offline", "no network", "no CUDA device")):
        pytest.skip(f"not on this machine: {err.strip()}")
    if code == 2 and re.search(r"-d '?(folder|points):", line) and "does not exist" in err:
        pytest.skip(f"an example on the reader's own files: {err.strip()}")  # tests/test_own_data.py runs them
    assert code == 0, f"{where}: '{line}' --dry-run: {err}"
    assert "warm-up" not in err, f"{where}: '{line}' trains mostly the plain-VAE warm-up: {err}"


def test_the_readme_python_example_leaves_the_warm_up():
    from introzoo.api import resolve_run

    text = (ROOT / "README.md").read_text()
    calls = re.findall(r"introzoo\.train\((.*?)\)\n", text)
    assert calls
    for call in calls:
        kwargs = {k.arg: ast.literal_eval(k.value) for k in ast.parse(f"f({call})").body[0].value.keywords}
        run = resolve_run(**kwargs)
        assert not warmup_dominates(getattr(run.objective.config, "num_vae", None), run.train["iterations"]), call


def test_the_rule():
    assert warmup_dominates(2000, 2000) and warmup_dominates(2000, 3000) and warmup_dominates(2000, 3999)
    assert not warmup_dominates(2000, 4000) and not warmup_dominates(0, 10) and not warmup_dominates(None, 10)
    assert "whole run" in warmup_text("soft", 2000, 1500)
    assert "only 1,000 of 3,000 iterations" in warmup_text("soft", 2000, 3000)


def test_run_sweep_and_facade_warn_and_the_leaderboard_marks_the_row(tmp_path, capsys):
    """The check's own failure: a 3,000-iteration soft run warns everywhere (dry runs, nothing trained
    except the leaderboard's tiny run)."""
    assert main(["run", "-o", "soft", "-n", "3000", "--dry-run", "--out", str(tmp_path / "r")]) == 0
    err = capsys.readouterr().err
    assert "warning: only 1,000 of 3,000 iterations come after the plain-VAE warm-up (num_vae=2000)" in err
    assert not (tmp_path / "r").exists()
    assert main(["sweep", "-o", "vae,soft", "-n", "3000", "--dry-run", "--out", str(tmp_path / "s")]) == 0
    err = capsys.readouterr().err
    assert "1 of 2 runs (soft) spend half their iterations or more in the plain-VAE warm-up" in err

    import introzoo

    with pytest.warns(UserWarning, match="only 2 of 6 iterations"):
        introzoo.train(
            objective="soft,num_vae=4",
            data="8gaussians",
            iterations=6,
            out=tmp_path / "f",
            progress=False,
            metric="kl,n_samples=100",
            threads=1,
        )
    assert (
        main(
            ["sweep", "-o", "soft,num_vae=4", "-n", "6", "--metric", "kl,n_samples=100", "-q", "--out", str(tmp_path / "lb")]
        )
        == 0
    )
    capsys.readouterr()
    assert main(["leaderboard", str(tmp_path / "lb"), "-f", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)["rows"]
    assert [r["warmup_heavy"] for r in rows] == [True]
    assert main(["leaderboard", str(tmp_path / "lb")]) == 0
    out = capsys.readouterr().out
    assert "6 / 30,000 †" in out and "†: 1 row(s) spent half their iterations or more" in out
