"""Bad input fails at trace time with the documented exception and a message naming the argument.

Every case is checked twice: called directly, and under ``jax.jit`` with the arrays as tracers
(``axis`` stays static), where the error must come from tracing, before anything is compiled.
"""

from __future__ import annotations

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxloss

NAMESPACES = {"jaxloss": jaxloss, "jaxloss.forward": jaxloss.forward, "jaxloss.reference": jaxloss.reference}

LOGIT_COSTS = (
    "sigmoid_binary_cross_entropy",
    "softmax_cross_entropy",
    "softmax_cross_entropy_with_integer_labels",
    "safe_softmax_cross_entropy",
    "sigmoid_multilabel_cross_entropy",
    "sigmoid_focal_loss",
    "poly_loss_cross_entropy",
)
PROBABILITY_COSTS = ("binary_cross_entropy", "categorical_cross_entropy", "multilabel_cross_entropy")
AXIS_COSTS = (
    "softmax_cross_entropy",
    "softmax_cross_entropy_with_integer_labels",
    "sigmoid_multilabel_cross_entropy",
    "categorical_cross_entropy",
    "multilabel_cross_entropy",
    "poly_loss_cross_entropy",
    "kl_divergence",
    "kl_divergence_with_log_targets",
)
INTEGER = "softmax_cross_entropy_with_integer_labels"

X = jnp.full((2, 3), 0.25, jnp.float32)  # valid logits and valid probabilities
SOFT_LABELS = jnp.full((2, 3), 0.5, jnp.float32)
CLASS_LABELS = jnp.array([0, 2])


def _labels(name):
    return CLASS_LABELS if name == INTEGER else SOFT_LABELS


def _cases(names):
    """(namespace, cost) pairs, with readable ids."""
    return pytest.mark.parametrize(
        "ns, name",
        [(ns, name) for ns in NAMESPACES.values() for name in names],
        ids=[f"{key}.{name}" for key in NAMESPACES for name in names],
    )


def _assert_raises(f, x, labels, exception, argument, *, axis=None, where=None, shapes=()):
    """``f`` raises ``exception`` naming ``argument`` (and each of ``shapes``), eagerly and under jit."""
    kwargs = {} if axis is None else {"axis": axis}
    pattern = re.escape(f"`{argument}`")
    with pytest.raises(exception, match=pattern) as eager:
        f(x, labels, **kwargs) if where is None else f(x, labels, where=where, **kwargs)
    for shape in shapes:
        assert str(tuple(shape)) in str(eager.value), f"the message does not name the shape {shape}"

    if where is None:
        traced = jax.jit(lambda a, b: f(a, b, **kwargs))
        args = (x, labels)
    else:
        traced = jax.jit(lambda a, b, w: f(a, b, where=w, **kwargs))
        args = (x, labels, where)
    with pytest.raises(exception, match=pattern):
        traced.lower(*args)  # tracing and lowering only: the error must not wait for execution


def test_assert_raises_fails_when_nothing_is_raised():
    with pytest.raises(pytest.fail.Exception):
        _assert_raises(jaxloss.softmax_cross_entropy, X, SOFT_LABELS, ValueError, "logits")


@_cases(LOGIT_COSTS)
def test_integer_logits_raise_type_error_naming_logits(ns, name):
    logits = jnp.zeros((2, 3), jnp.int32)
    _assert_raises(getattr(ns, name), logits, _labels(name), TypeError, "logits")


@_cases(LOGIT_COSTS)
def test_boolean_logits_raise_type_error_naming_logits(ns, name):
    logits = jnp.zeros((2, 3), bool)
    _assert_raises(getattr(ns, name), logits, _labels(name), TypeError, "logits")


@_cases(PROBABILITY_COSTS)
def test_integer_probs_raise_type_error_naming_probs(ns, name):
    probs = jnp.ones((2, 3), jnp.int32)
    _assert_raises(getattr(ns, name), probs, SOFT_LABELS, TypeError, "probs")


@_cases([INTEGER])
@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float16], ids=["float32", "float16"])
def test_float_labels_to_the_integer_label_cost_raise_type_error_naming_labels(ns, name, dtype):
    _assert_raises(getattr(ns, name), X, CLASS_LABELS.astype(dtype), TypeError, "labels")


@_cases([INTEGER])
def test_bool_labels_to_the_integer_label_cost_raise_type_error_naming_labels(ns, name):
    _assert_raises(getattr(ns, name), X, jnp.array([True, False]), TypeError, "labels")


