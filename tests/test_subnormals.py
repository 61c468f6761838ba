"""Subnormal numbers in the KL divergences: no platform's flush is assumed (issue 23).

XLA-CPU reads a subnormal input as 0 and flushes a subnormal result to 0; XLA-GPU keeps both.
A log-target whose probability :math:`t = e^{\\log t}` is subnormal may still give a normal loss
term :math:`t (\\log t - \\log p)` and a normal label gradient :math:`t (\\log t - \\log p + 1)`:
those are checked against mpmath on this platform, flush or not.
"""

import jax
import jax.numpy as jnp
import mpmath as mp
import numpy as np
import pytest

import jaxloss
from jaxloss import _divergence

NAMESPACES = {"jaxloss": jaxloss, "forward": jaxloss.forward}

# (dtype, log t, log p): t is subnormal in the dtype, the term and the label gradient are normal.
SUBNORMAL_TARGETS = [
    (np.float32, -95.0, -3000.0),
    (np.float32, -100.0, -1e6),
    (np.float64, -720.0, -1e6),
    (np.float64, -730.0, -1e10),
]


def _ulps(computed, exact, dtype):
    """|computed - exact| in ulps of the (normal) exact value in ``dtype``."""
    info = np.finfo(dtype)
    assert abs(exact) >= mp.mpf(float(info.smallest_normal)), "the exact value must be normal"
    ulp = mp.ldexp(1, int(mp.floor(mp.log(abs(exact), 2))) - info.nmant)
    return float(abs(mp.mpf(float(computed)) - exact) / ulp)


@pytest.mark.parametrize("dtype, log_t, log_p", SUBNORMAL_TARGETS, ids=lambda v: str(v))
@pytest.mark.parametrize("key", NAMESPACES)
def test_a_subnormal_target_probability_gives_its_normal_term_and_label_gradient(key, dtype, log_t, log_p):
    ns = NAMESPACES[key]
    assert 0 < np.exp(np.float64(log_t)) < np.finfo(dtype).smallest_normal
    with jax.enable_x64(dtype == np.float64):
        lp, lt = np.array([log_p], dtype), np.array([log_t], dtype)
        cost = ns.kl_divergence_with_log_targets
        loss = jax.jit(cost)(lp, lt)
        dlp, dlt = jax.jit(jax.grad(lambda a, b: jnp.sum(cost(a, b)), (0, 1)))(lp, lt)
    with mp.workprec(200):
        t = mp.exp(mp.mpf(log_t))
        difference = mp.mpf(log_t) - mp.mpf(log_p)
        assert _ulps(loss, t * difference, dtype) <= 4.0, (float(loss), t * difference)
        assert _ulps(dlt[0], t * (difference + 1), dtype) <= 4.0, (float(dlt[0]), t * (difference + 1))
    assert float(dlp[0]) <= 0.0 and abs(float(dlp[0])) <= float(np.finfo(dtype).smallest_normal)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=str)
@pytest.mark.parametrize("key", NAMESPACES)
def test_an_underflowing_target_against_a_minus_inf_prediction_costs_inf(key, dtype):
    """:math:`t > 0` however small: the limit is ``+inf``, for the loss and the label gradient;
    a ``-inf`` log-target is a class out of play (0 for both)."""
    ns = NAMESPACES[key]
    with jax.enable_x64(dtype == np.float64):
        lp = np.array([-np.inf, -np.inf, 0.0], dtype)
        lt = np.array([-1e4, -np.inf, 0.0], dtype)
        cost = ns.kl_divergence_with_log_targets
        assert float(jax.jit(cost)(lp, lt)) == np.inf
        assert float(jax.jit(cost)(lp[1:], lt[1:])) == 0.0
        dlp, dlt = jax.jit(jax.grad(lambda a, b: jnp.sum(cost(a, b)), (0, 1)))(lp, lt)
    np.testing.assert_array_equal(np.asarray(dlt), [np.inf, 0.0, 1.0])
    np.testing.assert_array_equal(np.asarray(dlp), [0.0, 0.0, -1.0])


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=str)
def test_the_portable_target_log_is_the_log_with_a_finite_stand_in_at_zero(dtype):
    """``safe_log``'s portable form (the accelerators' one) against the math; its XLA-CPU form
    is compared with it in ``tests/test_backend.py``. On a platform that keeps subnormals it is
    :math:`\\log t` for a subnormal target too, where the CPU form's clamp gives
    :math:`\\log \\text{tiny}`."""
    info = np.finfo(dtype)
    targets = np.array([0.0, -0.0, float(info.smallest_normal), 1e-30, 0.25, 1.0, -0.5, np.nan], dtype)
    with jax.enable_x64(dtype == np.float64):
        got = np.asarray(jax.jit(_divergence.safe_log.portable)(targets)).astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        want = np.log(targets.astype(np.float64))
    want[:2] = np.log(float(info.smallest_normal))
    np.testing.assert_allclose(got[:6], want[:6], rtol=2 * float(info.eps))
    assert np.isnan(got[6:]).all()
    # The portable form does not clamp: the smallest subnormal target's logarithm, on a platform that reads it.
    subnormal = float(info.smallest_subnormal)
    with jax.enable_x64(dtype == np.float64):
        traced = jax.make_jaxpr(_divergence.safe_log.portable)(np.array([subnormal], dtype))
    assert "max" not in str(traced)
