"""The seams DEVELOPERS.md promises, checked on the source: short functions, no import
cycles, no target named in the flow, behaviour chosen by the op table and lowering
tables rather than by chains of `kind ==` tests."""
from __future__ import annotations

import ast
from pathlib import Path

import networkx as nx
import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = {"snncc": ROOT / "snncc", "snncc.targets": ROOT / "targets", "snncc.runtime": ROOT / "runtime"}
MAX_FUNCTION_LINES = 80


def _modules() -> dict[str, Path]:
    out = {}
    for pkg, root in PACKAGES.items():
        for p in sorted(root.rglob("*.py")):
            rel = p.relative_to(root).with_suffix("")
            parts = [] if rel.parts == ("__init__",) else [x for x in rel.parts if x != "__init__"]
            name = ".".join([pkg, *parts])
            if name.startswith("snncc.targets") and pkg == "snncc" or "templates" in p.parts:
                continue
            out[name] = p
    return out


MODULES = _modules()


def _is_package(name: str) -> bool:
    return MODULES[name].name == "__init__.py"


def _imports(name: str, path: Path) -> set[str]:
    """Every snncc module ``name`` imports, at module level or inside functions."""
    tree = ast.parse(path.read_text())
    base = name if _is_package(name) else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            mod = node.module or ""
            if node.level:
                pkg = base
                for _ in range(node.level - 1):
                    pkg = pkg.rpartition(".")[0]
                mod = f"{pkg}.{mod}" if mod else pkg
            subs = {f"{mod}.{a.name}" for a in node.names} & set(MODULES)
            found |= subs if subs and len(subs) == len(node.names) else {mod} | subs
    return {m for m in found if m in MODULES and m != name}


def test_every_package_folder_is_installed():
    """A folder with an __init__.py that pyproject.toml does not list would be missing
    from an installed snncc (the editable install of the tests hides it)."""
    import tomllib

    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    folders = {name for name in MODULES if _is_package(name)}
    assert folders - listed == set(), "add these packages to pyproject.toml [tool.setuptools] packages"


def test_no_import_cycles():
    g = nx.DiGraph()
    for name, path in MODULES.items():
        g.add_node(name)
        for dep in _imports(name, path):
            g.add_edge(name, dep)
    cycles = [c for c in nx.simple_cycles(g) if len(c) > 1]
    assert not cycles, f"import cycles: {cycles[:5]}"


def test_functions_are_short():
    long = []
    for name, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = node.end_lineno - node.lineno + 1
                if n > MAX_FUNCTION_LINES:
                    long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({n} lines)")
    assert not long, long


def _strings(path: Path) -> set[str]:
    """String constants of a module, docstrings excluded."""
    tree = ast.parse(path.read_text())
    docs = {id(n.body[0].value) for n in ast.walk(tree)
            if isinstance(n, (ast.Module, ast.FunctionDef, ast.ClassDef)) and n.body
            and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)}
    return {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)
            and id(n) not in docs}


@pytest.mark.parametrize("module", ["snncc.compiler", "snncc.cli"])
def test_the_flow_names_no_target(module):
    from snncc.targets import TARGETS

    named = sorted(t for t in TARGETS if any(s == t or f'"{t}"' in s for s in _strings(MODULES[module])))
    assert not named, f"{module} names targets {named}: that belongs to the target's package"


def _kind_chains(path: Path) -> list[int]:
    """Lines of if/elif chains (two or more branches) that test ``.kind`` against names."""
    tree = ast.parse(path.read_text())
    lines = []

    def tests_kind(test) -> bool:
        return any(isinstance(n, ast.Attribute) and n.attr == "kind" for n in ast.walk(test)) and any(
            isinstance(n, ast.Compare) for n in ast.walk(test))

    for node in ast.walk(tree):
        if isinstance(node, ast.If) and tests_kind(node.test) and node.orelse and len(node.orelse) == 1 \
                and isinstance(node.orelse[0], ast.If) and tests_kind(node.orelse[0].test):
            lines.append(node.lineno)
    return lines


def test_no_kind_dispatch_chains_outside_the_op_table():
    """Behaviour per kind lives in snncc/ops (the op table) and in the emitters' lowering
    tables; elsewhere a node is asked its role, or looked up in a table."""
    chains = {str(p.relative_to(ROOT)): _kind_chains(p) for n, p in MODULES.items()
              if not n.startswith("snncc.ops")}
    assert not {k: v for k, v in chains.items() if v}, chains


def test_every_node_kind_has_an_op():
    from snncc.ir.nodes import KINDS
    from snncc.ops import OPS

    assert sorted(KINDS) == sorted(OPS)
