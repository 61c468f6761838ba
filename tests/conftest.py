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


# The longest tests (measured: each notebook 25-35 s, the verify command about 50 s, the two
# processes about 10 s each) run first, so that the two xdist workers do not end on one of them
# while the other idles; every other test keeps its order.
SLOW_FIRST = (
    "tests/test_readme.py::test_jaxloss_command_runs_verify_and_reports_success",
    "tests/test_notebooks.py::",
    "tests/test_multiprocess.py::",
    "tests/test_transforms.py::test_forward_check_grads_order_2",
)


def pytest_collection_modifyitems(items):
    def rank(item):
        for i, prefix in enumerate(SLOW_FIRST):
            if item.nodeid.startswith(prefix):
                return i
        return len(SLOW_FIRST)

    items.sort(key=rank)  # stable: the order within each rank is kept
