"""Every `>>>` example in funcnn's docstrings runs and prints what it claims.

Modules are found by scanning the source for `>>>` (so optional-dependency modules without
examples are never imported); each is run with `doctest.testmod`.
"""

import doctest
import importlib
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "funcnn"
FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def _modules_with_examples() -> list[str]:
    names = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if ">>>" in path.read_text(encoding="utf-8"):
            parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
            names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


MODULES = _modules_with_examples()


def test_the_most_read_functions_have_examples():
    for name in ("funcnn.optim.aliases", "funcnn.optim.schedules", "funcnn.losses",
                 "funcnn.nn.dense", "funcnn.params"):  # fmt: skip
        assert name in MODULES, name


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=FLAGS, verbose=False, report=True)
    assert result.attempted > 0, f"{name}: every example is skipped"
    assert result.failed == 0, f"{name}: {result.failed} of {result.attempted} examples failed"
