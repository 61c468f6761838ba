"""Fuzz: random shapes, scales up to float32's largest number, -inf masks and labels, scored
against mpmath by the same harness as ``jaxloss verify`` (which runs a larger sample)."""

import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import jaxloss
from jaxloss.tools import precision as _precision

EXAMPLES = 20  # per implementation; `jaxloss verify --full` scores 5600 random rows a dtype


@pytest.mark.parametrize("ns", [jaxloss, jaxloss.forward], ids=["jaxloss", "jaxloss.forward"])
@settings(max_examples=EXAMPLES, deadline=None)
@given(
    case=st.sampled_from(_precision.FUZZ_COSTS),
    width=st.sampled_from(_precision.FUZZ_WIDTHS),
    rows=st.sampled_from([1, 3]),
    seed=st.integers(0, 2**32 - 1),
)
def test_random_rows_are_within_the_ulp_targets_and_never_non_finite_where_exact_is_finite(ns, case, width, rows, seed):
    cost, labels = case
    x, y = _precision.random_rows(np.random.default_rng(seed), cost, labels, rows, width, np.float32)
    sweep = _precision.make_sweep(cost, labels, x, y, np.float32)
    score = _precision.score(
        _precision.evaluate(getattr(ns, cost), sweep, jnp.float32), sweep, jnp.float32, jnp.float32
    )
    assert score.nonfinite == 0, (x, y)
    assert score.loss <= sweep.loss_target, (x, y)
    assert score.grad <= _precision.GRAD_TARGET_ULPS, (x, y)
    assert score.label_grad <= _precision.GRAD_TARGET_ULPS, (x, y)


def test_the_harness_flags_a_loss_three_ulps_off():
    x = np.array([[20.0, 0.0, -20.0, 10.0]], np.float32)
    sweep = _precision.make_sweep("softmax_cross_entropy_with_integer_labels", "integer", x, np.array([0]), np.float32)
    loss, grad = _precision.evaluate(jaxloss.softmax_cross_entropy_with_integer_labels, sweep, jnp.float32)
    good = _precision.score((loss, grad), sweep, jnp.float32, jnp.float32)
    off = np.float32(loss[0])
    for _ in range(3):
        off = np.nextafter(off, np.float32(1.0))
    bad = _precision.score((np.array([off], np.float64), grad), sweep, jnp.float32, jnp.float32)
    assert good.loss <= _precision.TARGET_ULPS
    assert bad.loss >= 3.0 - good.loss


def test_the_harness_counts_nan_where_the_exact_result_is_finite():
    x = np.array([[1.0, 2.0]], np.float32)
    sweep = _precision.make_sweep("softmax_cross_entropy", "hard", x, np.array([[0.0, 1.0]], np.float32), np.float32)
    results = _precision.evaluate(jaxloss.softmax_cross_entropy, sweep, jnp.float32)
    broken = (np.array([np.nan]), *results[1:])
    assert _precision.score(results, sweep, jnp.float32, jnp.float32).nonfinite == 0
    assert _precision.score(broken, sweep, jnp.float32, jnp.float32).nonfinite == 1
