"""Installed plugins (the ``introzoo`` entry-point group): loading, attribution, failures, switches.

A plugin is "installed" here by writing its distribution metadata (``*.dist-info`` with an
``entry_points.txt``) next to its module on ``sys.path``, which is what ``pip install`` leaves behind;
the slow test at the end installs the example plugin with pip itself.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

from typing import ClassVar

import pytest

from introzoo import hookspecs, plugins
from introzoo.cli import main
from introzoo.errors import UsageError

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "plugins" / "introzoo-example"
EXAMPLE_SRC = EXAMPLE / "src"  # on sys.path in this test suite (pyproject.toml: pythonpath)
FAST = ["--metric", "kl,n_samples=500", "--metric", "gnelbo,grid=32,n_data=256", "-q"]

GOOD = '''
from pydantic import BaseModel, ConfigDict
from introzoo import hookimpl
from introzoo.priors.gaussian import StandardGaussian

class Empty(BaseModel):
    model_config = ConfigDict(extra="forbid")

@hookimpl
def introzoo_register_priors(register):
    register("good-prior", lambda config, zdim: StandardGaussian(zdim), Empty, "A prior from an installed plugin.")
'''
BROKEN = 'raise RuntimeError("boom\\nsecond line of the message")\n'
CLASH = GOOD.replace('"good-prior"', '"sg"')
TYPO = GOOD.replace("def introzoo_register_priors", "def introzoo_register_prior")
RAISES = GOOD.replace('    register("good-prior"', '    raise KeyError("no such thing")\n    register("good-prior"')


def install(site: Path, dist: str, version: str, modules: dict[str, str], entry_points: dict[str, str]) -> None:
    """Write modules and a dist-info with ``[introzoo]`` entry points into ``site``."""
    for name, code in modules.items():
        (site / f"{name}.py").write_text(textwrap.dedent(code))
    info = site / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    (info / "entry_points.txt").write_text("[introzoo]\n" + "".join(f"{k} = {v}\n" for k, v in entry_points.items()))


def _installed() -> set[str]:
    """Names of the introzoo plugins installed on sys.path, leaving out the example's source tree."""
    from importlib.metadata import distributions

    path = [p for p in sys.path if Path(p or ".").resolve() != EXAMPLE_SRC]
    return {ep.name for d in distributions(path=path) for ep in d.entry_points if ep.group == "introzoo"}


@pytest.fixture
def site(tmp_path, monkeypatch):
    """A directory on sys.path for installed plugins; plugins are switched on, except those installed
    in this environment already (a developer's, or the example's metadata that ``pip install`` leaves in
    its source tree), which are switched off by name and left out of the comparisons below."""
    monkeypatch.setattr(sys, "path", [p for p in sys.path if Path(p or ".").resolve() != EXAMPLE_SRC])
    monkeypatch.delitem(sys.modules, "introzoo_example", raising=False)
    d = tmp_path / "site"
    d.mkdir()
    monkeypatch.syspath_prepend(str(d))
    others = _installed()
    if others:
        monkeypatch.setenv(plugins.DISABLE_ENV, ",".join(sorted(others)))
    else:
        monkeypatch.delenv(plugins.DISABLE_ENV, raising=False)
    yield d
    for name in [m for m in sys.modules if m.startswith("izt_")]:
        del sys.modules[name]


@pytest.fixture
def many(site):
    install(
        site,
        "izt-plugins",
        "2.5.1",
        {"izt_good": GOOD, "izt_broken": BROKEN, "izt_clash": CLASH, "izt_typo": TYPO, "izt_raises": RAISES},
        {"good": "izt_good", "broken": "izt_broken", "clash": "izt_clash", "typo": "izt_typo", "raises": "izt_raises"},
    )
    return site


def test_failing_plugins_are_reported_in_one_line_each_and_the_rest_works(many, capsys):
    st = plugins.build()
    assert dict(st.failures) == {
        "broken": "RuntimeError: boom",
        "typo": "unknown hook 'introzoo_register_prior'; did you mean 'introzoo_register_priors'? known: "
        + ", ".join(hookspecs.HOOKS),
        "raises": "KeyError: 'no such thing'",
    }
    assert st.registry.get("priors", "good-prior").plugin == "good"
    assert st.registry.get("priors", "sg").plugin == "introzoo"  # the clash did not replace the built-in ...
    assert st.registry.get("priors", "clash:sg").plugin == "clash"  # ... and is there qualified
    assert sorted(p.name for p in st.plugins) == ["clash", "good", "introzoo"]  # installed others are switched off

    assert main(["list", "priors"]) == 0
    out, err = capsys.readouterr()
    assert "good-prior" in out and "good 2.5.1" in out and "clash:sg" in out
    lines = err.strip().splitlines()
    assert len(lines) == 4 and all(line.startswith("warning: plugin '") for line in lines)
    assert "warning: plugin 'broken' failed to load and was skipped: RuntimeError: boom" in lines
    assert (
        "warning: plugin 'clash' registers names that are taken: prior 'sg' (taken by introzoo); its own are "
        "selected as clash:sg (its other components load as usual)"
    ) in lines


