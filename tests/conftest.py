"""Shared pytest configuration."""

import os

# Tests run on the CPU unless told otherwise; keep XLA from grabbing every core thread pool
# per test process more than needed.
os.environ.setdefault("JAX_PLATFORMS", "cpu")
