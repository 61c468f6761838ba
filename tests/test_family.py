"""The rest of optax's family: sigmoid focal loss, poly-1 cross-entropy and the KL divergence.

* Fixed values worked out in mpmath (50 digits) from the definitions of optax and torchvision,
  against the float64 loss and both gradients of every namespace (and float32 to a few ulps).
* The accuracy contract where it is hard: confident rows (focal at |z| = 20 and beyond, poly-1
  with epsilon = -1, nearly matching KL rows), gamma < 1, logits up to 3e38 and infinite.
* The conventions: 0 log 0 = 0, a -inf log-target is a zero-probability class, gamma = 0 and
  epsilon = 0 are the cross-entropies, matching distributions give exactly 0.
* Hyperparameters: validation, traced values, per-element alpha and gamma; 16-bit inputs.
"""

from __future__ import annotations

import functools

import hypothesis.extra.numpy as hnp
import jax
import jax.numpy as jnp
import mpmath as mp
import numpy as np
import optax
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import jaxloss

NAMESPACES = {"jaxloss": jaxloss, "jaxloss.forward": jaxloss.forward, "jaxloss.reference": jaxloss.reference}
RULES = {"jaxloss": jaxloss, "jaxloss.forward": jaxloss.forward}

mp.mp.dps = 50


def _sigmoid(z):
    return 1 / (1 + mp.exp(-z))


def _softplus(z):
    return z + mp.log1p(mp.exp(-z)) if z > 0 else mp.log1p(mp.exp(z))


def focal_torchvision(z, y, gamma, alpha):
    """torchvision's sigmoid_focal_loss, literally: ce * (1 - p_t)^gamma, times alpha_t when alpha >= 0."""
    p = _sigmoid(z)
    ce = y * _softplus(-z) + (1 - y) * _softplus(z)  # binary_cross_entropy_with_logits
    p_t = p * y + (1 - p) * (1 - y)
    loss = ce * (1 - p_t) ** gamma
    if alpha is not None:
        loss = (alpha * y + (1 - alpha) * (1 - y)) * loss
    return loss


def exact_focal(z, y, gamma, alpha):
    """(loss, d/dz, d/dy) of the focal loss, from torchvision's formula in mpmath."""
    z, y, gamma = mp.mpf(z), mp.mpf(y), mp.mpf(gamma)
    alpha = None if alpha is None else mp.mpf(alpha)
    loss = focal_torchvision(z, y, gamma, alpha)
    # One-sided in the label at 0 and 1, where (1 - p_t)^gamma leaves the reals past the edge.
    side = -1 if y == 1 else (1 if y == 0 else 0)
    return (
        loss,
        mp.diff(lambda t: focal_torchvision(t, y, gamma, alpha), z),
        mp.diff(lambda t: focal_torchvision(z, t, gamma, alpha), y, direction=side),
    )


def exact_focal_closed(z, y, gamma, alpha):
    """The same, with the chain rule written out (where mp.diff's steps are too coarse: q ~ e^-150).

    With q = 1 - p_t: d/dz = a_t [q^g (sigma(z) - y) + g q^(g-1) (1 - 2y) sigma(z) sigma(-z) ce],
    d/dy = a_t [-z q^g + g q^(g-1) (sigma(-z) - sigma(z)) ce] + (2 alpha - 1) q^g ce.
    """
    z, y, g = mp.mpf(z), mp.mpf(y), mp.mpf(gamma)
    ce = y * _softplus(-z) + (1 - y) * _softplus(z)
    q = (1 - y) * _sigmoid(z) + y * _sigmoid(-z)
    a_t = 1 if alpha is None else alpha * y + (1 - alpha) * (1 - y)
    dz = a_t * (q**g * (_sigmoid(z) - y) + g * q ** (g - 1) * (1 - 2 * y) * _sigmoid(z) * _sigmoid(-z) * ce)
    dy = a_t * (-z * q**g + g * q ** (g - 1) * (_sigmoid(-z) - _sigmoid(z)) * ce)
    if alpha is not None:
        dy += (2 * alpha - 1) * q**g * ce
    return a_t * q**g * ce, dz, dy


def _assert_relative(got, want, rtol, what, atol=0.0):
    got, want = np.asarray(got, np.float64), np.asarray([float(w) for w in want])
    np.testing.assert_allclose(got, want, rtol=rtol, atol=atol, err_msg=what)