def test_plugins_command_shows_versions_packages_failures_and_disabled(many, monkeypatch, capsys):
    others = os.environ.get(plugins.DISABLE_ENV, "")
    monkeypatch.setenv(plugins.DISABLE_ENV, f"typo, raises,{others}")
    assert main(["plugins", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    good = {p["name"]: p for p in data["plugins"]}["good"]
    assert good == {
        "name": "good",
        "version": "2.5.1",
        "module": "izt_good",
        "builtin": False,
        "package": "izt-plugins",
        "registers": {"priors": ["good-prior"]},
    }
    assert sorted(set(data["disabled"]) - _others(others)) == ["raises", "typo"]
    assert sorted(f["name"] for f in data["failed"]) == ["broken"]
    assert {p["name"]: p for p in data["plugins"]}["clash"]["registers"] == {"priors": ["clash:sg"]}
    assert main(["plugins"]) == 0
    out = capsys.readouterr().out
    assert "good (izt-plugins)" in out and "2.5.1" in out and "failed to load" in out and "disabled" in out


def test_no_plugins_switch_holds_for_one_command(many, capsys):
    before = os.environ.get(plugins.DISABLE_ENV)
    assert main(["--no-plugins", "plugins", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [p["name"] for p in data["plugins"]] == ["introzoo"] and data["failed"] == []
    assert sorted(set(data["disabled"]) - _others(before)) == ["broken", "clash", "good", "raises", "typo"]
    assert os.environ.get(plugins.DISABLE_ENV) == before
    assert main(["--no-plugins", "run", "-p", "good-prior"]) == 2  # not there with --no-plugins ...
    assert "unknown prior 'good-prior'" in capsys.readouterr().err
    assert "good-prior" in plugins.registry().names("priors")  # ... and back afterwards


MINE = '''
from pydantic import BaseModel, ConfigDict
from introzoo import hookimpl
from introzoo.data.toy2d import Toy2D
from introzoo.objectives.vae import VAEConfig, VAEObjective
from introzoo.priors.gaussian import StandardGaussian

class Empty(BaseModel):
    model_config = ConfigDict(extra="forbid")

class Boot(VAEObjective):
    name = "soft-boot"

class Moons(Toy2D):
    def __init__(self):
        super().__init__("8gaussians")

@hookimpl
def introzoo_register_objectives(register):
    register("soft-boot", lambda c, model, regularizers=None, train=None: Boot(c, model, regularizers, train),
             VAEConfig, "This plugin's soft-boot (a plain VAE).")

@hookimpl
def introzoo_register_datasets(register):
    register("moons", lambda c: Moons(), Empty, "This plugin's moons (eight Gaussians).")

@hookimpl
def introzoo_register_priors(register):
    register("mine-prior", lambda c, zdim: StandardGaussian(zdim), Empty, "A prior no one else has.")
'''


def test_plugin_with_taken_names_loads_the_rest_warns_once_and_is_selected_qualified(site, tmp_path, capsys):
    from introzoo.spec import parse_spec, resolve

    install(site, "izt-mine", "1.2", {"izt_mine": MINE}, {"mine": "izt_mine"})
    st = plugins.build()
    assert st.failures == []
    reg = st.registry
    assert reg.get("priors", "mine-prior").plugin == "mine"  # the component without a clash, as usual
    assert reg.get("objectives", "soft-boot").plugin == reg.get("datasets", "moons").plugin == "introzoo"
    assert reg.get("objectives", "mine:soft-boot").plugin == reg.get("datasets", "mine:moons").plugin == "mine"
    assert [info.registers for info in st.plugins if info.name == "mine"] == [
        {"objectives": ["mine:soft-boot"], "priors": ["mine-prior"], "datasets": ["mine:moons"]}
    ]

    line = (
        "plugin 'mine' registers names that are taken: objective 'soft-boot' (taken by introzoo), dataset "
        "'moons' (taken by introzoo); its own are selected as mine:soft-boot, mine:moons (its other components "
        "load as usual)"
    )
    assert st.clashes == [("mine", line)]
    assert main(["list"]) == 0
    out, err = capsys.readouterr()
    assert err.strip().splitlines() == [f"warning: {line}"]  # every clash, one line
    assert "mine:soft-boot" in out and "mine:moons" in out and "mine-prior" in out
    assert main(["plugins", "--json"]) == 0
    mine = {p["name"]: p for p in json.loads(capsys.readouterr().out)["plugins"]}["mine"]
    assert mine["registers"] == {"objectives": ["mine:soft-boot"], "priors": ["mine-prior"], "datasets": ["mine:moons"]}

    with plugins.using(st):  # the qualified name selects the plugin's component, the bare one the built-in
        assert resolve(reg, "objectives", "mine:soft-boot,beta_kl=0.5")[0].plugin == "mine"
        assert resolve(reg, "objectives", "soft-boot")[0].plugin == "introzoo"
        assert resolve(reg, "objectives", "introzoo:soft-boot")[0].plugin == "introzoo"
        assert resolve(reg, "priors", "mine:mine-prior")[0].name == "mine-prior"  # qualified without a clash too
        assert parse_spec("mog:3", "priors").options == {":": "3"}  # name:value where 'mog' is no plugin
        with pytest.raises(
            UsageError,
            match=r"plugin 'mine' registers no objective 'soft' \(in 'mine:soft'\); its "
            "objectives: soft-boot",
        ):
            resolve(reg, "objectives", "mine:soft")

    out = tmp_path / "run"
    assert main(["run", "-o", "mine:soft-boot", "-d", "mine:moons", "-n", "20", "--out", str(out), *FAST]) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["objective"]["name"] == "mine:soft-boot" and config["objective"]["plugin"] == "mine"
    assert config["data"]["name"] == "mine:moons" and config["data"]["plugin"] == "mine"


def test_a_qualified_name_and_a_primary_value_stay_apart(register_plugin):
    """A plugin named like a component: 'mog:3' is still the built-in with K = 3, 'mog:mog' the plugin's
    prior and 'mog:mog:3' that prior with its primary option 3."""
    from pydantic import BaseModel, ConfigDict, Field

    from introzoo import hookimpl
    from introzoo.priors.gaussian import StandardGaussian
    from introzoo.spec import resolve
    from introzoo.testing import check_component, components_of

    class Scale(BaseModel):
        model_config = ConfigDict(extra="forbid")
        primary: ClassVar[str] = "n"
        n: int = Field(1, description="an option")

    class Mog:
        __name__ = "mog"

        @staticmethod
        @hookimpl
        def introzoo_register_priors(register):
            register("mog", lambda c, zdim: StandardGaussian(zdim), Scale, "Not a mixture.")

    with pytest.warns(plugins.PluginClashWarning, match="prior 'mog' .taken by introzoo."):
        params = components_of(Mog())
    assert [p.values for p in params] == [("priors", "mog:mog")]
    with pytest.warns(plugins.PluginClashWarning, match="its own are selected as mog:mog"):
        reg = register_plugin(Mog()).registry
    comp, cfg = resolve(reg, "priors", "mog:3")
    assert comp.plugin == "introzoo" and cfg.K == 3
    comp, cfg = resolve(reg, "priors", "mog:mog")
    assert comp.plugin == "mog" and cfg.n == 1
    comp, cfg = resolve(reg, "priors", "mog:mog:3")
    assert comp.plugin == "mog" and cfg.n == 3
    check_component("priors", "mog:mog")  # the contract checks take the qualified name


def test_installed_example_plugin_is_listed_and_recorded_in_config_json(site, tmp_path, capsys):
    if "example" in _installed():
        pytest.skip("introzoo-example is installed in this environment")
    shutil.copytree(EXAMPLE_SRC / "introzoo_example", site / "introzoo_example")  # what pip install copies
    install(site, "introzoo-example", "0.1.0", {}, {"example": "introzoo_example"})
    assert main(["plugins", "--json"]) == 0
    example = {p["name"]: p for p in json.loads(capsys.readouterr().out)["plugins"]}["example"]
    assert example["package"] == "introzoo-example" and example["version"] == "0.1.0"
    assert example["registers"] == {
        "objectives": ["soft-ema"],
        "priors": ["laplace", "student-t"],
        "regularizers": ["mmd"],
        "datasets": ["gaussgrid"],
        "metrics": ["modes"],
    }
    out = tmp_path / "run"
    assert main(["run", "-p", "student-t:3", "-o", "vae", "-n", "20", "--out", str(out), *FAST]) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["prior"]["plugin"] == "example" and config["prior"]["version"] == "0.1.0"
    assert config["prior"]["options"]["df"] == 3.0


def _others(disabled: str | None) -> set[str]:
    return {p.strip() for p in (disabled or "").split(",") if p.strip()}


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in (plugins.DISABLE_ENV, "PYTHONPATH")}
    env.update(extra)
    return env


def test_broken_plugin_in_a_real_process(site):
    install(site, "izt-broken", "1.0", {"izt_broken": BROKEN}, {"broken": "izt_broken"})
    r = subprocess.run(
        [sys.executable, "-m", "introzoo.cli", "list", "objectives"],
        capture_output=True,
        text=True,
        env=_env(PYTHONPATH=str(site)),
    )
    assert r.returncode == 0 and "soft-prior" in r.stdout
    assert r.stderr.strip() == "warning: plugin 'broken' failed to load and was skipped: RuntimeError: boom"


@pytest.mark.slow
def test_pip_install_of_the_example_plugin_then_uninstall(tmp_path):
    """``pip install plugins/introzoo-example`` (into a target directory, without touching the
    environment), train with its prior, then remove it."""
    pytest.importorskip("setuptools")  # building the plugin without network access
    if "example" in _installed():
        pytest.skip("introzoo-example is installed in this environment")
    source, target = tmp_path / "source", tmp_path / "target"
    shutil.copytree(EXAMPLE, source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--target",
            str(target),
            str(source),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert r.returncode == 0, r.stderr
    env = _env(PYTHONPATH=str(target))

    def cli(*args: str, environ=env) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "introzoo.cli", *args], capture_output=True, text=True, env=environ, cwd=tmp_path
        )

    info = {p["name"]: p for p in json.loads(cli("plugins", "--json").stdout)["plugins"]}
    assert info["example"]["package"] == "introzoo-example" and info["example"]["version"] == "0.1.0"
    run = cli("run", "--prior", "laplace", "--data", "8gaussians", "--iterations", "20", "--out", "run", *FAST)
    assert run.returncode == 0, run.stderr
    assert json.loads((tmp_path / "run" / "config.json").read_text())["prior"]["plugin"] == "example"
    gone = cli("plugins", "--json", environ=_env())  # uninstalled: not on the path any more
    assert "example" not in {p["name"] for p in json.loads(gone.stdout)["plugins"]}


# -- which code made each leaderboard row --------------------------------------------------------------


def _run(root: Path, h: str, key: str, seed: int, prior_version: str) -> None:
    from introzoo.training.run_dir import atomic_write_json

    d = root / "runs" / h
    d.mkdir(parents=True)
    builtin = {"plugin": "introzoo", "version": "0.1.0"}
    atomic_write_json(
        d / "config.json",
        {
            "introzoo": "0.1.0",
            "hash": h,
            "config_key": key,
            "seed": seed,
            "train": {"iterations": 100},
            "objective": {"name": "soft", "options": {}, **builtin},
            "data": {"name": "rings", "options": {}, **builtin},
            "prior": {"name": "laplace", "options": {}, "plugin": "example", "version": prior_version},
            "regularizers": [{"name": "mmd", "options": {}, "plugin": "example", "version": prior_version}],
            "metrics": [
                {"name": "kl", "options": {}, **builtin},
                {"name": "fancy", "options": {}, "plugin": "zz", "version": "3"},
            ],
        },
    )
    atomic_write_json(d / "metrics.json", {"status": "finished", "metrics": {"kl": 1.0 + seed}, "directions": {"kl": "min"}})


def test_leaderboard_says_which_code_made_each_row(tmp_path, capsys):
    from introzoo.sweeps import leaderboard as lb
    from introzoo.sweeps.records import code_of

    _run(tmp_path, "a0", "A", 0, "0.1.0")
    _run(tmp_path, "a1", "A", 1, "0.2.0")  # the plugin was upgraded between the seeds
    _run(tmp_path, "b0", "B", 0, "0.2.0")
    old, new = "introzoo 0.1.0 + example 0.1.0 + zz 3", "introzoo 0.1.0 + example 0.2.0 + zz 3"
    assert code_of(json.loads((tmp_path / "runs" / "a0" / "config.json").read_text())) == old
    rows = {r["runs"]: r for r in json.loads(lb.to_json(*lb.build_rows(lb.collect(tmp_path)), "kl"))["rows"]}
    assert rows[2]["code"] == [old, new] and rows[1]["code"] == [new]

    assert main(["leaderboard", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "example 0.2.0" not in out and "1 row(s) mix runs made by different code" in out
    assert main(["leaderboard", str(tmp_path), "--versions", "--format", "md"]) == 0
    md = capsys.readouterr().out
    assert md.splitlines()[2].startswith("| rank | data |") and md.splitlines()[2].endswith("| code |")
    assert f"| {old}; {new} |" in md
    assert main(["leaderboard", str(tmp_path), "--format", "csv"]) == 0
    last = [line.rsplit(",", 1)[1] for line in capsys.readouterr().out.strip().splitlines()]
    assert last[0] == "code" and sorted(last[1:]) == sorted([f"{old}; {new}", new])
