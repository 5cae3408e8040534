"""The studies built on funcnn — what `scripts/` runs; nothing in the library imports this.

    experiments    textbook claims measured: vanishing gradients, ReLU sparsity, depth, stability
    architectures  the five sequence architectures side by side: quality, size, speed, scaling
    gradcheck      jax.grad against finite differences, and what backprop saves
    compare        optimizers: float64 verification, races on shared problems, L2 vs AdamW decay
    lm             character language modelling: bits/char, the unigram baseline, training
    recipes        the main job (`scripts/train.py`): task → MLP → AdamW → fit → metrics
    plotting       matplotlib figures for the scripts (the `examples` extra)

Import the module you need: `from funcnn.lab import recipes`.
"""

__all__: list[str] = []  # a namespace of study modules: import each by name
