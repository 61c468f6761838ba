"""The platform seam (``jaxloss._backend``): each per-platform primitive's XLA-CPU form and portable
form compute the same value, and the form is chosen where the program is lowered."""

import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxloss import _backend

SPECIALS = [-np.inf, -3e38, -1e4, -1.0, -1e-30, -0.0, 0.0, 1e-30, 0.5, 1.0, 1e4, 3e38, np.inf, np.nan]


def _values(dtype, rng, count=64):
    info = jnp.finfo(dtype)
    special = np.array([v for v in SPECIALS if not np.isfinite(v) or abs(v) <= float(info.max)], np.float64)
    span = np.log(float(info.max)) / 2
    random = rng.normal(size=count) * np.exp(rng.uniform(-span, span, size=count))
    return np.concatenate([special, random]).astype(dtype)


def _normal_or_zero(values, dtype):
    """``values`` with subnormal entries moved to 0 (the domain of ``times_infinity``'s weight)."""
    tiny = float(jnp.finfo(dtype).smallest_normal)
    return np.where(np.abs(values.astype(np.float64)) < tiny, 0.0, values).astype(dtype)


def _arguments(name, dtype, rng):
    """Inputs from the domain that the primitive's docstring states, extremes included."""
    x = _values(dtype, rng)
    if name == "is_zero":
        return (_normal_or_zero(x, dtype),), {}
    if name in ("twice_below_zero", "nonnegative_part", "nonpositive_part", "infinite_excess", "complement"):
        return (x,), {}
    if name == "not_equal_indicator":
        ids = rng.integers(0, 50, size=(2, 200)).astype(dtype)
        return (ids[0], ids[1]), {}
    if name == "times_infinity":
        value = np.abs(x)
        weight = _normal_or_zero(rng.permutation(x), dtype)
        weight = np.where(np.isnan(weight), 0.0, weight).astype(dtype)
        value = np.concatenate([value, np.full(4, np.inf, dtype)])
        weight = np.concatenate([weight, np.array([0.0, -0.0, 2.0, -3.0], dtype)])
        return (value, weight), {}
    if name == "row_select":
        return (np.array([[True], [False], [True]]), np.arange(3, dtype=dtype)[:, None] * np.ones((3, 4), dtype)), {}
    if name == "row_step":
        return (rng.normal(size=(8, 1)).astype(dtype), rng.normal(size=(8, 1)).astype(dtype)), {}
    if name in ("residual_barrier", "accelerator_barrier"):
        return ((x, (x[:3], None)),), {}
    if name == "transposed":
        return (rng.normal(size=(5, 7)).astype(dtype),), {}
    if name == "dot":
        # Small integers: every product and sum is exact, so the order of the additions cannot show.
        a = rng.integers(-8, 8, size=(6, 5)).astype(dtype)
        b = rng.integers(-8, 8, size=(5, 4)).astype(dtype)
        compute = jnp.float64 if dtype == np.float64 else jnp.float32
        return (a, b), {"operand": dtype, "compute": compute}
    if name == "divide":
        numerators = rng.normal(size=(16, 33)) * 10.0 ** rng.integers(-8, 8, (16, 1))
        rows = np.abs(rng.normal(size=(16, 1))) + 0.1
        return (numerators.astype(dtype), rows.astype(dtype)), {}
    if name == "safe_log":
        # Zero, normal, infinite and NaN targets, negative ones included (XLA-CPU reads a subnormal as 0).
        return (_normal_or_zero(x, dtype),), {}
    if name == "exp_rounded":
        low = max(float(np.log(float(jnp.finfo(dtype).smallest_normal))), -80.0)
        return (np.concatenate([[0.0, -0.0, -np.inf], rng.uniform(low, 0.0, 200)]).astype(dtype),), {}
    if name == "exp_times":
        log_t = np.concatenate([[0.0, -np.inf], rng.uniform(-30.0, 0.0, 100)]).astype(dtype)
        return (log_t, rng.uniform(-30.0, 30.0, log_t.shape).astype(dtype)), {}
    raise AssertionError(f"no inputs for the primitive {name!r}: add them here")


