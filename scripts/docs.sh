#!/usr/bin/env bash
# Build the API reference from the docstrings with pdoc (the `docs` extra) into docs/api/.
#     bash scripts/docs.sh            # then open docs/api/index.html
set -euo pipefail
cd "$(dirname "$0")/.."
rm -rf docs/api
"${PYTHON:-.venv/bin/python}" scripts/build_docs.py --out docs/api