def _ulps(got, want, dtype=np.float32):
    """|got - want| in ulps of want in ``dtype`` (mpmath ``want``)."""
    out = []
    for g, w in zip(np.ravel(got), want, strict=True):
        w = mp.mpf(w)
        exponent = max(int(mp.floor(mp.log(abs(w), 2))), -126) if w != 0 else -126
        out.append(float(abs(mp.mpf(float(g)) - w) / mp.ldexp(1, exponent - np.finfo(dtype).nmant)))
    return max(out)


# --- sigmoid focal loss ---------------------------------------------------------------------------------------

FOCAL_POINTS = [(-3.0, 1.0), (-0.5, 0.0), (0.0, 1.0), (0.7, 0.25), (2.5, 1.0), (4.0, 0.0), (-1.25, 0.6), (20.0, 1.0)]
FOCAL_SETTINGS = [(2.0, None), (0.5, None), (0.25, 0.25), (3.0, 0.75), (1.0, None)]


@pytest.mark.parametrize(("gamma", "alpha"), FOCAL_SETTINGS, ids=str)
def test_focal_loss_and_both_gradients_equal_torchvisions_formula_in_mpmath(gamma, alpha, x64):
    z = np.array([p[0] for p in FOCAL_POINTS])
    y = np.array([p[1] for p in FOCAL_POINTS])
    exact = [exact_focal(a, b, gamma, alpha) for a, b in zip(z, y, strict=True)]
    for key, ns in NAMESPACES.items():

        def total(z, y, ns=ns):
            return jnp.sum(ns.sigmoid_focal_loss(z, y, gamma=gamma, alpha=alpha))

        loss = jax.jit(lambda z, y, ns=ns: ns.sigmoid_focal_loss(z, y, gamma=gamma, alpha=alpha))(z, y)
        dz, dy = jax.jit(jax.grad(total, argnums=(0, 1)))(z, y)
        # The reference's 1 - sigma(20) keeps 6 digits in float64; the rules keep all of them.
        rtol, atol = (1e-13, 0.0) if key != "jaxloss.reference" else (1e-6, 1e-15)
        _assert_relative(loss, [e[0] for e in exact], rtol, f"{key} loss", atol)
        _assert_relative(dz, [e[1] for e in exact], rtol, f"{key} d/dz", atol)
        _assert_relative(dy, [e[2] for e in exact], rtol, f"{key} d/dy", atol)


@pytest.mark.parametrize("gamma", [2.0, 0.5], ids=str)
def test_focal_loss_of_confident_rows_keeps_its_digits_in_float32(gamma):
    """|z| from 5 to 60 with the agreeing hard label: q^gamma underflows only with the exact value."""
    z = np.float32([5.0, 10.0, 20.0, 35.0, 60.0])
    y = np.ones_like(z)
    loss = np.asarray(jax.jit(lambda z: jaxloss.sigmoid_focal_loss(z, y, gamma=gamma))(z))
    dz = np.asarray(jax.jit(jax.grad(lambda z: jnp.sum(jaxloss.sigmoid_focal_loss(z, y, gamma=gamma))))(z))
    exact = [exact_focal_closed(float(a), 1.0, float(np.float32(gamma)), None) for a in z]
    keep = [i for i, e in enumerate(exact) if e[0] > np.finfo(np.float32).smallest_normal]
    assert len(keep) >= 3
    assert _ulps(loss[keep], [exact[i][0] for i in keep]) <= 2.0
    assert _ulps(dz[keep], [exact[i][1] for i in keep]) <= 4.0


@pytest.mark.parametrize("gamma", [0.25, 0.5, 2.0], ids=str)
def test_focal_loss_is_finite_with_finite_gradients_up_to_3e38_and_takes_limits_at_inf(gamma):
    z = np.float32([3e38, -3e38, 1e30, -1e30, 88.0, 104.0, np.inf, -np.inf])
    for y_value in (0.0, 1.0, 0.3):
        y = np.full_like(z, y_value)
        loss = np.asarray(jax.jit(lambda z, y: jaxloss.sigmoid_focal_loss(z, y, gamma=gamma))(z, y))
        grads = jax.jit(jax.grad(lambda z, y: jnp.sum(jaxloss.sigmoid_focal_loss(z, y, gamma=gamma)), (0, 1)))(z, y)
        dz, dy = np.asarray(grads[0]), np.asarray(grads[1])
        finite = np.isfinite(z)
        # The loss is exactly |z| q^gamma times the weight of the disagreeing side: finite at |z|
        # up to 3e38 (1e30 and above only where it agrees, or with a bounded product).
        assert np.all(np.isfinite(np.asarray(dz))), (y_value, dz)
        assert np.all(~np.isnan(np.asarray(loss))), (y_value, loss)
        if y_value == 1.0:
            np.testing.assert_array_equal(loss[[0, 2, 6]], 0.0)  # agreeing: the limit 0
            assert np.all(np.isinf(loss[[7]]))
            np.testing.assert_array_equal(dz[[0, 2, 6]], 0.0)
            np.testing.assert_array_equal(dz[[1, 3, 7]], -1.0)  # q = 1: the ce slope
        if y_value == 0.3:
            assert np.all(np.isfinite(np.asarray(loss)[finite]) | (np.abs(z[finite]) > 1e38))
        assert np.all(~np.isnan(np.asarray(dy)[finite])), (y_value, dy)


