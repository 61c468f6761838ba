"""The closed-form rules against autodiff of the article's formulas, and against the seeds.

* Property tests (hypothesis): for every cost, the ``custom_vjp`` rules of ``jaxloss`` and the
  ``custom_jvp`` rules of ``jaxloss.forward`` give the gradient that ``jax.grad`` finds for
  ``jaxloss.reference``, with respect to the inputs and to floating labels, over axes, ``where``
  masks (class- and batch-shaped, fully masked rows included), ``-inf`` logits (masked classes),
  hard and soft labels (soft ones that do not sum to one) and a random per-example cotangent.
* Per-example seeds: ``vmap(grad)`` row by row, the gradient of the mean (the article's
  ``dJ/dZ = (A - Y)/m``) and ``vjp`` with a per-example cotangent, against ``jaxloss.seeds`` and
  the article's formulas written out in NumPy.

Tolerances. The reference forms ``p - 1`` and ``1 - sigma(z)`` by subtraction, so its own error
is a few ulps of the gradient's scale (the closed forms keep those digits). The comparisons are
``|rule - ref| <= rtol |ref| + atol * max(1, max |ref|)`` with ``rtol`` 1e-12 (float64) and 1e-5
(float32), and ``atol`` 16 ulps (float64) and 1e-6 (float32). For the same reason the sigmoid
costs are compared at ``|z| <= 6`` (float64) and ``|z| <= 3`` (float32): past that the
reference's ``1 - sigma(z)`` loses ``e^|z|`` ulps; the softmax costs at ``|z| <= 15``.

Everything is compiled once per (cost, layout, dtype): the layouts (shape, axis, kind of mask)
are a short list per cost, and hypothesis varies values, masks, labels and cotangents.
"""

from __future__ import annotations

import functools
import math

import hypothesis.extra.numpy as hnp
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import jaxloss
from jaxloss import seeds
from jaxloss._costs import NAMES

RULES = {"jaxloss": jaxloss, "jaxloss.forward": jaxloss.forward}
EVERY = {**RULES, "jaxloss.reference": jaxloss.reference}

ELEMENTWISE = ("sigmoid_binary_cross_entropy", "binary_cross_entropy", "sigmoid_focal_loss")
PROBABILITY = ("binary_cross_entropy", "categorical_cross_entropy", "multilabel_cross_entropy")
SOFTMAX = ("softmax_cross_entropy", "safe_softmax_cross_entropy")
INTEGER = "softmax_cross_entropy_with_integer_labels"
POLY = "poly_loss_cross_entropy"
KL = ("kl_divergence", "kl_divergence_with_log_targets")

# (shape, axis, mask): axis None means the cost takes no axis argument; mask is None, "class"
# (the shape of the inputs) or "batch" (the shape without the class axes).
LAYOUTS = {
    "sigmoid_binary_cross_entropy": [((3, 5), None, None), ((1, 2), None, None)],
    "softmax_cross_entropy": [
        ((3, 5), -1, None),
        ((5, 3), 0, "class"),
        ((1, 2), -1, "batch"),
        ((2, 3, 4), (1, 2), "class"),
    ],
    INTEGER: [((3, 5), -1, None), ((5, 3), 0, "class"), ((1, 2), -1, "batch"), ((2, 3, 4), (1, 2), "class")],
    "safe_softmax_cross_entropy": [((3, 5), None, None), ((1, 2), None, None)],
    "sigmoid_multilabel_cross_entropy": [((3, 5), -1, "class"), ((5, 3), 0, "batch"), ((1, 2), -1, None)],
    "binary_cross_entropy": [((3, 5), None, None)],
    "categorical_cross_entropy": [((3, 5), -1, "class"), ((5, 3), 0, "batch"), ((2, 3, 4), (1, 2), None)],
    "multilabel_cross_entropy": [((3, 5), -1, "batch"), ((5, 3), 0, "class")],
    "sigmoid_focal_loss": [((3, 5), None, None), ((1, 2), None, None)],
    POLY: [((3, 5), -1, None), ((5, 3), 0, "class"), ((1, 2), -1, "batch"), ((2, 3, 4), (1, 2), "class")],
    "kl_divergence": [((3, 5), -1, "class"), ((5, 3), 0, "batch"), ((2, 3, 4), (1, 2), None)],
    "kl_divergence_with_log_targets": [((3, 5), -1, "class"), ((5, 3), 0, "batch"), ((2, 3, 4), (1, 2), None)],
}