# The forms that agree within a few roundings rather than bit for bit: each is a more exact
# formulation for accelerators whose own operation is approximate.
WITHIN_ULPS = {"divide": 1, "exp_rounded": 1, "exp_times": 3}
COMPUTE_DTYPE_ONLY = {"divide", "exp_rounded", "exp_times"}


def _assert_same(left, right, ulps=0):
    for a, b in zip(jax.tree.leaves(left), jax.tree.leaves(right), strict=True):
        assert a.dtype == b.dtype and a.shape == b.shape, (a.dtype, b.dtype, a.shape, b.shape)
        a, b = np.asarray(a), np.asarray(b)
        if ulps:
            spacing = np.spacing(np.abs(b.astype(np.float64)).astype(b.dtype)).astype(np.float64)
            np.testing.assert_array_less(np.abs(a.astype(np.float64) - b.astype(np.float64)), ulps * spacing * 1.0001)
        else:
            np.testing.assert_array_equal(a.astype(np.float64), b.astype(np.float64))


def test_every_primitive_has_inputs_here():
    assert set(_backend.PRIMITIVES) == {
        "twice_below_zero", "not_equal_indicator", "complement", "row_select", "nonnegative_part",
        "nonpositive_part", "infinite_excess", "times_infinity", "row_step",
        "residual_barrier", "accelerator_barrier", "transposed", "dot", "divide", "exp_rounded", "safe_log",
        "is_zero", "exp_times",
    }  # fmt: skip


@pytest.mark.parametrize("dtype", [np.float32, np.float64, jnp.bfloat16, np.float16], ids=str)
@pytest.mark.parametrize("name", sorted(_backend.PRIMITIVES))
def test_cpu_form_and_portable_form_compute_the_same_value(name, dtype):
    primitive = _backend.PRIMITIVES[name]
    if name in COMPUTE_DTYPE_ONLY and jnp.finfo(dtype).bits < 32:
        pytest.skip("used in the compute dtype (float32 or float64) only")
    with jax.enable_x64(dtype == np.float64):
        args, static = _arguments(name, dtype, np.random.default_rng(len(name)))
        cpu = jax.jit(lambda *a: primitive.cpu(*a, **static))(*args)
        portable = jax.jit(lambda *a: primitive.portable(*a, **static))(*args)
        chosen = jax.jit(lambda *a: primitive(*a, **static))(*args)
        _assert_same(cpu, portable, ulps=WITHIN_ULPS.get(name, 0))
        _assert_same(chosen, portable if _backend.PORTABLE else cpu)  # JAXLOSS_PORTABLE=1: the portable form


def _exported_text(fn, platform, *args):
    return jax.export.export(jax.jit(fn), platforms=[platform])(*args).mlir_module()


@pytest.mark.skipif(_backend.PORTABLE, reason="JAXLOSS_PORTABLE=1 selects the portable forms everywhere")
def test_the_form_is_chosen_for_the_platform_the_program_is_lowered_for():
    """Exported from this CPU host for a GPU, the program holds the portable form: the choice is
    made at lowering, not from the host's default backend."""
    x = jnp.ones((4, 3), jnp.float32)
    assert "optimization_barrier" in _exported_text(_backend.transposed, "cpu", x)
    for platform in ("cuda", "rocm", "tpu"):
        assert "optimization_barrier" not in _exported_text(_backend.transposed, platform, x)


def test_the_portable_switch_selects_the_portable_forms_on_the_cpu():
    code = (
        "import jax, jax.numpy as jnp; from jaxloss import _backend; "
        "x = jnp.ones((4, 3)); "
        "text = jax.export.export(jax.jit(_backend.transposed), platforms=['cpu'])(x).mlir_module(); "
        "print(_backend.PORTABLE, 'optimization_barrier' in text)"
    )
    for value, expected in (("1", "True False"), ("0", "False True")):
        env = dict(os.environ, JAXLOSS_PORTABLE=value, JAX_PLATFORMS="cpu")
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
        assert out.stdout.split()[-2:] == expected.split(), out.stdout + out.stderr
