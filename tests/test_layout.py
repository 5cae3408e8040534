"""The house plan: `import funcnn` reaches the library, and arrows point one way (lab → library)."""

import ast
import pathlib
import subprocess
import sys

import pytest

import funcnn

ROOT = pathlib.Path(__file__).resolve().parents[1]
LIBRARY_FILES = sorted(
    p for p in (ROOT / "funcnn").rglob("*.py") if "lab" not in p.relative_to(ROOT / "funcnn").parts
)


def imported_modules(path: pathlib.Path) -> set[str]:
    """Every module named by an import statement in `path` (relative imports resolved)."""
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def test_library_files_are_found():
    relative = {str(p.relative_to(ROOT)) for p in LIBRARY_FILES}
    assert "funcnn/nn/dense.py" in relative and "funcnn/optim/aliases.py" in relative
    assert not any("/lab/" in name for name in relative)


@pytest.mark.parametrize("path", LIBRARY_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_library_never_imports_the_lab_scripts_or_benchmarks(path):
    forbidden = sorted(
        name
        for name in imported_modules(path)
        if name == "funcnn.lab" or name.startswith(("funcnn.lab.", "scripts", "benchmarks"))
    )
    assert forbidden == [], f"{path.relative_to(ROOT)} imports {forbidden}"


def test_detector_sees_a_lab_import(tmp_path):
    # The check above must be able to fail: a file that imports the lab is caught.
    bad = tmp_path / "bad.py"
    bad.write_text("from funcnn.lab import recipes\nimport jax._src.xla_bridge\n")
    assert {"funcnn.lab", "funcnn.lab.recipes", "jax._src.xla_bridge"} <= imported_modules(bad)


@pytest.mark.parametrize("name", funcnn.__all__)
def test_import_funcnn_reaches_every_subpackage(name):
    code = f"import funcnn; print(funcnn.{name}.__name__)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == f"funcnn.{name}"


def test_import_funcnn_reaches_the_api_without_importing_the_lab():
    code = (
        "import sys, funcnn\n"
        "print(funcnn.nn.dense.__name__, funcnn.optim.adamw.__name__,"
        " funcnn.losses.cross_entropy.__name__)\n"
        "print(sorted(m for m in sys.modules if m.startswith('funcnn.lab')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split("\n")[:2] == ["dense adamw cross_entropy", "[]"]
