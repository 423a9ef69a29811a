"""The docs cover the code. Hooks come from introzoo.hookspecs and commands from the Typer app, so a new
hook, command or option fails here until it is documented; examples in the docs and in --help must name
real commands and options with valid values."""

from __future__ import annotations

import inspect
import re
import shlex
from pathlib import Path

import pytest
import typer

from introzoo import hookspecs
from introzoo.cli import app, main

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
CLI = typer.main.get_command(app)
COMMANDS = sorted(name for name, cmd in CLI.commands.items() if not cmd.hidden)
HOOKS = sorted(name for name, f in vars(hookspecs).items() if callable(f) and hasattr(f, "introzoo_spec"))


def sections(path: Path) -> dict[str, str]:
    """'## heading' -> the text up to the next '## ' heading."""
    parts = re.split(r"^## (.+)$", path.read_text(), flags=re.M)
    return {parts[i].strip(): parts[i + 1] for i in range(1, len(parts), 2)}


def examples(text: str) -> list[str]:
    """The ``introzoo ...`` command lines in the ```bash blocks of a markdown text."""
    out = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        for line in block.splitlines():
            for part in line.split("&&"):
                words = shlex.split(part, comments=True)
                while words and re.fullmatch(r"[A-Z_]+=\S*", words[0]):  # VAR=value before the command
                    words.pop(0)
                if words and words[0] == "introzoo":
                    out.append(shlex.join(words))
    return out


def parse(line: str) -> None:
    """Parse an ``introzoo ...`` command line as the CLI would, without running it: unknown commands or
    options, missing arguments and values of the wrong type raise click's usage errors."""
    args = shlex.split(line)[1:]
    ctx = CLI.make_context("introzoo", args)
    rest = list(getattr(ctx, "protected_args", None) or getattr(ctx, "_protected_args", [])) + ctx.args
    if rest:
        name, cmd, rest = CLI.resolve_command(ctx, rest)
        cmd.make_context(name, rest, parent=ctx)


def test_hooks_are_found():
    assert "introzoo_register_priors" in HOOKS and sorted(hookspecs.HOOKS) == HOOKS
    assert {f"introzoo_register_{k}" for k in hookspecs.KINDS} | set(hookspecs.RUN_HOOKS) < set(HOOKS)


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hook_is_documented(hook):
    docs = sections(DOCS / "hooks.md")
    body = next((text for heading, text in docs.items() if f"`{hook}`" in heading), None)
    assert body is not None, f"docs/hooks.md has no section '## `{hook}`'"
    for arg in inspect.signature(getattr(hookspecs, hook)).parameters:
        assert f"`{arg}`" in body, f"docs/hooks.md, {hook}: argument '{arg}' is not described"
    if hook.removeprefix("introzoo_register_") in hookspecs.KINDS:
        assert "factory(" in body, f"docs/hooks.md, {hook}: how its factory is called is not described"


def test_no_documented_hook_is_stale():
    named = set(re.findall(r"introzoo_(?:register|run)_\w+", (DOCS / "hooks.md").read_text() + (DOCS / "plugins.md").read_text()))
    assert named <= set(HOOKS) | {"introzoo_register_prior"}  # the misspelling plugins.md warns about


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_and_option_is_documented(command):
    body = sections(DOCS / "cli.md").get(f"`introzoo {command}`")
    assert body is not None, f"docs/cli.md has no section '## `introzoo {command}`'"
    for param in CLI.commands[command].params:
        if param.param_type_name == "argument":
            assert f"`{param.name.upper()}`" in body, f"docs/cli.md, {command}: argument {param.name.upper()}"
        else:
            for opt in param.opts + param.secondary_opts:
                assert f"`{opt}" in body, f"docs/cli.md, introzoo {command}: option {opt} is not documented"
    assert examples(body), f"docs/cli.md, introzoo {command}: no example"


def test_global_options_are_documented():
    body = sections(DOCS / "cli.md")["Global options"]
    for param in CLI.params:
        for opt in param.opts:
            assert f"`{opt}`" in body, f"docs/cli.md: global option {opt} is not documented"


def test_no_documented_command_is_stale():
    documented = {m for m in re.findall(r"^## `introzoo (\S+)`", (DOCS / "cli.md").read_text(), flags=re.M)}
    assert documented == set(COMMANDS)


DOC_FILES = sorted(DOCS.glob("*.md")) + [ROOT / "README.md", ROOT / "CONTRIBUTING.md",
                                          ROOT / "plugins" / "README.md", ROOT / "plugins" / "introzoo-example" / "README.md"]