@_cases([n for n in (*LOGIT_COSTS, *PROBABILITY_COSTS) if n != INTEGER])
def test_labels_that_do_not_broadcast_raise_value_error_naming_labels(ns, name):
    labels = jnp.full((2, 4), 0.5, jnp.float32)
    _assert_raises(getattr(ns, name), X, labels, ValueError, "labels", shapes=[(2, 3), (2, 4)])


@_cases([INTEGER])
@pytest.mark.parametrize("shape", [(3,), (2, 3), (1, 2)], ids=str)
def test_integer_labels_without_the_batch_shape_raise_value_error_naming_labels(ns, name, shape):
    labels = jnp.zeros(shape, jnp.int32)
    _assert_raises(getattr(ns, name), X, labels, ValueError, "labels", shapes=[shape])


@_cases([n for n in AXIS_COSTS])
@pytest.mark.parametrize("shape", [(2, 4), (3,), (4, 2, 3)], ids=str)
def test_where_that_does_not_broadcast_raises_value_error_naming_where(ns, name, shape):
    where = jnp.ones(shape, bool)
    _assert_raises(getattr(ns, name), X, _labels(name), ValueError, "where", where=where, shapes=[shape])


@_cases([n for n in AXIS_COSTS])
@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float16], ids=["float32", "float16"])
def test_floating_where_raises_type_error_naming_where(ns, name, dtype):
    where = jnp.ones((2, 3), dtype)
    _assert_raises(getattr(ns, name), X, _labels(name), TypeError, "where", where=where)


@_cases([n for n in AXIS_COSTS])
@pytest.mark.parametrize("axis", [2, -3, (0, 2), (-3,), (1, 5)], ids=str)
def test_axis_out_of_range_raises_value_error_naming_axis(ns, name, axis):
    _assert_raises(getattr(ns, name), X, _labels(name), ValueError, "axis", axis=axis)


@_cases([n for n in AXIS_COSTS])
@pytest.mark.parametrize("axis", [(1, 1), (1, -1), (0, -2)], ids=str)
def test_repeated_axis_raises_value_error_naming_axis(ns, name, axis):
    _assert_raises(getattr(ns, name), X, _labels(name), ValueError, "axis", axis=axis)


@pytest.mark.parametrize("ns", list(NAMESPACES.values()), ids=list(NAMESPACES))
def test_valid_arguments_of_the_same_shapes_raise_nothing(ns):
    # The error tests above differ from these calls only in the argument they name.
    where = jnp.array([[True, False, True], [False, True, True]])
    for name in AXIS_COSTS:
        f = getattr(ns, name)
        assert np.all(np.isfinite(np.asarray(f(X, _labels(name), axis=-1, where=where))))
        assert f(X, _labels(name), axis=(1,), where=jnp.array([True, False])).shape == (2,)
    for name in ("sigmoid_binary_cross_entropy", "binary_cross_entropy"):
        assert getattr(ns, name)(X, SOFT_LABELS).shape == (2, 3)
    assert ns.safe_softmax_cross_entropy(X, SOFT_LABELS).shape == (2,)


def _where_users():
    """Every public entry point that takes ``where``, as f(where) on a batch of two examples."""
    logits = jnp.array([[0.5, -1.0, 2.0, 0.0], [1.0, 1.0, -3.0, 0.25]])
    labels = jnp.array([2, 0])
    hidden, weight = jnp.ones((2, 3)), jnp.linspace(-1.0, 1.0, 12).reshape(3, 4)
    mesh = jax.make_mesh((1,), ("vocab",), devices=jax.devices("cpu")[:1])
    sharded_cost = jax.jit(  # eager shard_map runs op by op: 30 times slower here
        jax.shard_map(
            lambda z, y, m: jaxloss.sharded.softmax_cross_entropy_with_integer_labels(z, y, where=m, axis_name="vocab"),
            mesh=mesh,
            in_specs=(jax.P(None, "vocab"), jax.P(), jax.P()),
            out_specs=jax.P(),
        )
    )
    return {
        "softmax_cross_entropy_with_integer_labels": lambda m: jaxloss.softmax_cross_entropy_with_integer_labels(
            logits, labels, where=m
        ),
        "mean": lambda m: jaxloss.mean(jnp.array([1.0, 3.0]), where=m),
        "linear_cross_entropy": lambda m: jaxloss.linear_cross_entropy(hidden, weight, labels, where=m),
        "sharded": lambda m: sharded_cost(
            jax.device_put(logits, jax.NamedSharding(mesh, jax.P(None, "vocab"))), labels, m
        ),
    }


