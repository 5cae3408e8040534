"""The README's code must run as written, so the docs cannot rot."""

import contextlib
import io
import re
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def python_blocks(section: str) -> list[str]:
    text = README.read_text()
    start = text.index(f"## {section}")
    end = text.find("\n## ", start + 1)
    return re.findall(r"```python\n(.*?)```", text[start : end if end > 0 else None], re.S)


def test_quick_start_runs_and_learns_xor_of_signs():
    (code,) = python_blocks("Quick start")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, "README quick start", "exec"), {})
    loss = float(re.search(r"loss ([0-9.]+)", out.getvalue()).group(1))
    assert loss < 0.1, out.getvalue()  # chance level is ln 2 ≈ 0.693


def test_the_fit_example_runs_model_state_fit_evaluate():
    (code,) = python_blocks("From a model to `fit` and `evaluate`")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, "README fit example", "exec"), {})
    accuracy = float(re.search(r"test accuracy ([0-9.]+)", out.getvalue()).group(1))
    assert accuracy > 0.9, out.getvalue()  # chance level is 0.5


def test_sequence_models_example_runs():
    (code,) = python_blocks("Sequence models")
    exec(compile(code, "README sequence models", "exec"), {})  # it asserts its own shapes


def test_images_example_runs():
    (code,) = python_blocks("Images")
    exec(compile(code, "README images", "exec"), {})  # it asserts its own shapes and state