def test_focal_loss_with_gamma_below_one_has_finite_gradients_where_q_underflows():
    """(1 - p_t)^gamma has an infinite slope at p_t = 1, so q^(gamma - 1) is never formed.

    At z = 100 and 150, q = sigma(-z) underflows in float32 (q^(gamma - 1) would be +inf), the
    logit gradient is below float32's range and rounds to 0, and the label gradient
    q^gamma z is about 2e-20 and 4e-31: kept to 4 ulp.
    """
    z = np.float32([20.0, 40.0, 100.0, 150.0])
    y = np.ones_like(z)
    grads = jax.jit(jax.grad(lambda z, y: jnp.sum(jaxloss.sigmoid_focal_loss(z, y, gamma=0.5)), (0, 1)))(z, y)
    dz, dy = np.asarray(grads[0]), np.asarray(grads[1])
    exact = [exact_focal_closed(float(a), 1.0, 0.5, None) for a in z]
    assert np.all(np.isfinite(dz)) and np.all(np.isfinite(dy))
    assert _ulps(dz[:2], [e[1] for e in exact[:2]]) <= 4.0
    np.testing.assert_array_equal(dz[2:], 0.0)
    assert _ulps(dy, [e[2] for e in exact]) <= 4.0
    naive = jax.grad(lambda z: jnp.sum(jaxloss.reference.sigmoid_focal_loss(z, y, gamma=0.5)))(z)
    assert not np.all(np.isfinite(np.asarray(naive)))  # the literal formula: 0 * inf


def test_jitted_focal_loss_with_soft_labels_is_within_2_ulp_in_float32():
    """One fused loop over the whole loss: XLA-CPU's code generator forms multiply-adds there.

    It measured 3.64 ulp on 3,000 such points (0.98 op by op) while a reader of a compensated
    product could fuse with its multiplication (``_backend.unfused_product``).
    """
    rng = np.random.default_rng(7)
    z = (rng.standard_normal(400) * rng.choice([0.1, 1.0, 5.0, 20.0], 400)).astype(np.float32)
    y = rng.uniform(0.0, 1.0, 400).astype(np.float32)
    loss = np.asarray(jax.jit(lambda z, y: jaxloss.sigmoid_focal_loss(z, y, alpha=0.25, gamma=2.0))(z, y))
    exact = [exact_focal_closed(float(a), float(b), 2.0, 0.25)[0] for a, b in zip(z, y, strict=True)]
    assert _ulps(loss, exact) <= 2.0


def test_focal_label_gradient_keeps_a_term_below_the_smallest_normal_number():
    """z = -44.5 with label 0: q^gamma = 2.3e-39 is subnormal in float32, and of the label
    gradient -z q^gamma + 2 q^gamma (1.06e-37), the second term alone would be flushed to 0 (4%).
    """
    z = np.float32([-44.48782730102539, 44.48782730102539, -60.0, 60.0])
    y = np.float32([0.0, 1.0, 0.0, 1.0])
    for ns in RULES.values():
        dy = jax.jit(jax.grad(lambda y, ns=ns: jnp.sum(ns.sigmoid_focal_loss(z, y)), argnums=0))(y)
        exact = [exact_focal_closed(float(a), float(b), 2.0, None)[2] for a, b in zip(z, y, strict=True)]
        assert _ulps(np.asarray(dy)[:2], exact[:2]) <= 4.0
        np.testing.assert_array_equal(np.asarray(dy)[2:], 0.0)  # 4.8e-51: below float32's range