TOLERANCE = {np.float64: (1e-12, 16 * np.finfo(np.float64).eps), np.float32: (1e-5, 1e-6)}
DTYPES = [pytest.param(np.float64, id="float64"), pytest.param(np.float32, id="float32")]
PROPERTY = settings(
    max_examples=15,
    deadline=None,
    database=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def assert_close(actual, expected, dtype, what=""):
    """``|actual - expected| <= rtol |expected| + atol max(1, max |expected|)``, NaNs in the same places."""
    rtol, atol = TOLERANCE[dtype]
    expected = np.asarray(expected, np.float64)
    actual = np.asarray(actual, np.float64)
    assert actual.shape == expected.shape, what
    scale = max(1.0, float(np.max(np.abs(expected), initial=0.0, where=np.isfinite(expected))))
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol * scale, err_msg=what)


def class_axes(name: str, shape: tuple[int, ...], axis) -> tuple[int, ...]:
    if name in ELEMENTWISE:
        return ()
    if axis is None:
        return (len(shape) - 1,)
    return tuple(sorted(a % len(shape) for a in (axis if isinstance(axis, tuple) else (axis,))))


def kwargs_of(axis, where) -> dict:
    kwargs = {}
    if axis is not None:
        kwargs["axis"] = axis
    if where is not None:
        kwargs["where"] = where
    return kwargs


@functools.cache
def weighted_grads(name: str, axis):
    """jit of ``{namespace: grad of sum(cotangent * cost)}`` w.r.t. the inputs (and floating labels)."""
    argnums = 0 if name == INTEGER else (0, 1)

    def grads(x, y, where, cotangent):
        out = {}
        for key, ns in EVERY.items():

            def weighted(x, y, ns=ns):
                return jnp.sum(cotangent * getattr(ns, name)(x, y, **kwargs_of(axis, where)))

            out[key] = jax.grad(weighted, argnums=argnums)(x, y)
            if name == INTEGER:
                out[key] = (out[key],)
        return out

    return jax.jit(grads)


def one_hot(indices, shape: tuple[int, ...], axes: tuple[int, ...]) -> np.ndarray:
    """Boolean one-hot of flat class ``indices`` (the batch shape) over the class ``axes`` of ``shape``, in C order."""
    tail = range(len(shape) - len(axes), len(shape))
    moved = np.moveaxis(np.zeros(shape, bool), axes, tail)
    flat = moved.reshape((*moved.shape[: len(shape) - len(axes)], -1))
    np.put_along_axis(flat, np.asarray(indices, np.int64)[..., None], True, axis=-1)
    return np.ascontiguousarray(np.moveaxis(flat.reshape(moved.shape), tail, axes))


@st.composite
def cases(draw, name: str, dtype, layout):
    """Inputs, labels, mask and cotangent for ``name`` in ``layout``."""
    shape, axis, mask = layout
    axes = class_axes(name, shape, axis)
    batch_shape = tuple(n for d, n in enumerate(shape) if d not in axes)
    width = np.finfo(dtype).bits
    if name in PROBABILITY:
        low, high = 0.0625, 0.9375  # probabilities away from 0 and 1, exact in float32
    elif "sigmoid" in name:
        low, high = (-6.0, 6.0) if dtype == np.float64 else (-3.0, 3.0)
    else:
        low, high = -15.0, 15.0
    x = draw(hnp.arrays(dtype, shape, elements=st.floats(low, high, width=width)))
    num_classes = math.prod(shape[a] for a in axes)
    if name == INTEGER:
        y = draw(hnp.arrays(np.int32, batch_shape, elements=st.integers(0, num_classes - 1)))
    else:
        kind = draw(
            st.sampled_from(
                ["hard", "soft", "normalised"]
                if axes and name in (*SOFTMAX, POLY, "categorical_cross_entropy", *KL)
                else ["hard", "soft"]
            )
        )
        if kind == "soft":
            # Per-class weights in [0, 1]: rows sum to anything in [0, C], rarely to one.
            y = draw(hnp.arrays(dtype, shape, elements=st.floats(0.0, 1.0, width=width)))
        elif kind == "normalised":
            raw = draw(hnp.arrays(dtype, shape, elements=st.floats(0.0625, 1.0, width=width)))
            y = (raw / raw.sum(axis=axes, keepdims=True)).astype(dtype)
        elif axes and name not in ("sigmoid_multilabel_cross_entropy", "multilabel_cross_entropy"):
            hot = draw(hnp.arrays(np.int64, batch_shape, elements=st.integers(0, num_classes - 1)))
            y = one_hot(hot, shape, axes).astype(dtype)
        else:
            y = draw(hnp.arrays(dtype, shape, elements=st.sampled_from([0.0, 1.0])))
    if name in KL:
        # The reference's t * (1/t) in d(t log t)/dt flushes to 0 for a subnormal cotangent * t.
        y = np.where(y < 1e-30, 0.0, y).astype(dtype)
    if name == "kl_divergence_with_log_targets":
        # Log-targets in [-4, 0], and -inf (a zero-probability class) where the labels are 0.
        y = np.where(y == 0, -np.inf, np.log(np.maximum(y, 0.0625)) / 0.7).astype(dtype)
    if name in (*SOFTMAX, INTEGER, POLY) and draw(st.booleans()):
        # -inf logits are masked classes: zero probability, zero gradient. They carry no label
        # weight (their loss would be infinite), and an integer label never points at one.
        dropped = draw(hnp.arrays(np.bool_, shape)) & ~(one_hot(y, shape, axes) if name == INTEGER else y != 0)
        x = np.where(dropped, -np.inf, x).astype(dtype)
    where = None
    if mask is not None:
        where = draw(hnp.arrays(np.bool_, shape if mask == "class" else batch_shape))
    cotangent = draw(hnp.arrays(dtype, batch_shape, elements=st.floats(-2.0, 2.0, width=width)))
    return x, y, axis, where, cotangent


