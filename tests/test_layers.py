"""Layers: a package imports nothing of audiostyle but itself and the layers below it, and its modules no circle.

``methods/``: ``audiostyle.methods``, ``audio``, ``data``, ``metrics`` and ``errors``. Not ``fsio`` (a method reads
files only through the dataset and its trial context; ``data`` uses ``fsio`` itself), not the store, the sweep
or the analysis above it. ``data/``: ``audiostyle.data``, ``audio``, ``fsio`` and ``errors``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import audiostyle

METHODS = Path(audiostyle.__file__).parent / "methods"
ALLOWED = ("methods", "audio", "data", "metrics", "errors")
DATA = Path(audiostyle.__file__).parent / "data"
DATA_ALLOWED = ("data", "audio", "fsio", "errors")


def audiostyle_imports(path: Path) -> list[tuple[int, str]]:
    """``(line, module)`` of every ``audiostyle.*`` import in ``path``, nested and lazy ones included.

    ``from audiostyle import x`` counts as ``audiostyle.x``.
    """
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == "audiostyle":
                found += [(node.lineno, f"audiostyle.{alias.name}") for alias in node.names]
            else:
                found.append((node.lineno, node.module))
    return [(line, name) for line, name in found if name.split(".")[0] == "audiostyle"]


def layer_violations(path: Path, allowed: tuple[str, ...] = ALLOWED) -> list[str]:
    """``file:line module`` for each import of ``path`` outside ``allowed`` (default :data:`ALLOWED`)."""
    return [f"{path.name}:{line} {name}" for line, name in audiostyle_imports(path)
            if name == "audiostyle" or name.split(".")[1] not in allowed]


def package_graph(folder: Path) -> dict[str, set[str]]:
    """``{module: modules of the same package it imports}`` over ``folder/*.py``, nested and lazy imports included.

    The package is ``audiostyle.<folder name>``; its ``__init__`` is a module like the others, and
    ``from audiostyle.<package> import x`` counts as an import of submodule ``x`` when there is one, else of
    ``__init__``.
    """
    package = f"audiostyle.{folder.name}"
    modules = {p.stem for p in folder.glob("*.py")}
    graph: dict[str, set[str]] = {}
    for module in sorted(modules):
        path = folder / f"{module}.py"
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module == package:
                names = [f"{package}.{alias.name}" if alias.name in modules else package for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                if name == package:
                    found.add("__init__")
                elif name.startswith(package + "."):
                    found.add(name.split(".")[2])
        graph[module] = found - {module}
    return graph


def import_cycle(graph: dict[str, set[str]]) -> list[str]:
    """One circle of ``graph`` as ``[a, b, ..., a]``, or [] when it has none."""
    done: set[str] = set()

    def visit(module: str, path: list[str]) -> list[str]:
        if module in path:
            return path[path.index(module):] + [module]
        if module in done:
            return []
        for target in sorted(graph.get(module, ())):
            cycle = visit(target, path + [module])
            if cycle:
                return cycle
        done.add(module)
        return []

    for module in sorted(graph):
        cycle = visit(module, [])
        if cycle:
            return cycle
    return []


@pytest.mark.parametrize("path", sorted(METHODS.glob("*.py")), ids=lambda p: p.name)
def test_method_modules_import_only_lower_layers(path: Path) -> None:
    assert not layer_violations(path), "move the import below the methods or the code into methods/"


@pytest.mark.parametrize("path", sorted(DATA.glob("*.py")), ids=lambda p: p.name)
def test_data_modules_import_only_lower_layers(path: Path) -> None:
    assert not layer_violations(path, DATA_ALLOWED), "move the import below data/ or the code out of data/"


@pytest.mark.parametrize("folder", [METHODS, DATA], ids=lambda p: p.name)
def test_package_modules_import_no_circle(folder: Path) -> None:
    assert not import_cycle(package_graph(folder)), f"a lower module of {folder.name}/ imports a higher one: move it down"


def test_circle_finder_catches_lazy_circles(tmp_path: Path) -> None:
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "__init__.py").write_text("from audiostyle.data.a import f\n")
    (folder / "a.py").write_text("def f():\n    from audiostyle.data import b\n")
    (folder / "b.py").write_text("import audiostyle.data.c\n")
    (folder / "c.py").write_text("from audiostyle.data import f\n")
    graph = package_graph(folder)
    assert graph == {"__init__": {"a"}, "a": {"b"}, "b": {"c"}, "c": {"__init__"}}
    assert import_cycle(graph) == ["__init__", "a", "b", "c", "__init__"]
    (folder / "c.py").write_text("import numpy\n")
    assert import_cycle(package_graph(folder)) == []


def test_checker_catches_upward_and_lazy_imports(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("from audiostyle import metrics, store\nimport audiostyle.fsio\n"
                   "def f():\n    from audiostyle.sweep._keys import STEP\n    import audiostyle\n")
    assert layer_violations(bad) == ["bad.py:1 audiostyle.store", "bad.py:2 audiostyle.fsio",
                                     "bad.py:4 audiostyle.sweep._keys", "bad.py:5 audiostyle"]
