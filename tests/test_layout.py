"""The house plan: `import funcnn` reaches the library, and arrows point one way (lab → library)."""

import ast
import importlib
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


@pytest.fixture(scope="module")
def reached_by_attribute() -> dict[str, str]:
    """name → what `funcnn.<name>.__name__` says in a fresh process after only `import
    funcnn` (one process for every name: each line is reached the same way)."""
    code = (
        "import funcnn\n"
        "for name in funcnn.__all__:\n"
        "    try:\n"
        "        print(name, getattr(funcnn, name).__name__)\n"
        "    except AttributeError as error:\n"
        "        print(name, 'AttributeError', error)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return dict(line.split(" ", 1) for line in out.stdout.splitlines())


@pytest.mark.parametrize("name", funcnn.__all__)
def test_import_funcnn_reaches_every_subpackage(reached_by_attribute, name):
    assert reached_by_attribute.get(name) == f"funcnn.{name}"


def test_import_funcnn_reaches_the_api_without_importing_the_lab():
    code = (
        "import sys, funcnn\n"
        "print(funcnn.nn.dense.__name__, funcnn.optim.adamw.__name__,"
        " funcnn.losses.cross_entropy.__name__)\n"
        "print(sorted(m for m in sys.modules if m.startswith('funcnn.lab')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split("\n")[:2] == ["dense adamw cross_entropy", "[]"]


# ------------------------------------------------ the packages and the arrows between them
#
# Inside the library the arrows point one way:
#     lab → verify → optim, reference          (only verify pairs the optimizers with the
#                                                reference; optim never imports reference)
#     lab → train → scale → nn                 (fit takes a mesh from scale; nothing in scale
#                                                imports train, optim or verify)
# and no function keeps behaviour in module-level state: what it depends on is an argument.

PACKAGE = ROOT / "funcnn"


def module_name(path: pathlib.Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}
# Re-export modules kept for one version at the old paths; each says where its names went.
OLD_PATHS = {
    "funcnn.checkpoint": "funcnn.train.checkpoint",
    "funcnn.objectives": "funcnn.train.objectives",
    "funcnn.resume": "funcnn.train.resume",
    "funcnn.parallel": "funcnn.scale",
    "funcnn.sharding": "funcnn.scale.sharding",
    "funcnn.distributed": "funcnn.scale.distributed",
    "funcnn.launch": "funcnn.scale.launch",
    "funcnn.fusion": "funcnn.scale.xla",
    "funcnn.precision": "funcnn.scale.precision",
    "funcnn.optim.configs": "funcnn.verify.registry",
}


def funcnn_imports(name: str) -> set[str]:
    """The funcnn modules `name` imports directly, each resolved to a module file we have."""
    found = set()
    for imported in imported_modules(MODULES[name]):
        while imported and imported not in MODULES:
            imported = imported.rpartition(".")[0]
        if imported.startswith("funcnn"):
            found.add(imported)
    return found


def reachable(name: str) -> set[str]:
    """Every funcnn module importing `name` loads, the parent packages' __init__ included —
    except the top-level `funcnn/__init__`, which loads everything by design."""
    seen, todo = set(), [name]
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.add(current)
        parents = [".".join(current.split(".")[:i]) for i in range(2, current.count(".") + 1)]
        todo += [m for m in (*funcnn_imports(current), *parents) if m != "funcnn"]
    return seen - {name}


def in_package(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def test_the_packages_exist_with_their_modules():
    for name in (
        "funcnn.train.state", "funcnn.train.data", "funcnn.train.loop", "funcnn.train.evaluation",
        "funcnn.train.checkpoint", "funcnn.train.resume", "funcnn.train.objectives",
        "funcnn.scale.mesh", "funcnn.scale.placement", "funcnn.scale.sharding",
        "funcnn.scale.distributed", "funcnn.scale.launch", "funcnn.scale.xla",
        "funcnn.verify.registry", "funcnn.verify.runner",
    ):  # fmt: skip
        assert name in MODULES, name
    assert not (PACKAGE / "train.py").exists()  # the package replaced the module


@pytest.mark.parametrize("name", sorted(m for m in MODULES if in_package(m, "funcnn.optim")))
def test_optim_never_reaches_the_reference_or_verify(name):
    if name == "funcnn.optim.configs":
        pytest.skip("the re-export kept at the old path; it names funcnn.verify on purpose")
    forbidden = ("funcnn.reference", "funcnn.verify")
    bad = sorted(m for m in reachable(name) if any(in_package(m, p) for p in forbidden))
    assert bad == [], f"{name} loads {bad}"


@pytest.mark.parametrize("name", sorted(m for m in MODULES if in_package(m, "funcnn.scale")))
def test_scale_never_reaches_train_optim_or_verify(name):
    bad = sorted(
        m for m in reachable(name)
        if any(in_package(m, p) for p in ("funcnn.train", "funcnn.optim", "funcnn.verify"))
    )  # fmt: skip
    assert bad == [], f"{name} loads {bad}"


def test_train_uses_scale_and_verify_pairs_optim_with_reference():
    # The arrows are real, not vacuous: the allowed direction is taken.
    assert "funcnn.scale.placement" in reachable("funcnn.train.loop")
    assert {"funcnn.optim", "funcnn.reference.optim"} <= reachable("funcnn.verify.registry")


def test_the_reachability_check_can_fail():
    assert "funcnn.train.checkpoint" in reachable("funcnn.train.coordinated")
    assert "funcnn.scale.distributed" in reachable("funcnn.train.coordinated")


def mutated_module_state(source: str) -> list[str]:
    """Module-level containers that a function body mutates (`.append`, `[k] =`, …) or rebinds
    (`global`): state that would change what functions do from one call to the next."""
    tree = ast.parse(source)
    containers = set()
    for node in tree.body:
        if isinstance(node, ast.Assign | ast.AnnAssign):
            value = node.value
            mutable = isinstance(value, ast.List | ast.Dict | ast.Set) or (
                isinstance(value, ast.Call)
                and isinstance(value.func, ast.Name)
                and value.func.id in ("list", "dict", "set", "defaultdict", "deque")
            )
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if mutable:
                containers |= {t.id for t in targets if isinstance(t, ast.Name)}
    methods = {"append", "pop", "extend", "insert", "clear", "update", "add", "remove",
               "setdefault", "popitem", "appendleft", "discard"}  # fmt: skip
    found = []
    for fn in ast.walk(tree):
        if not isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        for node in ast.walk(fn):
            if isinstance(node, ast.Global):
                found += [f"global {n}" for n in node.names]
            elif (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and isinstance(node.func.value, ast.Name)
                and node.func.value.id in containers
                and node.func.attr in methods
            ):
                found.append(f"{node.func.value.id}.{node.func.attr}")
            elif isinstance(node, ast.Subscript | ast.Attribute) and isinstance(
                node.ctx, ast.Store
            ):
                base = node.value
                if isinstance(base, ast.Name) and base.id in containers:
                    found.append(f"{base.id}[…] =")
    return sorted(set(found))


@pytest.mark.parametrize("path", LIBRARY_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_function_keeps_behaviour_in_module_level_state(path):
    assert mutated_module_state(path.read_text()) == []


def test_the_module_state_detector_sees_the_removed_mesh_stack():
    # What funcnn.parallel had: data_parallel pushed onto a module-level list that fit read.
    old = (
        "_ACTIVE_MESHES = []\n"
        "def data_parallel(mesh):\n    _ACTIVE_MESHES.append(mesh)\n"
        "def reset():\n    global _COUNT\n"
    )
    assert mutated_module_state(old) == ["_ACTIVE_MESHES.append", "global _COUNT"]
    assert not hasattr(funcnn.scale, "data_parallel") and not hasattr(funcnn.scale, "active_mesh")


@pytest.mark.parametrize("old", sorted(OLD_PATHS))
def test_each_old_path_re_exports_the_moved_names_and_says_where(old):
    module = importlib.import_module(old)
    new = OLD_PATHS[old]
    assert module.__doc__.startswith("Moved:") and f"`{new}" in module.__doc__
    assert module.__all__
    assert [n for n in module.__all__ if not hasattr(module, n)] == []
    moved = importlib.import_module(new)
    shared = [n for n in module.__all__ if hasattr(moved, n)]
    assert shared, f"{old} re-exports nothing from {new}"
    assert all(getattr(moved, n) is getattr(module, n) for n in shared)  # the same objects


def test_the_old_launcher_path_still_runs():
    out = subprocess.run(
        [sys.executable, "-m", "funcnn.launch", "--help"], capture_output=True, text=True
    )
    assert out.returncode == 0 and "--processes" in out.stdout