def check_rules_against_reference(name, dtype, case):
    x, y, axis, where, cotangent = case
    grads = weighted_grads(name, axis)(x, y, where, cotangent)
    reference = grads["jaxloss.reference"]
    for key in RULES:
        assert len(grads[key]) == len(reference)
        for arg, got, want in zip(("inputs", "labels"), grads[key], reference, strict=False):
            assert got is not None
            assert got.dtype == dtype
            # Compared wherever the reference is finite (it is NaN where, say, the only kept
            # classes have -inf logits: exp(-inf)/0).
            finite = np.isfinite(np.asarray(want))
            what = f"{key}.{name}: gradient w.r.t. the {arg}"
            assert_close(np.where(finite, got, 0.0), np.where(finite, want, 0.0), dtype, what)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    ("name", "layout"),
    [
        pytest.param(name, layout, id=f"{name}-{layout[0]}-axis{layout[1]}-mask{layout[2]}")
        for name in NAMES
        for layout in LAYOUTS[name]
    ],
)
def test_closed_form_gradients_equal_autodiff_of_reference(name, layout, dtype):
    @PROPERTY
    @given(case=cases(name, dtype, layout))
    def check(case):
        if dtype == np.float64:
            with jax.enable_x64(True):
                check_rules_against_reference(name, dtype, case)
        else:
            check_rules_against_reference(name, dtype, case)

    check()


@pytest.mark.parametrize("name", [n for n in NAMES if n != INTEGER])
def test_label_gradient_is_present_and_not_silently_zero(name, x64):
    rng = np.random.default_rng(0)
    shape = (3, 5)
    x = rng.uniform(0.1, 0.9, shape) if name in PROBABILITY else rng.uniform(-3, 3, shape)
    y = rng.uniform(0.0, 1.0, shape)
    for key, ns in EVERY.items():
        dy = jax.jit(jax.grad(lambda x, y, ns=ns: jnp.sum(getattr(ns, name)(x, y)), argnums=1))(x, y)
        assert dy is not None
        assert dy.shape == shape
        assert np.all(np.asarray(dy) != 0), f"{key}.{name}: a zero label gradient at a generic point"


# --- masks: fully masked rows and dropped classes --------------------------------------------------------------

MASKED = (
    "softmax_cross_entropy",
    INTEGER,
    POLY,
    *KL,
    "sigmoid_multilabel_cross_entropy",
    "categorical_cross_entropy",
    "multilabel_cross_entropy",
)