def test_focal_loss_with_gamma_zero_is_the_sigmoid_cross_entropy(x64):
    rng = np.random.default_rng(0)
    z, y = rng.uniform(-8, 8, 64), rng.uniform(0, 1, 64)
    y[:16] = 1.0
    np.testing.assert_allclose(
        jaxloss.sigmoid_focal_loss(z, y, gamma=0.0), jaxloss.sigmoid_binary_cross_entropy(z, y), rtol=1e-15
    )


def test_focal_loss_equals_optax_at_moderate_inputs_per_element_alpha_and_gamma():
    rng = np.random.default_rng(1)
    z = rng.uniform(-4, 4, (8, 5)).astype(np.float32)
    y = rng.uniform(0, 1, (8, 5)).astype(np.float32)
    alpha = rng.uniform(0, 1, (1, 5)).astype(np.float32)
    gamma = rng.uniform(0, 3, (8, 1)).astype(np.float32)
    ours = jaxloss.sigmoid_focal_loss(z, y, alpha=alpha, gamma=gamma)
    np.testing.assert_allclose(ours, optax.losses.sigmoid_focal_loss(z, y, alpha=alpha, gamma=gamma), rtol=2e-5)
    # Each element with its own hyperparameters, as scalars.
    np.testing.assert_allclose(
        ours[2, 3], jaxloss.sigmoid_focal_loss(z[2, 3], y[2, 3], alpha=alpha[0, 3], gamma=gamma[2, 0]), rtol=1e-6
    )


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [({"gamma": -0.5}, "gamma"), ({"gamma": np.inf}, "gamma"), ({"alpha": 1.5}, "alpha"), ({"alpha": -0.1}, "alpha")],
    ids=str,
)
def test_focal_hyperparameters_outside_their_range_raise_value_error_naming_them(kwargs, argument):
    with pytest.raises(ValueError, match=f"`{argument}` must lie in"):
        jaxloss.sigmoid_focal_loss(jnp.zeros(3), jnp.ones(3), **kwargs)


def test_focal_hyperparameters_that_do_not_broadcast_raise_value_error_with_the_shapes():
    with pytest.raises(ValueError, match=r"`alpha` with shape \(4,\) must broadcast to the shape \(2, 3\)"):
        jaxloss.sigmoid_focal_loss(jnp.zeros((2, 3)), jnp.ones((2, 3)), alpha=jnp.full(4, 0.5))


def test_traced_focal_hyperparameters_outside_their_range_give_nan():
    loss = jax.jit(lambda g: jaxloss.sigmoid_focal_loss(jnp.zeros(2), jnp.ones(2), gamma=g))(-1.0)
    assert np.all(np.isnan(loss))
    fine = jax.jit(lambda g: jaxloss.sigmoid_focal_loss(jnp.zeros(2), jnp.ones(2), gamma=g))(2.0)
    np.testing.assert_allclose(fine, 0.25 * np.log(2.0), rtol=1e-6)


# --- poly-1 -----------------------------------------------------------------------------------------------------


def exact_poly(logits, labels, epsilon):
    """(loss, d/dz, d/dy) of optax's poly-1 loss in mpmath: CE + eps sum_j y_j (1 - p_j)."""
    z = [mp.mpf(v) for v in logits]
    y = [mp.mpf(v) for v in labels]
    eps = mp.mpf(epsilon)

    def loss_of(z, y):
        top = max(z)
        total = mp.fsum(mp.exp(v - top) for v in z)
        log_p = [v - top - mp.log(total) for v in z]
        return mp.fsum(yj * (-lp + eps * (1 - mp.exp(lp))) for yj, lp in zip(y, log_p, strict=True))

    loss = loss_of(z, y)

    def replaced(values, k, t):
        return [t if j == k else v for j, v in enumerate(values)]

    dz = [mp.diff(lambda t, k=k: loss_of(replaced(z, k, t), y), z[k]) for k in range(len(z))]
    dy = [mp.diff(lambda t, k=k: loss_of(z, replaced(y, k, t)), y[k]) for k in range(len(y))]
    return loss, dz, dy


POLY_ROWS = [
    ([2.0, -1.0, 0.5], [1.0, 0.0, 0.0]),
    ([0.0, 0.0, 0.0], [0.5, 0.5, 0.0]),
    ([-3.0, 4.0, 1.0], [0.2, 0.3, 0.5]),
    ([12.0, 0.0, -1.0], [1.0, 0.0, 0.0]),
]


