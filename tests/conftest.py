"""Strict JAX settings for the whole suite (silent broadcasting or dtype promotion fails a test), and
eight host devices."""

import jax
import pytest

# Eight CPU devices, for the sharded costs' tests; one-device tests use the first, as before.
jax.config.update("jax_num_cpu_devices", 8)
jax.config.update("jax_numpy_rank_promotion", "raise")
jax.config.update("jax_numpy_dtype_promotion", "strict")


@pytest.fixture
def x64():
    """Runs a test with float64 enabled."""
    with jax.enable_x64(True):
        yield