@pytest.mark.parametrize("mask", ["class", "batch"])
@pytest.mark.parametrize("name", MASKED)
def test_fully_masked_rows_cost_zero_and_get_zero_gradient_like_reference(name, mask, x64):
    rng = np.random.default_rng(6)
    x = rng.uniform(0.1, 0.9, (3, 5)) if name in PROBABILITY else rng.uniform(-3.0, 3.0, (3, 5))
    y = np.array([0, 4, 2], np.int32) if name == INTEGER else rng.uniform(0.0, 1.0, (3, 5))
    if mask == "class":
        where = rng.uniform(size=(3, 5)) > 0.3
        where[1] = False
    else:
        where = np.array([True, False, True])
    argnums = 0 if name == INTEGER else (0, 1)
    results = {}
    for key, ns in EVERY.items():
        cost = getattr(ns, name)

        def pulled(x, y, cost=cost):
            """The losses, the gradient of their sum and that of the masked row's loss alone: one program."""
            wrt = (x,) if argnums == 0 else (x, y)
            losses, pullback = jax.vjp(
                lambda *a: cost(*a, where=where) if argnums else cost(a[0], y, where=where), *wrt
            )
            return losses, pullback(jnp.ones_like(losses)), pullback(jnp.zeros_like(losses).at[1].set(1.0))

        losses, full, grads = jax.jit(pulled)(x, y)
        full = full[0] if argnums == 0 else full
        results[key] = (losses, full)
        loss = losses[1]
        assert loss == 0.0, key
        for g in jax.tree.leaves(grads):
            assert np.all(np.asarray(g) == 0.0), f"{key}.{name}: a fully masked row passes a gradient"
    for key in RULES:
        assert_close(results[key][0], results["jaxloss.reference"][0], np.float64, f"{key}.{name} loss")
        for got, want in zip(
            jax.tree.leaves(results[key][1]), jax.tree.leaves(results["jaxloss.reference"][1]), strict=True
        ):
            assert_close(got, want, np.float64, f"{key}.{name} gradient")


@pytest.mark.parametrize("namespace", list(RULES))
def test_integer_labels_classes_dropped_by_where_get_zero_gradient_when_kept_logits_are_minus_inf(namespace):
    """The loss lse(kept z) - z_l does not depend on a class that ``where`` drops (other than the label),
    so its gradient is 0 (optax and the reference agree); a -inf logit gets zero probability and gradient."""
    z = jnp.array([[0.0, -jnp.inf, 0.0, 0.0], [0.5, -1.0, 2.0, 0.0]])
    where = jnp.array([[False, True, False, False], [True, True, False, True]])
    labels = jnp.array([0, 3])
    cost = RULES[namespace].softmax_cross_entropy_with_integer_labels
    grad = np.asarray(jax.grad(lambda z: jnp.sum(cost(z, labels, where=where)))(z))
    reference = np.asarray(
        jax.grad(
            lambda z: jnp.sum(jaxloss.reference.softmax_cross_entropy_with_integer_labels(z, labels, where=where))
        )(z)
    )
    np.testing.assert_allclose(grad[1], reference[1], rtol=1e-6)  # an ordinary row, for contrast
    assert grad[0, 2] == grad[0, 3] == reference[0, 2] == reference[0, 3] == 0.0, grad[0]
    assert grad[0, 1] == 0.0, grad[0]


# --- the general softmax seed: a * sum(y) - y -----------------------------------------------------------------


@pytest.mark.parametrize("label_sum", [0.3, 2.5])
@pytest.mark.parametrize("name", SOFTMAX)
def test_softmax_gradient_is_a_times_label_sum_minus_y_for_unnormalised_labels(name, label_sum, x64):
    rng = np.random.default_rng(1)
    z = rng.uniform(-4.0, 4.0, (3, 5))
    raw = rng.uniform(0.1, 1.0, (3, 5))
    y = label_sum * raw / raw.sum(axis=-1, keepdims=True)
    a = np.exp(z - z.max(-1, keepdims=True))
    a /= a.sum(-1, keepdims=True)
    expected = a * y.sum(-1, keepdims=True) - y
    wrong = a - y
    assert np.max(np.abs(expected - wrong)) > 0.1  # a - y would be told apart
    for key, ns in EVERY.items():
        got = jax.jit(jax.grad(lambda z, ns=ns: jnp.sum(getattr(ns, name)(z, y))))(z)
        np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-15, err_msg=key)
    np.testing.assert_allclose(seed_of("softmax_cross_entropy", z, y), expected, rtol=1e-12, atol=1e-15)


# --- per-example seeds ----------------------------------------------------------------------------------------


