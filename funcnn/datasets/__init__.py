"""Datasets: generated tasks with known answers and loaders for real data.

`tabular` holds the supervised tasks used by `scripts/train.py`; sequence tasks and text
live in their own modules.
"""

from funcnn.datasets.tabular import (
    TASKS,
    Task,
    breast_cancer,
    diabetes,
    digits,
    function_1d,
    house,
    house_coefficients,
    load,
    sine,
    spam,
    spirals,
    standardize,
    train_test_split,
    xor,
)

__all__ = [
    "TASKS",
    "Task",
    "breast_cancer",
    "diabetes",
    "digits",
    "function_1d",
    "house",
    "house_coefficients",
    "load",
    "sine",
    "spam",
    "spirals",
    "standardize",
    "train_test_split",
    "xor",
]
