"""Datasets: generated tasks and loaders for real data (see submodules)."""