@functools.partial(jax.jit, static_argnums=(0, 3))
def seed_of(name: str, x, y, axis=-1):
    """The seed of ``jaxloss.seeds`` for ``name``: d(per-example loss)/d(input)."""
    return {
        "sigmoid_binary_cross_entropy": lambda: seeds.sigmoid_binary_cross_entropy_grad(x, y),
        "softmax_cross_entropy": lambda: seeds.softmax_cross_entropy_grad(x, y, axis),
        INTEGER: lambda: seeds.softmax_cross_entropy_with_integer_labels_grad(x, y, axis),
        "safe_softmax_cross_entropy": lambda: seeds.softmax_cross_entropy_grad(x, y, axis),
        "sigmoid_multilabel_cross_entropy": lambda: seeds.sigmoid_multilabel_cross_entropy_grad(x, y),
        "binary_cross_entropy": lambda: seeds.binary_cross_entropy_grad(x, y),
        "categorical_cross_entropy": lambda: seeds.categorical_cross_entropy_grad(x, y),
        "multilabel_cross_entropy": lambda: seeds.multilabel_cross_entropy_grad(x, y),
        "sigmoid_focal_loss": lambda: seeds.sigmoid_focal_loss_grad(x, y),
        POLY: lambda: seeds.poly_loss_cross_entropy_grad(x, y, axis=axis),
        "kl_divergence": lambda: seeds.kl_divergence_grad(x, y, axis),
        "kl_divergence_with_log_targets": lambda: seeds.kl_divergence_with_log_targets_grad(x, y, axis),
    }[name]()


@functools.partial(jax.jit, static_argnums=(0, 3))
def label_seed_of(name: str, x, y, axis=-1):
    """The label seed of ``jaxloss.seeds``: d(per-example loss)/d(labels)."""
    return {
        "sigmoid_binary_cross_entropy": lambda: seeds.sigmoid_binary_cross_entropy_labels_grad(x, y),
        "softmax_cross_entropy": lambda: seeds.softmax_cross_entropy_labels_grad(x, y, axis),
        "safe_softmax_cross_entropy": lambda: seeds.softmax_cross_entropy_labels_grad(x, y, axis),
        "sigmoid_multilabel_cross_entropy": lambda: seeds.sigmoid_binary_cross_entropy_labels_grad(x, y),
        "binary_cross_entropy": lambda: seeds.binary_cross_entropy_labels_grad(x, y),
        "categorical_cross_entropy": lambda: seeds.categorical_cross_entropy_labels_grad(x, y),
        "multilabel_cross_entropy": lambda: seeds.binary_cross_entropy_labels_grad(x, y),
        "sigmoid_focal_loss": lambda: seeds.sigmoid_focal_loss_labels_grad(x, y),
        POLY: lambda: seeds.poly_loss_cross_entropy_labels_grad(x, y, axis=axis),
        "kl_divergence": lambda: seeds.kl_divergence_labels_grad(x, y, axis),
        "kl_divergence_with_log_targets": lambda: seeds.kl_divergence_with_log_targets_labels_grad(x, y, axis),
    }[name]()


