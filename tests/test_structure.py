"""The codebase's shape, checked: no import cycle (function-level imports included), no module
over ~600 lines, no function over 80 lines in ``simsock/``, and ruff clean with the project's
configuration.

These are the done-when limits of issue 14. Each check reads the source tree, not the running
interpreter, so a function-level import counts as an edge just like a top-level one.
"""

from __future__ import annotations

import ast
import pathlib
import subprocess
import sys

import networkx as nx

ROOT = pathlib.Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "simsock"
MAX_MODULE_LINES = 620     # "about 600": a module may run a little over while it stays one topic
MAX_FUNCTION_LINES = 80


def _module_name(path: pathlib.Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _sources() -> dict[str, tuple[pathlib.Path, ast.Module]]:
    return {_module_name(p): (p, ast.parse(p.read_text(), str(p))) for p in sorted(PACKAGE.rglob("*.py"))}


def _imported(module: str, is_package: bool, node: ast.AST, known: set[str]) -> list[str]:
    """The simsock modules one import statement names (``from x import y`` names x.y when y is a
    module, else x)."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names if a.name in known]
    if not isinstance(node, ast.ImportFrom):
        return []
    if node.level:
        base = module.split(".") if is_package else module.split(".")[:-1]
        base = base[: len(base) - (node.level - 1)]
        target = ".".join(base + ([node.module] if node.module else []))
    else:
        target = node.module or ""
    out = []
    for alias in node.names:
        sub = f"{target}.{alias.name}"
        if sub in known:
            out.append(sub)
        elif target in known:
            out.append(target)
    return out


def import_graph(sources=None) -> nx.DiGraph:
    sources = sources if sources is not None else _sources()
    known = set(sources)
    graph = nx.DiGraph()
    graph.add_nodes_from(known)
    for module, (path, tree) in sources.items():
        is_package = path.name == "__init__.py"
        for node in ast.walk(tree):
            for target in _imported(module, is_package, node, known):
                if target != module and not module.startswith(target + "."):
                    graph.add_edge(module, target)
    return graph


def _cycles(graph: nx.DiGraph) -> list[list[str]]:
    # A package's __init__ re-exporting its submodules is not a cycle a reader trips over:
    # drop edges from a package to its own submodules.
    g = graph.copy()
    g.remove_edges_from([(a, b) for a, b in graph.edges if b.startswith(a + ".")])
    return [sorted(c) for c in nx.strongly_connected_components(g) if len(c) > 1]


def test_no_import_cycles():
    assert _cycles(import_graph()) == []


def test_the_cycle_check_sees_a_function_level_import():
    tree_a = ast.parse("def f():\n    from simsock.b import x\n")
    tree_b = ast.parse("import simsock.a\n")
    sources = {"simsock.a": (PACKAGE / "a.py", tree_a), "simsock.b": (PACKAGE / "b.py", tree_b)}
    assert _cycles(import_graph(sources)) == [["simsock.a", "simsock.b"]]


def test_no_module_is_over_about_600_lines():
    long = {str(p.relative_to(ROOT)): n for p in PACKAGE.rglob("*.py")
            if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES}
    assert long == {}


def long_functions(sources=None) -> dict[str, int]:
    sources = sources if sources is not None else _sources()
    out = {}
    for module, (_path, tree) in sources.items():
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    out[f"{module}:{node.name}:{node.lineno}"] = lines
    return out


def test_no_function_is_over_80_lines():
    assert long_functions() == {}


def test_the_function_check_counts_lines():
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_FUNCTION_LINES))
    tree = ast.parse(f"def f():\n{body}\n")
    assert long_functions({"simsock.x": (PACKAGE / "x.py", tree)}) == {"simsock.x:f:1": MAX_FUNCTION_LINES + 1}


def _ruff(*paths: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "--quiet",
                           "--config", str(ROOT / "pyproject.toml"), *paths],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_ruff_is_clean():
    paths = [p for p in ("simsock", "models", "experiments", "benchmarks", "tests") if (ROOT / p).is_dir()]
    result = _ruff(*paths)
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_sees_an_unused_import(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("import os\n")
    result = _ruff(str(bad))
    assert result.returncode != 0 and "F401" in result.stdout
