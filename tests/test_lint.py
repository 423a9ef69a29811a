"""The code stays free of pyflakes findings (unused imports and variables, undefined or redefined
names): ``ruff check`` with the project's settings (``[tool.ruff]`` in pyproject.toml)."""

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _ruff() -> list[str]:
    exe = shutil.which("ruff") or str(Path(sys.executable).with_name("ruff"))
    return [exe]


def test_no_pyflakes_findings():
    out = subprocess.run([*_ruff(), "check", "--output-format", "concise", "introzoo", "tests", "benchmarks", "plugins"],
                         cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_the_check_can_fail(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("import os\n")
    out = subprocess.run([*_ruff(), "check", "--no-cache", "--isolated", "--select", "F", str(bad)],
                         capture_output=True, text=True)
    assert out.returncode == 1 and "F401" in out.stdout
