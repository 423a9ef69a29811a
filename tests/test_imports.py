"""The layout's rules, as code: introzoo's modules import one another without cycles (imports inside functions
count too), nothing imports the command line but the command line itself, no two flat modules are named
with the same words, and the deprecated old paths are aliases that nothing inside introzoo uses."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "introzoo"
SHIM_MARK = "sys.modules[__name__] = import_module("

#: cycles that stay, each with the reason it cannot be broken cheaply (frozenset of modules -> reason)
KNOWN_CYCLES: dict[frozenset[str], str] = {}


def module_files(root: Path = PACKAGE) -> dict[str, Path]:
    """Every module of the package under ``root``, by dotted name (a package by its ``__init__.py``)."""
    out = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def is_shim(path: Path) -> bool:
    return SHIM_MARK in path.read_text()


def _import_nodes(tree: ast.AST):
    """Every import statement, at module level or inside functions, but not under ``if TYPE_CHECKING:``
    (annotations only: never run)."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            yield from (n for child in node.orelse for n in _import_nodes(ast.Module([child], [])))
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        yield from _import_nodes(node)


def imports_of(name: str, path: Path, modules: set[str]) -> set[str]:
    """The modules of the package that ``name`` imports, at module level or inside functions."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in _import_nodes(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                origin = ".".join(base + ([node.module] if node.module else []))
            else:
                origin = node.module or ""
            targets = [f"{origin}.{a.name}" if f"{origin}.{a.name}" in modules else origin for a in node.names]
        else:
            continue
        for target in targets:
            while target and target not in modules:  # import a.b.c: the deepest module of the package named
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def import_graph(root: Path = PACKAGE) -> dict[str, set[str]]:
    files = module_files(root)
    return {name: imports_of(name, path, set(files)) for name, path in files.items()}


def cycles(graph: dict[str, set[str]]) -> list[frozenset[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[frozenset[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.add(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(frozenset(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def word_order_pairs(names: list[str]) -> list[tuple[str, str]]:
    """Pairs of names made of the same words in another order (``cli_sweep`` / ``sweeps_cli``; a plural counts
    as its singular)."""

    def words(n: str) -> tuple[str, ...]:
        return tuple(sorted(w[:-1] if w.endswith("s") and len(w) > 3 else w for w in n.strip("_").split("_")))

    seen: dict[tuple[str, ...], str] = {}
    pairs = []
    for n in sorted(names):
        key = words(n)
        if key in seen:
            pairs.append((seen[key], n))
        else:
            seen[key] = n
    return pairs


def test_no_import_cycles():
    found = {c: sorted(c) for c in cycles(import_graph())}
    unexpected = [members for c, members in found.items() if c not in KNOWN_CYCLES]
    assert not unexpected, f"import cycles: {unexpected}"
    gone = [sorted(c) for c in KNOWN_CYCLES if c not in found]
    assert not gone, f"known cycles that no longer exist (remove them from KNOWN_CYCLES): {gone}"


def test_the_cycle_check_finds_a_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": {"e"}}
    assert cycles(graph) == [frozenset({"a", "b", "c"})]


def test_the_cycle_check_reads_function_level_and_relative_imports(tmp_path):
    pkg = tmp_path / "fake"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from .sub import b\n")
    (pkg / "sub" / "b.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .. import c\ndef f():\n    from ..a import x\n"
    )
    (pkg / "c.py").write_text("")
    graph = import_graph(pkg)
    assert graph["fake.a"] == {"fake.sub.b"} and graph["fake.sub.b"] == {"fake.a"}
    assert cycles(graph) == [frozenset({"fake.a", "fake.sub.b"})]


def test_nothing_imports_the_command_line():
    graph = import_graph()
    allowed = {"introzoo.__main__"}  # ``python -m introzoo`` is the command line
    bad = sorted(
        (m, t)
        for m, ts in graph.items()
        for t in ts
        if (t == "introzoo.cli" or t.startswith("introzoo.cli.")) and not m.startswith("introzoo.cli") and m not in allowed
    )
    assert not bad, f"modules outside introzoo.cli that import it: {bad}"


def test_nothing_imports_a_deprecated_path():
    files = module_files()
    shims = {m for m, p in files.items() if is_shim(p)}
    assert shims, "the deprecated aliases are recognised by their mark"
    graph = import_graph()
    bad = sorted((m, t) for m, ts in graph.items() for t in ts & shims if m not in shims)
    assert not bad, f"imports of deprecated paths inside introzoo: {bad}"


def test_no_flat_modules_named_with_the_same_words():
    files = module_files()
    top = [m.rpartition(".")[2] for m, p in files.items() if m.count(".") == 1 and not is_shim(p)]
    assert not word_order_pairs(top), word_order_pairs(top)
    assert word_order_pairs(["cli_sweep", "sweeps_cli", "runs"]) == [("cli_sweep", "sweeps_cli")]


def test_the_old_paths_warn_and_are_the_new_modules():
    for path in sorted(p for m, p in module_files().items() if is_shim(p)):
        old = f"introzoo.{path.stem}"
        new = path.read_text().split(SHIM_MARK)[1].split('"')[1]
        sys.modules.pop(old, None)
        with pytest.warns(DeprecationWarning, match=new.replace(".", r"\.")):
            module = importlib.import_module(old)
        assert module is importlib.import_module(new)


def test_the_facade_module_does_not_warn():
    import introzoo

    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        from introzoo.train import build, load, train  # noqa: F401

        assert callable(introzoo.train) and train is importlib.import_module("introzoo.training.loop").train
    with pytest.warns(DeprecationWarning, match="introzoo.training.loop.pick_device"):
        introzoo.train.pick_device  # noqa: B018


def test_the_cli_starts_without_torch():
    """``introzoo --help``, bad input and every command's start import no torch (seconds per process with a
    CUDA build): the commands import what they need when they run."""
    r = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, introzoo.cli; print(sorted(m for m in sys.modules "
            "if m.split('.')[0] in ('torch', 'torchvision', 'sklearn', 'scipy')))",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert r.stdout.strip() == "[]"


def test_import_and_help_without_deprecation_warnings():
    for args in (
        ["-c", "import introzoo, introzoo.api, introzoo.train, introzoo.cli"],
        ["-m", "introzoo.cli", "--help"],
        ["-m", "introzoo", "--help"],
    ):
        r = subprocess.run([sys.executable, "-W", "error::DeprecationWarning", *args], capture_output=True, text=True)
        assert r.returncode == 0, (args, r.stderr[-2000:])
