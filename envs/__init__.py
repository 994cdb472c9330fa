"""Environments: pure-JAX functional envs, Gymnasium registration, host adapter."""