@pytest.mark.parametrize("user", list(_where_users()))
def test_where_has_one_dtype_rule_everywhere_integers_count_as_booleans_floats_raise_type_error(user):
    fn = _where_users()[user]
    as_bool = np.asarray(fn(jnp.array([True, False])))
    np.testing.assert_array_equal(np.asarray(fn(jnp.array([1, 0], jnp.int32))), as_bool)
    np.testing.assert_array_equal(np.asarray(fn(jnp.array([7, 0], jnp.uint8))), as_bool)
    with pytest.raises(
        TypeError, match=r"`where` must be a boolean \(or integer\) mask, got float32 with shape \(2,\)"
    ):
        fn(jnp.array([1.0, 0.0]))


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (
            lambda: jaxloss.seeds.softmax_cross_entropy_grad(jnp.array([[1, 2]]), jnp.array([[0.0, 1.0]])),
            TypeError,
            "`logits` must have a floating dtype, got int32",
        ),
        (
            lambda: jaxloss.seeds.sigmoid_binary_cross_entropy_grad(jnp.array([True]), jnp.array([1.0])),
            TypeError,
            "`logits` must have a floating dtype, got bool",
        ),
        (
            lambda: jaxloss.seeds.binary_cross_entropy_grad(jnp.array([0.5j]), jnp.array([1.0])),
            TypeError,
            "`probs` must have a floating dtype, got complex64",
        ),
        (
            lambda: jaxloss.seeds.softmax_cross_entropy_with_integer_labels_grad(
                jnp.zeros((2, 3)), jnp.array([0.0, 1.0])
            ),
            TypeError,
            "`labels` must have an integer dtype, got float32",
        ),
        (lambda: jaxloss.seeds.soft_cap_grad(jnp.zeros(3), 0.0), ValueError, r"`soft_cap` must lie in \(0.0, inf\)"),
        (lambda: jaxloss.seeds.soft_cap_grad(jnp.zeros(3), jnp.array(-1.0)), ValueError, r"`soft_cap` must lie in"),
        (lambda: jaxloss.seeds.z_loss_grad(jnp.zeros(3), -0.5), ValueError, r"`z_loss` must lie in \[0.0, inf\)"),
        (
            lambda: jaxloss.seeds.softmax_cross_entropy_grad(jnp.zeros((2, 3)), jnp.zeros((2, 4))),
            ValueError,
            r"\(2, 3\).*\(2, 4\)",
        ),
    ],
    ids=[
        "integer logits",
        "bool logits",
        "complex probs",
        "float labels",
        "zero cap",
        "negative array cap",
        "negative z_loss",
        "shapes",
    ],
)
def test_the_public_seeds_check_their_arguments_as_the_costs_do(call, error, message):
    with pytest.raises(error, match=message):
        call()


@pytest.mark.parametrize("namespace", NAMESPACES)
@pytest.mark.parametrize("cost", ["softmax_cross_entropy", "safe_softmax_cross_entropy", INTEGER])
def test_zero_classes_raise_naming_the_logits_in_every_namespace(namespace, cost):
    labels = jnp.zeros((2,), jnp.int32) if cost == INTEGER else jnp.zeros((2, 0))
    with pytest.raises(ValueError, match=r"`logits` with shape \(2, 0\) has no classes along axis \(1,\)"):
        getattr(NAMESPACES[namespace], cost)(jnp.zeros((2, 0)), labels)


def test_zero_classes_in_the_fused_output_layer_raise_naming_the_weight():
    with pytest.raises(ValueError, match=r"`weight` with shape \(3, 0\) has no classes"):
        jaxloss.linear_cross_entropy(jnp.zeros((2, 3)), jnp.zeros((3, 0)), jnp.zeros((2,), jnp.int32))


@pytest.mark.parametrize(
    ("call", "named"),
    [
        (lambda: jaxloss.softmax_cross_entropy(None, jnp.zeros(3)), "logits"),
        (lambda: jaxloss.softmax_cross_entropy_with_integer_labels(jnp.zeros(3), None), "labels"),
        (lambda: jaxloss.binary_cross_entropy(jnp.full(3, 0.5), None), "labels"),
        (lambda: jaxloss.linear_cross_entropy(None, jnp.zeros((3, 4)), jnp.zeros((2,), jnp.int32)), "hidden"),
        (lambda: jaxloss.mean(None), "losses"),
        (lambda: jaxloss.seeds.sigmoid_binary_cross_entropy_grad(None, jnp.zeros(3)), "logits"),
    ],
)
def test_none_inputs_raise_type_error_naming_the_argument(call, named):
    with pytest.raises(TypeError, match=rf"`{named}` must be an array, got None"):
        call()
