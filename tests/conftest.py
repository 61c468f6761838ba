"""Strict JAX settings for the whole suite: silent broadcasting or dtype promotion fails a test."""

import jax
import pytest

jax.config.update("jax_numpy_rank_promotion", "raise")
jax.config.update("jax_numpy_dtype_promotion", "strict")


@pytest.fixture
def x64():
    """Runs a test with float64 enabled."""
    with jax.enable_x64(True):
        yield
