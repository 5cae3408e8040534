"""funcnn — a pure-JAX functional neural-network library where every equation can be checked.

Networks are pure functions over parameter pytrees (nested dicts of arrays), gradients
come from `jax.grad`, and the optimizers are hand-written state transformations.
"""

__version__ = "0.1.0"
