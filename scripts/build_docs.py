"""Build the API reference from the docstrings with pdoc (the `docs` extra).

    pip install -e ".[docs]"
    python scripts/build_docs.py [--out docs/api]      # then open docs/api/index.html

Every public module of funcnn gets a page — the math at the top (activations, losses, nn,
optim, reference, …) and the packages `train`, `scale`, `verify` and `lab` — and each page
lists the names in that module's `__all__`. The build is warning-free: it prints how many
warnings pdoc raised (0 expected) and exits 1 if there were any.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import pkgutil
import sys
import warnings
from pathlib import Path
from types import ModuleType

import pdoc
import pdoc.extract

import funcnn
from funcnn.lab import cli


def public_modules() -> list[str]:
    """Names of every public funcnn module: the package and each non-underscore submodule."""
    names = ["funcnn"]
    for info in pkgutil.walk_packages(funcnn.__path__, "funcnn."):
        if not any(part.startswith("_") for part in info.name.split(".")):
            importlib.import_module(info.name)
            names.append(info.name)
    return sorted(names)


def resolve_namedtuple_annotations(module: ModuleType) -> None:
    """Let pdoc read the field types of the NamedTuples defined in `module`.

    A NamedTuple's `__new__` is generated with `__module__ = "namedtuple_<Name>"`, so pdoc
    (which resolves string annotations in `inspect.getmodule(function)`) finds no module
    and cannot see the aliases the fields name (`Params`, `Array`, …): one warning per
    field. Pointing `__module__` at the class's own module changes nothing else.
    """
    for cls in vars(module).values():
        if inspect.isclass(cls) and hasattr(cls, "_fields") and cls.__module__ == module.__name__:
            cls.__new__.__module__ = module.__name__


def root_modules() -> list[str]:
    """The fewest module specs whose pdoc walks (a package and the submodules pdoc finds
    from it) cover every public module once: "funcnn", "funcnn.lab", and each module no
    earlier spec reached."""
    roots: list[str] = []
    covered: set[str] = set()
    for name in public_modules():
        if name not in covered:
            roots.append(name)
            covered |= set(pdoc.extract.walk_specs([name]))
    return roots


def build(out: Path) -> tuple[list[Path], int]:
    """Write one HTML page per public module into `out`; return (pages, warnings raised)."""
    for name in public_modules():
        resolve_namedtuple_annotations(importlib.import_module(name))
    pdoc.render.configure(docformat="markdown", show_source=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        # pdoc documents a package's submodules itself (those its `__all__` lists), so the
        # specs are the roots only — listing submodules too adds each twice, with a warning.
        pdoc.pdoc(*root_modules(), output_directory=out)
    for warning in caught:
        print(f"warning: {warning.message}", file=sys.stderr)
    return sorted(out.rglob("*.html")), len(caught)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=cli.output_folder, default=Path("docs/api"))
    args = parser.parse_args()
    pages, count = build(args.out)
    print(f"API reference: {len(pages)} pages in {args.out}/ (open {args.out}/index.html)")
    print(f"pdoc warnings: {count}")
    return 1 if count else 0


if __name__ == "__main__":
    sys.exit(main())
