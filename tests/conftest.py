"""Strict JAX settings for the whole suite (silent broadcasting or dtype promotion fails a test), and
eight host devices."""

import os
import shutil
import tempfile

# JAX on the CPU unless the caller names a platform: with the accelerators' compile-only plugins installed
# (tests/test_accelerators.py; CI installs them), a start with no platform named tries their devices, and the
# CUDA plugin then fails to register for want of the CUDA libraries. Set before jax is imported.
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax
import pytest

# Eight CPU devices, for the sharded costs' tests; one-device tests use the first, as before.
jax.config.update("jax_num_cpu_devices", 8)
jax.config.update("jax_numpy_rank_promotion", "raise")
jax.config.update("jax_numpy_dtype_promotion", "strict")


CACHE_OPTIONS = {
    "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
    "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0",
}


def pytest_configure(config):
    """One XLA compilation cache for this run, shared by the xdist workers and the subprocesses
    (notebook kernels, the verify command): the suite compiles many identical programs, and
    sharing them took two subsets of it from 86 s to 71 s and from 114 s to 90 s. The cache is
    a fresh directory, removed at the end, so no run reads another's programs."""
    if hasattr(config, "workerinput") or os.environ.get("JAX_COMPILATION_CACHE_DIR"):
        return  # a worker (it inherits the variables below) or a cache the caller chose
    path = tempfile.mkdtemp(prefix="jaxloss-xla-cache-")
    config.stash[CACHE_KEY] = path
    os.environ.update(CACHE_OPTIONS, JAX_COMPILATION_CACHE_DIR=path)
    jax.config.update("jax_compilation_cache_dir", path)  # this process, when it runs tests itself
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


def pytest_unconfigure(config):
    path = config.stash.get(CACHE_KEY, None)
    if path:
        shutil.rmtree(path, ignore_errors=True)


CACHE_KEY = pytest.StashKey[str]()


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
