"""The code stays free of pyflakes findings (unused imports and variables, undefined or redefined
names) and formatted: ``ruff check`` and ``ruff format --check`` with the project's settings
(``[tool.ruff]`` in pyproject.toml; run ``ruff format`` before committing)."""

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _ruff() -> list[str]:
    exe = shutil.which("ruff") or str(Path(sys.executable).with_name("ruff"))
    return [exe]


def test_no_pyflakes_findings():
    out = subprocess.run(
        [*_ruff(), "check", "--output-format", "concise", "introzoo", "tests", "benchmarks", "plugins", "docs/figures"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_the_code_is_formatted():
    out = subprocess.run(
        [*_ruff(), "format", "--check", "introzoo", "tests", "benchmarks", "plugins", "docs/figures"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, "run `ruff format`:\n" + out.stdout + out.stderr


def test_the_format_check_can_fail(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("x = [1,\n  2]\n")
    out = subprocess.run(
        [*_ruff(), "format", "--check", "--no-cache", "--isolated", str(bad)], capture_output=True, text=True
    )
    assert out.returncode == 1 and "bad.py" in out.stdout


def test_the_check_can_fail(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("import os\n")
    out = subprocess.run(
        [*_ruff(), "check", "--no-cache", "--isolated", "--select", "F", str(bad)], capture_output=True, text=True
    )
    assert out.returncode == 1 and "F401" in out.stdout
