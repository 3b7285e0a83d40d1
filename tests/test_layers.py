"""The methods' layer: a method imports nothing of audiostyle outside ``methods/`` but the layers below it.

Allowed: ``audiostyle.methods``, ``audio``, ``data``, ``metrics`` and ``errors``. Not ``fsio`` (a method reads
files only through the dataset and its trial context; ``data`` uses ``fsio`` itself), not the store, the sweep
or the analysis above it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import audiostyle

METHODS = Path(audiostyle.__file__).parent / "methods"
ALLOWED = ("methods", "audio", "data", "metrics", "errors")


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


def layer_violations(path: Path) -> list[str]:
    """``file:line module`` for each import of ``path`` outside :data:`ALLOWED`."""
    return [f"{path.name}:{line} {name}" for line, name in audiostyle_imports(path)
            if name == "audiostyle" or name.split(".")[1] not in ALLOWED]


@pytest.mark.parametrize("path", sorted(METHODS.glob("*.py")), ids=lambda p: p.name)
def test_method_modules_import_only_lower_layers(path: Path) -> None:
    assert not layer_violations(path), "move the import below the methods or the code into methods/"


def test_checker_catches_upward_and_lazy_imports(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("from audiostyle import metrics, store\nimport audiostyle.fsio\n"
                   "def f():\n    from audiostyle.sweep._keys import STEP\n    import audiostyle\n")
    assert layer_violations(bad) == ["bad.py:1 audiostyle.store", "bad.py:2 audiostyle.fsio",
                                     "bad.py:4 audiostyle.sweep._keys", "bad.py:5 audiostyle"]
