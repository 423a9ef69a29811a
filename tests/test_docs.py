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
    named = set(
        re.findall(r"introzoo_(?:register|run)_\w+", (DOCS / "hooks.md").read_text() + (DOCS / "plugins.md").read_text())
    )
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


DOC_FILES = sorted(DOCS.glob("*.md")) + [
    ROOT / "README.md",
    ROOT / "CONTRIBUTING.md",
    ROOT / "plugins" / "README.md",
    ROOT / "plugins" / "introzoo-example" / "README.md",
]


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

    from introzoo.backbones.base import ConvNet
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
    if cls_name in ("Images", "Factors", "ConvNet"):
        cls = {"Images": Images, "Factors": Factors, "ConvNet": ConvNet}[cls_name]
        return (public(dir(cls)) | set(cls.__annotations__)) - public(dir(Protocol))
    if cls_name == "Metric":
        return public(dir(Metric))
    if cls_name == "EvalContext":
        return public(dir(EvalContext)) | public(vars(EvalContext(model, Dataset(), torch.device("cpu"))))
    raise KeyError(cls_name)


TABLED = ["Objective", "SoftIntroVAE", "VAE", "Prior", "Dataset", "Images", "Factors", "Metric", "EvalContext", "ConvNet"]


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


# -- references a reader of the repository can follow -----------------------------------------------

#: what a reader of the code and docs reads; none of it may cite a document outside the repository
READER_FILES = (
    sorted((ROOT / "introzoo").rglob("*.py"))
    + sorted(DOCS.glob("*.md"))
    + [ROOT / "README.md", ROOT / "CONTRIBUTING.md"]
    + sorted((ROOT / "benchmarks").glob("*.py"))
)
#: the specification the code was first written from lives outside the repository
OUTSIDE = re.compile(r"SPEC §|SPEC\.md")
#: a section of a page of the docs, as docstrings and comments cite it: docs/conventions.md, "Shared terms"
DOC_SECTION = re.compile(r'docs/([\w.-]+\.md),\s+"([^"]+)"')


def doc_sections(text: str) -> list[tuple[str, str]]:
    """The ``(page, heading)`` pairs cited in ``text``; a heading wrapped over lines (a docstring, a
    comment) is read with its line breaks, indentation and comment marks as single spaces."""
    return [(page, re.sub(r"\s*\n\s*(?:#\s*)?", " ", heading).strip()) for page, heading in DOC_SECTION.findall(text)]


def headings(page: str) -> set[str]:
    path = DOCS / page
    return set(re.findall(r"^#{1,6} (.+?)\s*$", path.read_text(), flags=re.M)) if path.is_file() else set()


def unresolved(text: str) -> list[tuple[str, str]]:
    return [(page, h) for page, h in doc_sections(text) if h not in headings(page)]


@pytest.mark.parametrize("path", READER_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_reference_to_a_document_outside_the_repository(path):
    found = [(i + 1, line.strip()) for i, line in enumerate(path.read_text().splitlines()) if OUTSIDE.search(line)]
    assert not found, f"{path.relative_to(ROOT)} cites the outside specification (cite docs/conventions.md instead): {found}"


CITING_FILES = READER_FILES + sorted((ROOT / "tests").rglob("*.py")) + sorted((ROOT / "tests").rglob("*.md"))


@pytest.mark.parametrize("path", CITING_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_cited_doc_section_exists(path):
    bad = unresolved(path.read_text())
    assert not bad, f"{path.relative_to(ROOT)} cites sections that docs/ does not have: {bad}"


def test_cited_sections_are_found_and_checked():
    """The parser sees the citations (the code has dozens), wrapped ones too, and a wrong one fails."""
    cited = [c for path in READER_FILES for c in doc_sections(path.read_text())]
    assert len(cited) > 30 and ("conventions.md", "Shared terms") in cited
    assert doc_sections('(docs/conventions.md,\n    "Where defaults\n    # come from")') == [
        ("conventions.md", "Where defaults come from")
    ]
    cite = "docs/{}, " + '"{}"'  # written so that this file cites nothing itself
    assert unresolved("see " + cite.format("conventions.md", "No such section")) == [("conventions.md", "No such section")]
    assert unresolved(cite.format("nowhere.md", "Shared terms")) == [("nowhere.md", "Shared terms")]
    assert OUTSIDE.search("as in " + "SPEC" + " §2") and OUTSIDE.search("SPEC" + ".md")


def test_every_benchmark_file_loads():
    """Each sweep file under benchmarks/ parses into a sweep (its keys, training options and published tables)."""
    from introzoo.sweeps.grid import load_sweep_file

    for path in sorted((ROOT / "benchmarks").glob("*.toml")):
        spec = load_sweep_file(path)
        assert spec.name, path