@pytest.mark.parametrize("epsilon", [2.0, -1.0, 0.5, -3.0], ids=str)
def test_poly_loss_and_both_gradients_equal_optaxs_formula_in_mpmath(epsilon, x64):
    z = np.array([r[0] for r in POLY_ROWS])
    y = np.array([r[1] for r in POLY_ROWS])
    exact = [exact_poly(a, b, epsilon) for a, b in POLY_ROWS]
    for key, ns in NAMESPACES.items():
        loss = jax.jit(lambda z, y, ns=ns: ns.poly_loss_cross_entropy(z, y, epsilon=epsilon))(z, y)
        dz, dy = jax.jit(
            jax.grad(lambda z, y, ns=ns: jnp.sum(ns.poly_loss_cross_entropy(z, y, epsilon=epsilon)), (0, 1))
        )(z, y)
        # The reference subtracts 1 - p at the confident row (z = 12): 1e-5 of the loss's scale.
        rtol = 1e-13 if key != "jaxloss.reference" else 1e-4
        _assert_relative(loss, [e[0] for e in exact], rtol, f"{key} loss")
        scale = max(abs(float(v)) for e in exact for v in e[1])
        np.testing.assert_allclose(
            dz, np.array([[float(v) for v in e[1]] for e in exact]), rtol=rtol, atol=1e-15 * scale, err_msg=key
        )
        np.testing.assert_allclose(dy, np.array([[float(v) for v in e[2]] for e in exact]), rtol=rtol, err_msg=key)


def test_poly_loss_with_epsilon_minus_one_keeps_the_digits_of_a_confident_row():
    """-log p - (1 - p) = (1 - p)^2/2 + ...: the two terms cancel, so it is summed without cancellation."""
    z = np.float32([[t, 0.0, 0.0] for t in (6.0, 9.0, 12.0, 16.0)])
    y = np.float32([[1.0, 0.0, 0.0]] * 4)
    loss = jax.jit(lambda z: jaxloss.poly_loss_cross_entropy(z, y, epsilon=-1.0))(z)
    dz = jax.jit(jax.grad(lambda z: jnp.sum(jaxloss.poly_loss_cross_entropy(z, y, epsilon=-1.0))))(z)
    exact = [exact_poly([float(v) for v in row], [1.0, 0.0, 0.0], -1.0) for row in z]
    assert _ulps(loss, [e[0] for e in exact]) <= 4.0
    assert _ulps(dz[:, 0], [e[1][0] for e in exact]) <= 4.0
    theirs = optax.losses.poly_loss_cross_entropy(z, y, epsilon=-1.0)
    # optax subtracts: at z = 16 its loss is 0 or noise, ours is 2.5e-14.
    assert _ulps(theirs, [e[0] for e in exact]) > 1e3


def test_poly_loss_with_epsilon_zero_is_the_softmax_cross_entropy_and_equals_optax(x64):
    rng = np.random.default_rng(2)
    z, y = rng.uniform(-5, 5, (6, 4)), rng.dirichlet(np.ones(4), 6)
    np.testing.assert_allclose(
        jaxloss.poly_loss_cross_entropy(z, y, epsilon=0.0), jaxloss.softmax_cross_entropy(z, y), rtol=1e-15
    )
    for epsilon in (2.0, -1.0):
        np.testing.assert_allclose(
            jaxloss.poly_loss_cross_entropy(z, y, epsilon=epsilon),
            optax.losses.poly_loss_cross_entropy(z, y, epsilon=epsilon),
            rtol=1e-12,
        )