@pytest.mark.parametrize("path", DOC_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_examples_in_the_docs_parse(path):
    for line in examples(path.read_text()):
        try:
            parse(line)
        except Exception as exc:
            pytest.fail(f"{path.relative_to(ROOT)}: '{line}' does not parse: {exc}")


@pytest.mark.parametrize("command", [None] + COMMANDS)
def test_help_shows_a_working_example(command, capsys):
    assert main([command, "--help"] if command else ["--help"]) == 0
    assert f"introzoo {command or 'run'}" in capsys.readouterr().out, f"'introzoo {command or ''} --help' shows no example"
    cmd = CLI.commands[command] if command else CLI
    source = f"{cmd.help or ''}\n{cmd.epilog or ''}"  # the text --help shows, before it is wrapped
    lines = [m.strip() for m in re.findall(r"^(?:\s*|.*: )(introzoo .*)$", source, flags=re.M)]
    assert lines, f"introzoo {command or ''}: no example line in its help or epilog"
    for line in lines:
        parse(line)


def test_every_benchmark_file_is_in_the_reproduction_guide():
    guide = (DOCS / "reproduce.md").read_text()
    for path in sorted((ROOT / "benchmarks").glob("*.toml")):
        assert f"benchmarks/{path.name}" in guide, f"docs/reproduce.md does not mention benchmarks/{path.name}"


def test_every_doc_is_linked_from_the_readme():
    readme = (ROOT / "README.md").read_text()
    for path in sorted(DOCS.glob("*.md")):
        assert f"docs/{path.name}" in readme, f"README.md does not point to docs/{path.name}"


# -- the members of the base classes a plugin subclasses, as tabled in hooks.md ------------------------

def documented_members(cls_name: str) -> set[str]:
    """The names in the first column of hooks.md's table headed ``| `cls_name` member |``."""
    text = (DOCS / "hooks.md").read_text()
    m = re.search(rf"^\| `{re.escape(cls_name)}` member \|.*\n\|[-| ]+\|\n((?:\|.*\n?)+)", text, flags=re.M)
    assert m, f"docs/hooks.md has no table headed '| `{cls_name}` member |'"
    names = set()
    for row in m.group(1).splitlines():
        first = re.split(r"(?<!\\)\|", row)[1]
        names |= {re.match(r"\w+", code).group(0) for code in re.findall(r"`([^`]+)`", first)}
    return names


def public(names) -> set[str]:
    return {n for n in names if not n.startswith("_")}


def members(cls_name: str) -> set[str]:
    """The public attributes of the class behind a table: its own and its instances' (what a subclass
    sees), less those inherited from ``object`` / ``nn.Module`` / ``typing.Protocol``."""
    from typing import Protocol

    import torch
    from torch import nn

    from introzoo.data.base import Dataset, Factors, Images
    from introzoo.metrics.base import EvalContext, Metric
    from introzoo.model import VAE
    from introzoo.objectives.base import Objective
    from introzoo.objectives.soft import SoftConfig, SoftIntroVAE
    from introzoo.priors.base import Prior
    from introzoo.priors.gaussian import StandardGaussian
    from introzoo.testing import tiny_model

    module_names = public(dir(nn.Module)) | public(vars(nn.Module()))
    model = tiny_model(StandardGaussian(2))
    if cls_name == "Objective":
        return public(dir(Objective)) | public(vars(Objective(SoftConfig(), model)))
    if cls_name == "SoftIntroVAE":  # the parts it adds to Objective
        return public(vars(SoftIntroVAE))
    if cls_name == "VAE":
        return ((public(dir(VAE)) | public(vars(model)) | set(model._modules)) - module_names) | public(vars(VAE))
    if cls_name == "Prior":
        return ((public(dir(Prior)) | public(vars(Prior(2)))) - module_names) | public(vars(Prior))
    if cls_name == "Dataset":
        return public(dir(Dataset)) | public(vars(Dataset()))
    if cls_name in ("Images", "Factors"):
        cls = {"Images": Images, "Factors": Factors}[cls_name]
        return (public(dir(cls)) | set(cls.__annotations__)) - public(dir(Protocol))
    if cls_name == "Metric":
        return public(dir(Metric))
    if cls_name == "EvalContext":
        return public(dir(EvalContext)) | public(vars(EvalContext(model, Dataset(), torch.device("cpu"))))
    raise KeyError(cls_name)


TABLED = ["Objective", "SoftIntroVAE", "VAE", "Prior", "Dataset", "Images", "Factors", "Metric", "EvalContext"]


@pytest.mark.parametrize("cls_name", TABLED)
def test_hooks_tables_list_exactly_the_members_of_the_base_classes(cls_name):
    documented, actual = documented_members(cls_name), members(cls_name)
    assert not actual - documented, f"docs/hooks.md, `{cls_name}` table: undocumented {sorted(actual - documented)}"
    assert not documented - actual, f"docs/hooks.md, `{cls_name}` table: no such member {sorted(documented - actual)}"


def test_member_table_parser_sees_drift(monkeypatch):
    """The check above fails for a member added to a base class, and for one documented that is gone."""
    from introzoo.metrics.base import Metric

    monkeypatch.setattr(Metric, "threshold", 0.5, raising=False)
    assert "threshold" in members("Metric") - documented_members("Metric")
    assert {"applies_to", "why_not", "heavy"} <= documented_members("Metric")
