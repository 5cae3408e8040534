"""Build the API reference from the docstrings with pdoc (the `docs` extra).

    python scripts/build_docs.py [--out docs/api]      # then open docs/api/index.html

Every public module of funcnn (library and lab, no `_private` ones) gets a page; each page
lists the names in that module's `__all__`.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
from pathlib import Path

import pdoc

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


def build(out: Path) -> list[Path]:
    """Write one HTML page per public module into `out`; return the pages written."""
    pdoc.render.configure(docformat="markdown", show_source=False)
    pdoc.pdoc(*public_modules(), output_directory=out)
    return sorted(out.rglob("*.html"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=cli.output_folder, default=Path("docs/api"))
    args = parser.parse_args()
    pages = build(args.out)
    print(f"API reference: {len(pages)} pages in {args.out}/ (open {args.out}/index.html)")


if __name__ == "__main__":
    main()