def test_poly_loss_masks_like_the_softmax_cross_entropy():
    """-inf logits with zero labels are masked classes; ``where`` drops classes and examples; a dead row costs 0."""
    z = jnp.array([[1.0, -jnp.inf, 0.0], [-jnp.inf, -jnp.inf, -jnp.inf], [0.5, 2.0, -1.0]])
    y = jnp.array([[1.0, 0.0, 0.0], [0.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    loss = jaxloss.poly_loss_cross_entropy(z, y)
    dz, dy = jax.grad(lambda z, y: jnp.sum(jaxloss.poly_loss_cross_entropy(z, y)), (0, 1))(z, y)
    kept = jaxloss.poly_loss_cross_entropy(z[:1, [0, 2]], y[:1, [0, 2]])
    np.testing.assert_allclose(loss[0], kept[0], rtol=1e-6)
    assert float(loss[1]) == 0.0
    assert np.all(np.asarray(dz)[1] == 0.0) and np.all(np.asarray(dy)[1] == 0.0)
    assert float(dz[0, 1]) == 0.0 and float(dy[0, 1]) == 0.0
    where = jnp.array([[True, True, False], [True, True, True], [True, True, False]])
    dropped = jaxloss.poly_loss_cross_entropy(z, y, where=where)
    np.testing.assert_allclose(dropped[2], jaxloss.poly_loss_cross_entropy(z[2:, :2], y[2:, :2])[0], rtol=1e-6)
    # A positive label on a masked class costs +inf, as in the cross-entropy.
    assert np.isinf(float(jaxloss.poly_loss_cross_entropy(z[0], jnp.array([0.5, 0.5, 0.0]))))


def test_poly_epsilon_must_be_a_finite_real_scalar():
    with pytest.raises(ValueError, match="`epsilon` must be a scalar"):
        jaxloss.poly_loss_cross_entropy(jnp.zeros((2, 3)), jnp.ones((2, 3)), epsilon=jnp.ones(2))
    with pytest.raises(ValueError, match="`epsilon` must lie in"):
        jaxloss.poly_loss_cross_entropy(jnp.zeros((2, 3)), jnp.ones((2, 3)), epsilon=np.nan)


# --- the KL divergence ------------------------------------------------------------------------------------------


def exact_kl(log_predictions, targets):
    """(loss, d/dlog p, d/dt) of sum_j t_j (log t_j - log p_j) in mpmath, 0 where t_j = 0."""
    lp = [mp.mpf(v) for v in log_predictions]
    t = [mp.mpf(v) for v in targets]
    loss = mp.fsum(0 if tj == 0 else tj * (mp.log(tj) - lpj) for tj, lpj in zip(t, lp, strict=True))
    return loss, [-tj for tj in t], [0 if tj == 0 else mp.log(tj) - lpj + 1 for tj, lpj in zip(t, lp, strict=True)]


KL_ROWS = [
    ([np.log(0.25), np.log(0.25), np.log(0.5)], [0.5, 0.5, 0.0]),
    ([np.log(0.2), np.log(0.3), np.log(0.5)], [0.1, 0.6, 0.3]),
    ([-0.1, -3.0, -8.0], [0.9, 0.05, 0.05]),
]


def test_kl_divergence_and_both_gradients_equal_the_definition_in_mpmath(x64):
    lp = np.array([r[0] for r in KL_ROWS])
    t = np.array([r[1] for r in KL_ROWS])
    exact = [exact_kl(a, b) for a, b in KL_ROWS]
    for key, ns in NAMESPACES.items():
        loss = jax.jit(ns.kl_divergence)(lp, t)
        dlp, dt = jax.jit(jax.grad(lambda a, b, ns=ns: jnp.sum(ns.kl_divergence(a, b)), (0, 1)))(lp, t)
        _assert_relative(loss, [e[0] for e in exact], 1e-14, f"{key} loss")
        np.testing.assert_allclose(dlp, [[float(v) for v in e[1]] for e in exact], rtol=1e-15, err_msg=key)
        np.testing.assert_allclose(dt, [[float(v) for v in e[2]] for e in exact], rtol=1e-14, err_msg=key)
        # The log-target form: the same divergence, and d/dlog t = t d/dt.
        log_t = np.log(np.where(t == 0, 1.0, t)) + np.where(t == 0, -np.inf, 0.0)
        loss = jax.jit(ns.kl_divergence_with_log_targets)(lp, log_t)
        dlp, dlt = jax.jit(jax.grad(lambda a, b, ns=ns: jnp.sum(ns.kl_divergence_with_log_targets(a, b)), (0, 1)))(
            lp, log_t
        )
        _assert_relative(loss, [e[0] for e in exact], 1e-14, f"{key} log-target loss")
        np.testing.assert_allclose(dlp, -t, rtol=1e-15, err_msg=key)
        pairs = zip(KL_ROWS, exact, strict=True)
        want = np.array([[float(tj * g) for tj, g in zip(r[1], e[2], strict=True)] for r, e in pairs])
        np.testing.assert_allclose(dlt, want, rtol=1e-14, err_msg=key)


def test_matching_distributions_give_exactly_zero_in_every_namespace():
    logits = jax.random.normal(jax.random.key(0), (16, 50)) * 6.0
    log_p = jax.nn.log_softmax(logits)
    p = jnp.exp(log_p)
    for key, ns in NAMESPACES.items():
        np.testing.assert_array_equal(ns.kl_divergence_with_log_targets(log_p, log_p), 0.0, err_msg=key)
        np.testing.assert_array_equal(ns.kl_divergence(jnp.log(p), p), 0.0, err_msg=key)


def test_nearly_matching_log_target_rows_keep_their_digits():
    """A one-ulp change of one log-probability: each term's difference is exact (Sterbenz)."""
    log_t = np.float32([-0.1053605, -2.3025851, -4.6051702])
    log_p = log_t.copy()
    log_p[1] = np.nextafter(log_p[1], np.float32(0))
    got = jaxloss.kl_divergence_with_log_targets(log_p, log_t)
    exact_t, exact_p = ([mp.mpf(float(v)) for v in row] for row in (log_t, log_p))
    want = mp.fsum(mp.exp(a) * (a - b) for a, b in zip(exact_t, exact_p, strict=True))
    assert _ulps([got], [want]) <= 2.0


def test_zero_targets_and_minus_inf_log_targets_are_classes_out_of_play():
    """0 log 0 = 0 even against a -inf prediction, with a zero gradient for both arguments."""
    lp = jnp.array([-jnp.inf, -1.0, -0.5])
    t = jnp.array([0.0, 0.0, 1.0])
    log_t = jnp.array([-jnp.inf, -jnp.inf, 0.0])
    for key, ns in NAMESPACES.items():
        for cost, target in ((ns.kl_divergence, t), (ns.kl_divergence_with_log_targets, log_t)):
            np.testing.assert_allclose(cost(lp, target), 0.5, rtol=1e-7, err_msg=key)
            dlp, dt = jax.grad(lambda a, b, cost=cost: cost(a, b), (0, 1))(lp, target)
            assert np.all(np.isfinite(np.asarray(dlp))) and np.all(np.isfinite(np.asarray(dt))), (key, dlp, dt)
            assert float(dlp[0]) == float(dlp[1]) == 0.0 and float(dt[0]) == float(dt[1]) == 0.0, (key, dlp, dt)
    # optax's 0 * (0 - log p) is NaN against a -inf prediction.
    assert np.isnan(float(optax.losses.kl_divergence(lp, t)))


def test_a_positive_target_against_a_minus_inf_prediction_costs_inf_and_negative_targets_give_nan():
    lp = jnp.array([-jnp.inf, -1.0])
    assert float(jaxloss.kl_divergence(lp, jnp.array([0.5, 0.5]))) == np.inf
    assert float(jaxloss.kl_divergence_with_log_targets(lp, jnp.log(jnp.array([0.5, 0.5])))) == np.inf
    assert np.isnan(float(jaxloss.kl_divergence(jnp.array([-1.0, -1.0]), jnp.array([-0.5, 1.0]))))


def test_kl_divergence_equals_optax_at_moderate_inputs_over_axes_and_where():
    rng = np.random.default_rng(3)
    lp = np.log(rng.dirichlet(np.ones(6), (4, 3))).astype(np.float32)
    t = rng.dirichlet(np.ones(6), (4, 3)).astype(np.float32)
    where = rng.uniform(size=(4, 3, 6)) > 0.2
    for axis in (-1, (1, 2), None):
        np.testing.assert_allclose(
            jaxloss.kl_divergence(lp, t, axis=axis), optax.losses.kl_divergence(lp, t, axis=axis), rtol=2e-6
        )
        np.testing.assert_allclose(
            jaxloss.kl_divergence_with_log_targets(lp, np.log(t), axis=axis),
            optax.losses.kl_divergence_with_log_targets(lp, np.log(t), axis=axis),
            rtol=2e-6,
        )
    np.testing.assert_allclose(
        jaxloss.kl_divergence(lp, t, where=where), optax.losses.kl_divergence(lp, t, where=where), rtol=2e-6
    )


def test_kl_errors_name_the_arguments_and_shapes():
    with pytest.raises(TypeError, match="`log_predictions` must have a floating dtype"):
        jaxloss.kl_divergence(jnp.zeros(3, jnp.int32), jnp.ones(3))
    with pytest.raises(ValueError, match=r"`targets`.*\(2, 4\)"):
        jaxloss.kl_divergence(jnp.zeros((2, 3)), jnp.ones((2, 4)))
    with pytest.raises(ValueError, match=r"`log_targets`.*\(2, 4\)"):
        jaxloss.kl_divergence_with_log_targets(jnp.zeros((2, 3)), jnp.ones((2, 4)))
    with pytest.raises(TypeError, match="`targets`"):
        jaxloss.kl_divergence(jnp.zeros(3), jnp.array([1j, 0, 0]))


def test_distillation_with_a_trainable_teacher_moves_both_toward_each_other():
    """The README's distillation step: one optax step on student and teacher lowers the divergence."""
    student = jnp.array([[2.0, 0.0, -1.0], [0.0, 1.0, 3.0]])
    teacher = jnp.array([[0.0, 1.0, -jnp.inf], [1.0, 1.0, 1.0]])

    def loss(params):
        s, t = params
        return jnp.mean(jaxloss.kl_divergence_with_log_targets(jax.nn.log_softmax(s), jax.nn.log_softmax(t)))

    params = (student, teacher)
    before = loss(params)
    grads = jax.grad(loss)(params)
    assert np.all(np.isfinite(np.asarray(grads[0]))) and np.all(np.isfinite(np.asarray(grads[1])[..., :2]))
    assert float(grads[1][0, 2]) == 0.0  # the teacher's masked class gets no gradient
    params = jax.tree.map(lambda p, g: p - 0.5 * g, params, grads)
    assert float(loss(params)) < float(before)


# --- all four: dtypes ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16], ids=["bfloat16", "float16"])
@pytest.mark.parametrize(
    "name", ["sigmoid_focal_loss", "poly_loss_cross_entropy", "kl_divergence", "kl_divergence_with_log_targets"]
)
def test_sixteen_bit_inputs_give_a_float32_loss_and_gradients_in_their_dtype(name, dtype):
    rng = np.random.default_rng(4)
    x = rng.uniform(-3, 0, (4, 5))
    y = rng.dirichlet(np.ones(5), 4)
    if name == "kl_divergence_with_log_targets":
        y = np.log(y)
    x16, y16 = jnp.asarray(x, dtype), jnp.asarray(y, dtype)
    cost = getattr(jaxloss, name)
    loss = cost(x16, y16)
    assert loss.dtype == jnp.float32
    np.testing.assert_allclose(loss, cost(x16.astype(jnp.float32), y16.astype(jnp.float32)), rtol=1e-6)
    dx, dy = jax.grad(lambda a, b: jnp.sum(cost(a, b)), (0, 1))(x16, y16)
    assert dx.dtype == dtype and dy.dtype == dtype


# --- the hyperparameters under hypothesis: the rules against autodiff of the reference ------------------------

PROPERTY = settings(max_examples=25, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])


@functools.cache
def _hyper_grads(name: str):
    """jit of {namespace: (loss, grads w.r.t. both arguments)} with the hyperparameters traced."""

    def run(x, y, hyper):
        out = {}
        for key, ns in NAMESPACES.items():
            if name == "sigmoid_focal_loss":

                def cost(x, y, ns=ns):
                    return ns.sigmoid_focal_loss(x, y, gamma=hyper[0], alpha=hyper[1])
            else:

                def cost(x, y, ns=ns):
                    return ns.poly_loss_cross_entropy(x, y, epsilon=hyper[0])

            out[key] = (cost(x, y), jax.grad(lambda x, y, cost=cost: jnp.sum(cost(x, y)), (0, 1))(x, y))
        return out

    return jax.jit(run)


@pytest.mark.parametrize("name", ["sigmoid_focal_loss", "poly_loss_cross_entropy"])
def test_rules_equal_autodiff_of_the_reference_for_any_hyperparameters_in_float64(name):
    @PROPERTY
    @given(
        x=hnp.arrays(np.float64, (3, 4), elements=st.floats(-5.0, 5.0)),
        y=hnp.arrays(np.float64, (3, 4), elements=st.sampled_from([0.0, 1.0]) | st.floats(0.0, 1.0)),
        first=st.floats(0.0, 4.0) if name == "sigmoid_focal_loss" else st.floats(-3.0, 3.0),
        alpha=st.floats(0.0, 1.0),
    )
    def check(x, y, first, alpha):
        with jax.enable_x64(True):
            results = _hyper_grads(name)(x, y, jnp.array([first, alpha]))
            want_loss, want_grads = results["jaxloss.reference"]
            for key in RULES:
                loss, grads = results[key]
                scale = max(1.0, float(np.max(np.abs(want_loss))))
                np.testing.assert_allclose(loss, want_loss, rtol=1e-9, atol=1e-12 * scale, err_msg=key)
                for got, want in zip(grads, want_grads, strict=True):
                    scale = max(1.0, float(np.max(np.abs(want))))
                    np.testing.assert_allclose(got, want, rtol=1e-8, atol=1e-11 * scale, err_msg=key)

    check()