def batch_inputs(name: str, m: int = 4, c: int = 5, seed: int = 2):
    """Row-major inputs (m examples of c classes) with soft labels that do not sum to one."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(0.1, 0.9, (m, c)) if name in PROBABILITY else rng.uniform(-3.0, 3.0, (m, c))
    y = rng.integers(0, c, (m,)).astype(np.int32) if name == INTEGER else rng.uniform(0.0, 1.0, (m, c))
    return x, y


def assert_exact(actual, expected, what=""):
    np.testing.assert_allclose(np.asarray(actual), np.asarray(expected), rtol=1e-13, atol=1e-15, err_msg=what)


@pytest.mark.parametrize("namespace", list(RULES))
@pytest.mark.parametrize("name", NAMES)
def test_vmap_of_per_example_grad_equals_seed_row_by_row(name, namespace, x64):
    cost = getattr(RULES[namespace], name)
    x, y = batch_inputs(name)
    # Each row is one example with a scalar loss; the element-wise costs are vmapped over both axes.
    per_example = jax.vmap(jax.grad(cost))
    per_example = jax.vmap(per_example) if name in ELEMENTWISE else per_example
    got = jax.jit(per_example)(x, y)
    assert_exact(got, seed_of(name, x, y), f"{namespace}.{name}")


# The article's seeds, written out in NumPy in its layout: classes on axis 0, m examples on axis 1.


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def _softmax0(z):
    e = np.exp(z - z.max(axis=0, keepdims=True))
    return e / e.sum(axis=0, keepdims=True)


ARTICLE_MEAN_GRADS = {
    # name: (n, dJ/dX of J = mean over the m examples, from the article's table)
    "sigmoid_binary_cross_entropy": (1, lambda z, y, m: (_sigmoid(z) - y) / m),
    "softmax_cross_entropy": (4, lambda z, y, m: (_softmax0(z) * y.sum(axis=0, keepdims=True) - y) / m),
    INTEGER: (4, lambda z, y, m: (_softmax0(z) - np.eye(z.shape[0])[:, y]) / m),
    "sigmoid_multilabel_cross_entropy": (4, lambda z, y, m: (_sigmoid(z) - y) / m),
    "binary_cross_entropy": (1, lambda a, y, m: ((1 - y) / (1 - a) - y / a) / m),
    "categorical_cross_entropy": (4, lambda a, y, m: -(y / a) / m),
    "multilabel_cross_entropy": (4, lambda a, y, m: ((1 - y) / (1 - a) - y / a) / m),
}


@pytest.mark.parametrize("namespace", list(RULES))
@pytest.mark.parametrize("name", list(ARTICLE_MEAN_GRADS))
def test_grad_of_mean_cost_is_article_seed_over_m(name, namespace, x64):
    n, article = ARTICLE_MEAN_GRADS[name]
    m = 6
    rng = np.random.default_rng(3)
    x = rng.uniform(0.1, 0.9, (n, m)) if name in PROBABILITY else rng.uniform(-3.0, 3.0, (n, m))
    y = rng.integers(0, n, (m,)).astype(np.int32) if name == INTEGER else rng.uniform(0.0, 1.0, (n, m))
    kwargs = {} if name in ELEMENTWISE else {"axis": 0}
    cost = getattr(RULES[namespace], name)
    got = jax.jit(jax.grad(lambda x: jnp.mean(cost(x, y, **kwargs))))(x)
    np.testing.assert_allclose(got, article(x, y, m), rtol=1e-12, atol=1e-15, err_msg="the article's dJ/dX")
    assert_exact(got, seed_of(name, x, y, axis=0) / m, "seeds / m")


@pytest.mark.parametrize("namespace", list(RULES))
@pytest.mark.parametrize("name", ["sigmoid_binary_cross_entropy", "softmax_cross_entropy"])
def test_grad_of_mean_with_hard_labels_is_a_minus_y_over_m(name, namespace, x64):
    """With one-hot (softmax) or 0/1 (sigmoid) labels the article's seed is (A - Y)/m."""
    rng = np.random.default_rng(4)
    n, m = (1, 6) if name == "sigmoid_binary_cross_entropy" else (4, 6)
    z = rng.uniform(-3.0, 3.0, (n, m))
    if n == 1:
        y, a = rng.integers(0, 2, (n, m)).astype(np.float64), _sigmoid(z)
    else:
        y, a = np.eye(n)[:, rng.integers(0, n, m)], _softmax0(z)
    kwargs = {} if n == 1 else {"axis": 0}
    cost = getattr(RULES[namespace], name)
    got = jax.jit(jax.grad(lambda z: jnp.mean(cost(z, y, **kwargs))))(z)
    np.testing.assert_allclose(got, (a - y) / m, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("namespace", list(RULES))
@pytest.mark.parametrize("name", NAMES)
def test_vjp_multiplies_seed_by_per_example_cotangent(name, namespace, x64):
    cost = getattr(RULES[namespace], name)
    x, y = batch_inputs(name)
    rng = np.random.default_rng(5)
    cotangent = rng.uniform(-2.0, 2.0, x.shape if name in ELEMENTWISE else x.shape[:1])
    expand = (lambda g: g) if name in ELEMENTWISE else (lambda g: g[:, None])

    @jax.jit
    def pullback(x, y, cotangent):
        if name == INTEGER:
            return (*jax.vjp(lambda x: cost(x, y), x)[1](cotangent), None)
        return jax.vjp(cost, x, y)[1](cotangent)

    dx, dy = pullback(x, y, cotangent)
    if name != INTEGER:
        assert_exact(dy, expand(cotangent) * label_seed_of(name, x, y), f"{namespace}.{name} labels")
    assert_exact(dx, expand(cotangent) * seed_of(name, x, y), f"{namespace}.{name} inputs")
