#!/usr/bin/env bash
# Create a virtual environment, install funcnn with its dev extra, lint, type-check, and run the
# test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e ".[dev]"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
# Type-check the public API (config in pyproject.toml: [tool.mypy]).
.venv/bin/mypy
# Two workers on a 2-core machine (compilation dominates, and XLA compiles single-threaded);
# --dist loadfile keeps each test file on one worker, so a module fixture is built once.
.venv/bin/python -m pytest -q -n auto --dist loadfile "$@"
