"""Shared fixtures of the textbook tests: experiment results cached per (name, runs, seed)."""

import functools

import pytest

from agents import textbook


@functools.lru_cache(maxsize=None)
def _result(name, runs, seed=0):
    return textbook.run_experiment(name, runs=runs, seed=seed)


@pytest.fixture(scope="session")
def experiment_result():
    """`experiment_result(name, runs, seed=0)`: `textbook.run_experiment`, computed once."""
    return _result

