"""Shared pytest configuration."""

import os

# Tests run on the CPU unless told otherwise; keep XLA from grabbing every core thread pool
# per test process more than needed.
os.environ.setdefault("JAX_PLATFORMS", "cpu")

if os.environ["JAX_PLATFORMS"] != "cpu":
    # On GPUs XLA may run float32 matrix products in TF32 (about 1e-3 relative error), which
    # the float32 tolerances of the comparison tests do not allow; test in full float32.
    import jax

    jax.config.update("jax_default_matmul_precision", "highest")
