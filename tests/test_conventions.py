"""The conventions that the comparison of the namespaces rests on, the same in all three.

``jaxloss.reference`` is the article's literal formula: it may overflow where float arithmetic
does, but its masks, NaN propagation and label conventions are those of ``jaxloss`` and
``jaxloss.forward`` (issue 14, part 4).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxloss

NAMESPACES = {"jaxloss": jaxloss, "jaxloss.forward": jaxloss.forward, "jaxloss.reference": jaxloss.reference}
SOFTMAX = ("softmax_cross_entropy", "safe_softmax_cross_entropy")
PROBABILITY = ("binary_cross_entropy", "categorical_cross_entropy", "multilabel_cross_entropy")
INF = np.inf


def _loss_and_grad(cost, x, *args, **kwargs):
    """The losses of ``cost`` and the gradient of their sum, from one compiled program."""

    def total(x):
        loss = cost(x, *args, **kwargs)
        return jnp.sum(loss), loss

    grad, loss = jax.jit(jax.grad(total, has_aux=True))(x)
    return np.asarray(loss), np.asarray(grad)


@pytest.mark.parametrize("namespace", NAMESPACES)
def test_nan_in_gives_nan_out_in_its_row_only(namespace):
    ns = NAMESPACES[namespace]
    logits = jnp.array([[np.nan, 0.0, 1.0], [0.0, 1.0, 2.0]])
    soft = jnp.array([[0.0, 1.0, 0.0], [0.0, 1.0, 0.0]])
    for name in SOFTMAX:
        loss = np.asarray(getattr(ns, name)(logits, soft))
        assert np.isnan(loss[0]) and np.isfinite(loss[1]), (name, loss)
    loss = np.asarray(ns.softmax_cross_entropy_with_integer_labels(logits, jnp.array([1, 1])))
    assert np.isnan(loss[0]) and np.isfinite(loss[1]), loss
    loss = np.asarray(ns.sigmoid_binary_cross_entropy(jnp.array([np.nan, 0.0, 1.0]), jnp.array([0.0, np.nan, 1.0])))
    assert np.isnan(loss[:2]).all() and np.isfinite(loss[2]), loss
    probs = jnp.array([[np.nan, 0.5], [0.5, 0.5]])
    for name in ("categorical_cross_entropy", "multilabel_cross_entropy"):
        loss = np.asarray(getattr(ns, name)(probs, jnp.array([[0.0, 1.0], [0.0, 1.0]])))
        assert np.isnan(loss[0]) and np.isfinite(loss[1]), (name, loss)


@pytest.mark.parametrize("namespace", NAMESPACES)
def test_labels_outside_the_classes_give_nan_loss_and_nan_gradient(namespace):
    cost = NAMESPACES[namespace].softmax_cross_entropy_with_integer_labels
    logits = jnp.array([[0.0, 1.0, 2.0]] * 3)
    loss, grad = _loss_and_grad(cost, logits, jnp.array([3, -1, 1]))
    assert np.isnan(loss[:2]).all() and np.isfinite(loss[2]), loss
    assert np.isnan(grad[:2]).all() and np.isfinite(grad[2]).all(), grad


@pytest.mark.parametrize("namespace", NAMESPACES)
def test_a_row_of_only_minus_inf_costs_zero_with_a_zero_gradient(namespace):
    ns = NAMESPACES[namespace]
    logits = jnp.array([[-INF, -INF, -INF], [0.0, -INF, 1.0]])
    soft = jnp.array([[0.0, 1.0, 0.0], [0.5, 0.0, 0.5]])
    for name in SOFTMAX:
        loss, grad = _loss_and_grad(getattr(ns, name), logits, soft)
        assert loss[0] == 0.0 and np.isfinite(loss[1]), (name, loss)
        np.testing.assert_array_equal(grad[0], 0.0)
        for options in ({"label_smoothing": 0.1, "z_loss": 1e-3}, {"soft_cap": 5.0}):
            loss, grad = _loss_and_grad(ns.softmax_cross_entropy, logits, soft, **options)
            assert loss[0] == 0.0, (options, loss)
            np.testing.assert_array_equal(grad[0], 0.0)
    loss, grad = _loss_and_grad(ns.softmax_cross_entropy_with_integer_labels, logits, jnp.array([1, 0]))
    assert loss[0] == 0.0 and np.isfinite(loss[1]), loss
    np.testing.assert_array_equal(grad[0], 0.0)


@pytest.mark.parametrize("namespace", NAMESPACES)
def test_zero_log_zero_is_zero_at_probabilities_of_exactly_0_and_1(namespace):
    ns = NAMESPACES[namespace]
    loss = np.asarray(ns.binary_cross_entropy(jnp.array([0.0, 1.0]), jnp.array([0.0, 1.0])))
    np.testing.assert_array_equal(loss, 0.0)  # -0.0 == 0.0: the sign of an exact zero is free
    loss = np.asarray(ns.categorical_cross_entropy(jnp.array([[0.0, 1.0]]), jnp.array([[0.0, 1.0]])))
    np.testing.assert_array_equal(loss, 0.0)
    loss = np.asarray(ns.softmax_cross_entropy(jnp.array([[0.0, -INF]]), jnp.array([[1.0, 0.0]])))
    np.testing.assert_array_equal(loss, 0.0)


@pytest.mark.parametrize("namespace", NAMESPACES)
def test_examples_dropped_by_where_cost_zero_with_a_zero_gradient(namespace):
    ns = NAMESPACES[namespace]
    logits = jnp.array([[np.nan, 0.0, 1.0], [0.0, 1.0, 2.0]])
    keep = jnp.array([False, True])
    loss, grad = _loss_and_grad(ns.softmax_cross_entropy_with_integer_labels, logits, jnp.array([7, 1]), where=keep)
    assert loss[0] == 0.0 and np.isfinite(loss[1]), loss
    np.testing.assert_array_equal(grad[0], 0.0)
    loss, grad = _loss_and_grad(ns.softmax_cross_entropy, logits, jnp.array([[0.0, 1.0, 0.0]] * 2), where=keep)
    assert loss[0] == 0.0 and np.isfinite(loss[1]), loss
    np.testing.assert_array_equal(grad[0], 0.0)


@pytest.mark.parametrize("namespace", NAMESPACES)
def test_where_means_the_same_with_options_that_change_nothing(namespace):
    """A class mask that drops the label's class: the label still reads its logit (optax's
    meaning), whether or not a no-op option is passed (issue 14, part 5)."""
    cost = NAMESPACES[namespace].softmax_cross_entropy_with_integer_labels
    logits = jnp.array([[0.5, -1.0, 2.0, 0.0], [1.0, 1.0, -3.0, 0.25]])
    labels = jnp.array([2, 0])
    keep = jnp.array([[True, True, False, True], [True, True, True, True]])
    plain, plain_grad = _loss_and_grad(cost, logits, labels, where=keep)
    no_ops = {
        "weights=ones": {"weights": jnp.ones(4)},
        "label_smoothing=0": {"label_smoothing": 0.0},
        "z_loss=0": {"z_loss": 0.0},
    }
    for what, options in no_ops.items():
        loss, grad = _loss_and_grad(cost, logits, labels, where=keep, **options)
        np.testing.assert_allclose(loss, plain, rtol=1e-6, err_msg=what)
        np.testing.assert_allclose(grad, plain_grad, rtol=1e-6, atol=1e-7, err_msg=what)
    traced = jax.jit(lambda z_loss: cost(logits, labels, where=keep, z_loss=z_loss))(0.0)
    np.testing.assert_allclose(np.asarray(traced), plain, rtol=1e-6)
    # optax's meaning: lse over the kept classes minus the label's own logit.
    want = np.log(np.exp([0.5, -1.0, 0.0]).sum()) - 2.0
    np.testing.assert_allclose(plain[0], want, rtol=1e-6)


@pytest.mark.parametrize("namespace", NAMESPACES)
def test_a_masked_class_stays_masked_under_the_soft_cap(namespace):
    """c tanh(z/c) would send a -inf logit to -c and give a masked class probability."""
    ns = NAMESPACES[namespace]
    masked = jnp.array([[0.5, -INF, 2.0]])
    kept = jnp.array([[0.5, 2.0]])
    loss, grad = _loss_and_grad(ns.softmax_cross_entropy_with_integer_labels, masked, jnp.array([2]), soft_cap=1.0)
    want = ns.softmax_cross_entropy_with_integer_labels(kept, jnp.array([1]), soft_cap=1.0)
    np.testing.assert_allclose(loss, np.asarray(want), rtol=1e-6)
    assert grad[0, 1] == 0.0
    loss, grad = _loss_and_grad(ns.softmax_cross_entropy, masked, jnp.array([[0.5, 0.0, 0.5]]), soft_cap=1.0)
    want = ns.softmax_cross_entropy(kept, jnp.array([[0.5, 0.5]]), soft_cap=1.0)
    np.testing.assert_allclose(loss, np.asarray(want), rtol=1e-6)
    assert grad[0, 1] == 0.0


def test_a_minus_inf_bias_masks_a_class_of_the_fused_output_layer_under_the_soft_cap():
    hidden = jnp.array([[1.0, -0.5]])
    weight = jnp.array([[0.5, 1.0, -1.0], [0.25, 0.0, 2.0]])
    bias = jnp.array([0.0, -INF, 0.0])
    loss = jaxloss.linear_cross_entropy(hidden, weight, jnp.array([2]), bias=bias, soft_cap=1.0)
    want = jaxloss.softmax_cross_entropy_with_integer_labels(hidden @ weight[:, [0, 2]], jnp.array([1]), soft_cap=1.0)
    np.testing.assert_allclose(np.asarray(loss), np.asarray(want), rtol=1e-6)


@pytest.mark.parametrize("namespace", NAMESPACES)
def test_probabilities_outside_zero_one_give_nan(namespace):
    ns = NAMESPACES[namespace]
    probs = jnp.array([[1.5, 0.25], [-0.5, 0.5], [INF, 0.5], [0.5, 0.5]])
    labels = jnp.array([[0.0, 1.0]] * 4)
    for name in PROBABILITY:
        loss = np.asarray(getattr(ns, name)(probs, labels))
        assert np.isnan(loss[:3]).all() if loss.ndim == 1 else np.isnan(loss[:3]).any(-1).all(), (name, loss)
        assert np.isfinite(loss[3]).all(), (name, loss)


@pytest.mark.parametrize("namespace", NAMESPACES)
@pytest.mark.parametrize("traced", [False, True])
def test_a_nan_pos_weight_gives_nan_for_every_element_it_weighs(namespace, traced):
    """NaN in, NaN out: where the label is 0 too (its term is 0 * w+, as in the literal formula and
    torch), in the loss and in both gradients, in every namespace."""
    cost = NAMESPACES[namespace].sigmoid_binary_cross_entropy
    logits, labels = jnp.array([0.5, -1.0, 2.0]), jnp.array([0.0, 1.0, 0.3])

    def loss(z, y, p):
        return cost(z, y, pos_weight=p)

    run = jax.jit(loss) if traced else loss
    assert np.all(np.isnan(run(logits, labels, jnp.nan)))
    grads = jax.grad(lambda z, y: jnp.sum(loss(z, y, jnp.nan)), argnums=(0, 1))(logits, labels)
    assert all(np.all(np.isnan(g)) for g in grads)
    # a finite weight leaves the y = 0 element its plain loss
    np.testing.assert_allclose(run(logits, labels, 2.0)[0], jax.nn.softplus(0.5), rtol=1e-6)


def test_mean_weights_count_examples_and_must_not_be_negative():
    """Weights that cancel ([1, -1]) would report two kept examples as none: a concrete negative
    weight raises, a traced one gives NaN; all-zero kept weights are the empty mean, 0."""
    losses = jnp.array([1.0, 2.0, 3.0, 4.0])
    with pytest.raises(ValueError, match="`weights` must be non-negative"):
        jaxloss.mean(losses, weights=jnp.array([1.0, -1.0, 0.0, 0.0]))
    traced = jax.jit(lambda w: jaxloss.mean(losses, weights=w))
    assert np.isnan(traced(jnp.array([1.0, -1.0, 0.0, 0.0])))
    assert float(traced(jnp.array([0.0, 0.0, 0.0, 0.0]))) == 0.0
    assert float(jaxloss.mean(losses, weights=jnp.array([1.0, 1.0, 0.0, 2.0]))) == 2.5
