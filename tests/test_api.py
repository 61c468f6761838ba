"""The public surface: names and signatures, drop-in agreement with optax, the article's layout,
and a few values that can be worked out by hand.

Values against optax are compared on moderate random logits (|z| of a few units), where optax's
float32 formulas are accurate, with ``rtol`` 1e-5; the extreme regions are in ``test_numerics``.
"""

from __future__ import annotations

import ast
import functools
import inspect
import math
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxloss
from jaxloss._costs import NAMES

NAMESPACES = {"jaxloss": jaxloss, "jaxloss.forward": jaxloss.forward, "jaxloss.reference": jaxloss.reference}
ALL = pytest.mark.parametrize("ns", list(NAMESPACES.values()), ids=list(NAMESPACES))
RULES = pytest.mark.parametrize("ns", [jaxloss, jaxloss.forward], ids=["jaxloss", "jaxloss.forward"])

OPTAX_NAMES = (
    "sigmoid_binary_cross_entropy",
    "softmax_cross_entropy",
    "softmax_cross_entropy_with_integer_labels",
    "safe_softmax_cross_entropy",
    "sigmoid_focal_loss",
    "poly_loss_cross_entropy",
    "kl_divergence",
    "kl_divergence_with_log_targets",
)
# Hyperparameters optax 0.2.6 took positionally and its later releases (0.2.8 here) take keyword-only.
KEYWORD_ONLY_SINCE_OPTAX_0_2_6 = ("sigmoid_focal_loss", "poly_loss_cross_entropy")
RTOL = 1e-5
ATOL = 1e-6

_RNG = np.random.default_rng(20210901)
LOGITS = jnp.asarray(_RNG.normal(size=(4, 5)) * 3.0, jnp.float32)
SOFT = jnp.asarray(_RNG.dirichlet(np.ones(5), size=4), jnp.float32)
PROBS = jnp.asarray(_RNG.dirichlet(np.ones(5), size=4), jnp.float32)
BINARY_LABELS = jnp.asarray(_RNG.random((4, 5)), jnp.float32)
CLASSES = jnp.array([0, 3, 4, 1])
# A class mask with one fully masked row (row 2), and an example mask with one dropped example.
CLASS_MASK = jnp.asarray(_RNG.random((4, 5)) > 0.3).at[2].set(False).at[:, 0].set(True).at[2, 0].set(False)
EXAMPLE_MASK = jnp.array([True, False, True, True])


def _static(f) -> tuple[str, ...]:
    return ("axis",) if "axis" in inspect.signature(f).parameters else ()


@functools.cache
def _jit(f):
    """``f`` compiled once per shape (eager dispatch compiles every primitive separately)."""
    return jax.jit(f, static_argnames=_static(f))


@functools.cache
def _grad(f):
    """The compiled gradient of the summed per-example loss with respect to the first argument."""
    return jax.jit(jax.grad(lambda x, y, **kwargs: jnp.sum(f(x, y, **kwargs))), static_argnames=_static(f))


def _close(actual, expected, rtol=RTOL, atol=ATOL):
    np.testing.assert_allclose(np.asarray(actual), np.asarray(expected), rtol=rtol, atol=atol)


# --- names and signatures ---------------------------------------------------------------


def _public_functions(module) -> set[str]:
    """Names of the functions a namespace exports."""
    return {name for name in module.__all__ if inspect.isfunction(getattr(module, name))}


@ALL
def test_every_namespace_exports_the_costs_and_jaxloss_two_more(ns):
    extra = {"linear_cross_entropy", "mean"} if ns is jaxloss else set()
    assert _public_functions(ns) == set(NAMES) | extra


def test_all_lists_only_what_the_namespaces_hold():
    assert set(jaxloss.__all__) == {
        *NAMES,
        "TokenStats",
        "forward",
        "grad_norms",
        "linear_cross_entropy",
        "mean",
        "reference",
        "seeds",
        "sharded",
    }
    assert sorted(jaxloss.forward.__all__) == sorted(NAMES)
    assert sorted(jaxloss.reference.__all__) == sorted(NAMES)
    assert set(jaxloss.grad_norms.__all__) <= set(NAMES)
    for ns in [*NAMESPACES.values(), jaxloss.grad_norms]:
        for name in ns.__all__:
            assert hasattr(ns, name), f"{ns.__name__}.__all__ names {name}, which it lacks"


def test_import_jaxloss_exposes_only_the_public_names():
    # In a fresh interpreter: other tests import jaxloss.tools, which binds it on the package.
    code = "import jaxloss; print(sorted(n for n in vars(jaxloss) if not n.startswith('_')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert ast.literal_eval(out) == sorted(jaxloss.__all__)


def test_the_twins_run_their_own_namespace_way():
    """The same call differs only in how it is differentiated: forward mode works in
    jaxloss.forward and raises in jaxloss (custom_vjp), and the reference overflows."""
    z, y = jnp.array([0.0, 100.0]), jnp.array([1, 1])
    jax.jvp(lambda v: jaxloss.forward.softmax_cross_entropy_with_integer_labels(v[None], y[:1]), (z,), (z,))
    with pytest.raises(TypeError):
        jax.jvp(lambda v: jaxloss.softmax_cross_entropy_with_integer_labels(v[None], y[:1]), (z,), (z,))
    big = jnp.array([[0.0, 100.0]])
    assert float(jaxloss.softmax_cross_entropy_with_integer_labels(big, jnp.array([0]))[0]) == 100.0
    assert not np.isfinite(float(jaxloss.reference.softmax_cross_entropy_with_integer_labels(big, jnp.array([0]))[0]))


@pytest.mark.parametrize("name", NAMES)
def test_signatures_are_identical_in_all_three_namespaces(name):
    signature = inspect.signature(getattr(jaxloss, name))
    assert inspect.signature(getattr(jaxloss.forward, name)) == signature
    assert inspect.signature(getattr(jaxloss.reference, name)) == signature
    assert getattr(jaxloss.forward, name).__name__ == name
    assert getattr(jaxloss.reference, name).__name__ == name


@pytest.mark.parametrize("name", OPTAX_NAMES)
def test_parameters_match_optax_names_defaults_and_kinds(name):
    """optax's parameters, in its order and kinds; jaxloss's options come after, keyword-only.

    optax 0.2.6 (the declared minimum) still took the focal and poly hyperparameters positionally;
    later releases made them keyword-only, and jaxloss follows the later ones: there, a parameter
    with a default that optax takes positionally may be keyword-only here, and nothing else differs.
    """
    ours = list(inspect.signature(getattr(jaxloss, name)).parameters.values())
    theirs = list(inspect.signature(getattr(optax.losses, name)).parameters.values())
    shared = ours[: len(theirs)]  # optax's own keyword-only hyperparameters (alpha, epsilon) included
    assert [(p.name, p.default) for p in shared] == [(p.name, p.default) for p in theirs]
    for mine, its in zip(shared, theirs, strict=True):
        newer = (its.kind, mine.kind) == (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
        assert mine.kind == its.kind or (newer and name in KEYWORD_ONLY_SINCE_OPTAX_0_2_6), (mine, its)
    extra = ours[len(shared) :]
    assert all(p.kind == inspect.Parameter.KEYWORD_ONLY for p in extra)
    assert all(p.default in (0.0, None) for p in extra), "every option is off by default"


@pytest.mark.parametrize("name", ["sigmoid_multilabel_cross_entropy", "categorical_cross_entropy"])
def test_axis_and_where_parameters_of_the_other_reduced_costs(name):
    parameters = inspect.signature(getattr(jaxloss, name)).parameters
    assert list(parameters)[2:4] == ["axis", "where"]
    assert parameters["axis"].default == -1
    assert parameters["where"].default is None


# --- drop-in for optax ------------------------------------------------------------------


def _optax(name):
    return _jit(getattr(optax.losses, name))


def _mask(kind, axis=-1):
    where = {"class": CLASS_MASK, "example": EXAMPLE_MASK, None: None}[kind]
    return where.T if kind == "class" and axis == 0 else where


@RULES
def test_sigmoid_binary_cross_entropy_equals_optax_for_soft_and_hard_labels(ns):
    f, reference = _jit(ns.sigmoid_binary_cross_entropy), _optax("sigmoid_binary_cross_entropy")
    _close(f(LOGITS, BINARY_LABELS), reference(LOGITS, BINARY_LABELS))
    hard = (BINARY_LABELS > 0.5).astype(jnp.float32)
    _close(f(LOGITS, hard), reference(LOGITS, hard))


@RULES
@pytest.mark.parametrize("mask", [None, "class", "example"])
@pytest.mark.parametrize("axis", [-1, 0])
def test_softmax_cross_entropy_equals_optax(ns, mask, axis):
    logits, labels = (LOGITS, SOFT) if axis == -1 else (LOGITS.T, SOFT.T)
    where = _mask(mask, axis)
    got = _jit(ns.softmax_cross_entropy)(logits, labels, axis=axis, where=where)
    expected = _optax("softmax_cross_entropy")(logits, labels, axis=axis, where=where)
    assert got.shape == expected.shape == (4,)
    _close(got, expected)
    if mask is not None:
        masked_row = 2 if mask == "class" else 1
        assert got[masked_row] == 0.0
        assert np.all(np.delete(np.asarray(got), masked_row) > 0.0)


@RULES
@pytest.mark.parametrize("mask", [None, "class", "example"])
@pytest.mark.parametrize("axis", [-1, 0])
def test_softmax_cross_entropy_with_integer_labels_equals_optax(ns, mask, axis):
    logits = LOGITS if axis == -1 else LOGITS.T
    where = _mask(mask, axis)
    got = _jit(ns.softmax_cross_entropy_with_integer_labels)(logits, CLASSES, axis=axis, where=where)
    expected = _optax("softmax_cross_entropy_with_integer_labels")(logits, CLASSES, axis=axis, where=where)
    assert got.shape == expected.shape == (4,)
    _close(got, expected)
    if mask is not None:
        assert got[2 if mask == "class" else 1] == 0.0


DOC_SHAPE = (1, 2, 3, 4)
DOC_LOGITS = jnp.arange(np.prod(DOC_SHAPE), dtype=jnp.float32).reshape(DOC_SHAPE)
DOC_LABELS = jnp.ravel_multi_index((jnp.array([[1, 2]]), jnp.array([[1, 3]])), DOC_SHAPE[2:])


@RULES
def test_integer_labels_with_tuple_axis_equals_optax_doc_example(ns):
    got = _jit(ns.softmax_cross_entropy_with_integer_labels)(DOC_LOGITS, DOC_LABELS, axis=(2, 3))
    expected = _optax("softmax_cross_entropy_with_integer_labels")(DOC_LOGITS, DOC_LABELS, axis=(2, 3))
    assert got.shape == (1, 2)
    _close(got, expected)
    _close(got, [[6.4587, 0.4587]], rtol=0, atol=1e-4)  # the values printed in optax's docstring


@RULES
@pytest.mark.parametrize("axis", [(2, 3), (1, 3), (0, -1)])
def test_integer_labels_with_tuple_axis_and_class_mask_equals_optax(ns, axis):
    rng = np.random.default_rng(7)
    logits = jnp.asarray(rng.normal(size=(2, 3, 3, 4)) * 2.0, jnp.float32)
    batch = tuple(n for d, n in enumerate(logits.shape) if d not in {a % 4 for a in axis})
    classes = math.prod(logits.shape[a] for a in axis)
    labels = jnp.asarray(rng.integers(0, classes, size=batch))
    where = jnp.asarray(rng.random(logits.shape) > 0.25)
    for mask in (None, where):
        got = _jit(ns.softmax_cross_entropy_with_integer_labels)(logits, labels, axis=axis, where=mask)
        expected = _optax("softmax_cross_entropy_with_integer_labels")(logits, labels, axis=axis, where=mask)
        assert got.shape == batch
        _close(got, expected)


@RULES
def test_integer_labels_with_unsorted_tuple_axis_index_classes_in_the_given_axis_order_like_optax(ns):
    # optax moves the class axes to the end in the order given and flattens them there: with
    # axis=(3, 2), the flat label k is the class logits[..., k % 3, k // 3].
    got = _jit(ns.softmax_cross_entropy_with_integer_labels)(DOC_LOGITS, DOC_LABELS, axis=(3, 2))
    expected = _optax("softmax_cross_entropy_with_integer_labels")(DOC_LOGITS, DOC_LABELS, axis=(3, 2))
    picked = jnp.stack([DOC_LOGITS[0, i, k % 3, k // 3] for i, k in enumerate(DOC_LABELS[0].tolist())])
    _close(expected[0], jax.nn.logsumexp(DOC_LOGITS[0], axis=(1, 2)) - picked)
    _close(got, expected)


@RULES
def test_safe_softmax_cross_entropy_equals_optax_including_minus_inf_logits(ns):
    logits = LOGITS.at[0, 1].set(-jnp.inf).at[3, 4].set(-jnp.inf)
    labels = SOFT.at[0, 1].set(0.0).at[3, 4].set(0.0)
    f, reference = _jit(ns.safe_softmax_cross_entropy), _optax("safe_softmax_cross_entropy")
    got = f(logits, labels)
    assert np.all(np.isfinite(np.asarray(got)))
    _close(got, reference(logits, labels))
    _close(f(LOGITS, SOFT), reference(LOGITS, SOFT))


@RULES
@pytest.mark.parametrize("axis", [-1, 0])
def test_sigmoid_multilabel_cross_entropy_is_optax_sigmoid_summed_over_axis(ns, axis):
    expected = _optax("sigmoid_binary_cross_entropy")(LOGITS, BINARY_LABELS).sum(axis)
    got = _jit(ns.sigmoid_multilabel_cross_entropy)(LOGITS, BINARY_LABELS, axis=axis)
    assert got.shape == expected.shape
    _close(got, expected)


@RULES
def test_sigmoid_multilabel_cross_entropy_with_masks_sums_only_kept_labels(ns):
    elementwise = _optax("sigmoid_binary_cross_entropy")(LOGITS, BINARY_LABELS)
    f = _jit(ns.sigmoid_multilabel_cross_entropy)
    got = f(LOGITS, BINARY_LABELS, where=CLASS_MASK)
    _close(got, jnp.sum(elementwise, axis=-1, where=CLASS_MASK))
    assert got[2] == 0.0
    got = f(LOGITS, BINARY_LABELS, where=EXAMPLE_MASK)
    _close(got, jnp.where(EXAMPLE_MASK, elementwise.sum(-1), 0.0))


# --- the article's layout: classes by examples ------------------------------------------

LAYOUT_CASES = {
    "softmax_cross_entropy": (LOGITS, SOFT),
    "softmax_cross_entropy_with_integer_labels": (LOGITS, CLASSES),
    "categorical_cross_entropy": (PROBS, SOFT),
    "sigmoid_multilabel_cross_entropy": (LOGITS, BINARY_LABELS),
    "multilabel_cross_entropy": (PROBS, BINARY_LABELS),
}


@RULES
@pytest.mark.parametrize("name", list(LAYOUT_CASES))
def test_axis_0_on_the_transpose_equals_axis_minus_1(ns, name):
    x, labels = LAYOUT_CASES[name]
    labels_t = labels if labels.ndim == 1 else labels.T
    f = _jit(getattr(ns, name))
    row_major = f(x, labels, axis=-1)
    article = f(x.T, labels_t, axis=0)
    assert article.shape == row_major.shape == (4,)
    _close(article, row_major, rtol=1e-6, atol=0)
    _close(f(x.T, labels_t, axis=0, where=CLASS_MASK.T), f(x, labels, axis=-1, where=CLASS_MASK), rtol=1e-6, atol=0)


@RULES
@pytest.mark.parametrize("name", ["softmax_cross_entropy", "categorical_cross_entropy"])
def test_article_layout_gradient_is_the_transposed_gradient(ns, name):
    x, labels = LAYOUT_CASES[name]
    grad = _grad(getattr(ns, name))(x, labels, axis=-1)
    grad_article = _grad(getattr(ns, name))(x.T, labels.T, axis=0)
    assert np.any(np.asarray(grad) != 0.0)
    _close(grad_article, grad.T, rtol=1e-6, atol=1e-7)


# --- values worked out by hand ----------------------------------------------------------

ZEROS = jnp.zeros((4, 5), jnp.float32)
ONE_HOT = jax.nn.one_hot(CLASSES, 5, dtype=jnp.float32)


@ALL
def test_softmax_of_equal_logits_costs_log_c_and_has_gradient_one_over_c_minus_onehot(ns):
    log5 = np.full(4, math.log(5.0))
    _close(_jit(ns.softmax_cross_entropy)(ZEROS, ONE_HOT), log5, rtol=1e-6, atol=0)
    _close(_jit(ns.safe_softmax_cross_entropy)(ZEROS, ONE_HOT), log5, rtol=1e-6, atol=0)
    _close(_jit(ns.softmax_cross_entropy_with_integer_labels)(ZEROS, CLASSES), log5, rtol=1e-6, atol=0)
    _close(_grad(ns.softmax_cross_entropy)(ZEROS, ONE_HOT), 0.2 - ONE_HOT, rtol=1e-6, atol=1e-7)
    _close(_grad(ns.softmax_cross_entropy_with_integer_labels)(ZEROS, CLASSES), 0.2 - ONE_HOT, rtol=1e-6, atol=1e-7)


@ALL
def test_softmax_gradient_is_the_general_seed_a_sum_y_minus_y_for_labels_summing_to_two(ns):
    twice = ONE_HOT.at[:, 2].add(1.0)  # no example is of class 2, so every row has two ones
    _close(_jit(ns.softmax_cross_entropy)(ZEROS, twice), np.full(4, 2 * math.log(5.0)), rtol=1e-6, atol=0)
    _close(_grad(ns.softmax_cross_entropy)(ZEROS, twice), 0.4 - twice, rtol=1e-6, atol=1e-7)


@ALL
@pytest.mark.parametrize("label", [0.0, 0.5, 1.0])
def test_sigmoid_at_logit_zero_costs_log_2_with_gradient_half_minus_label(ns, label):
    labels = jnp.full((4, 5), label, jnp.float32)
    _close(_jit(ns.sigmoid_binary_cross_entropy)(ZEROS, labels), np.full((4, 5), math.log(2.0)), rtol=1e-6, atol=0)
    _close(_grad(ns.sigmoid_binary_cross_entropy)(ZEROS, labels), np.full((4, 5), 0.5 - label), rtol=1e-6, atol=0)
    multilabel = _jit(ns.sigmoid_multilabel_cross_entropy)(ZEROS, labels)
    _close(multilabel, np.full(4, 5 * math.log(2.0)), rtol=1e-6, atol=0)


@ALL
def test_binary_cross_entropy_of_a_quarter_is_log_4_for_label_1_and_log_4_3_for_label_0(ns):
    quarter = jnp.full((4, 5), 0.25, jnp.float32)
    labels = jnp.asarray(np.indices((4, 5)).sum(0) % 2, jnp.float32)  # a checkerboard of 0 and 1
    expected = np.where(labels == 1, math.log(4.0), math.log(4.0 / 3.0))
    _close(_jit(ns.binary_cross_entropy)(quarter, labels), expected, rtol=1e-6, atol=0)
    _close(_grad(ns.binary_cross_entropy)(quarter, labels), np.where(labels == 1, -4.0, 4.0 / 3.0), rtol=1e-6, atol=0)
    _close(_jit(ns.multilabel_cross_entropy)(quarter, labels), expected.sum(-1), rtol=1e-6, atol=0)


@ALL
def test_categorical_cross_entropy_of_a_quarter_is_log_4_with_gradient_minus_4(ns):
    probs = jnp.zeros((4, 5), jnp.float32).at[:, 0].set(0.25).at[:, 1].set(0.75)
    labels = jnp.zeros((4, 5), jnp.float32).at[:, 0].set(1.0)
    _close(_jit(ns.categorical_cross_entropy)(probs, labels), np.full(4, math.log(4.0)), rtol=1e-6, atol=0)
    expected_grad = np.zeros((4, 5))
    expected_grad[:, 0] = -4.0
    _close(_grad(ns.categorical_cross_entropy)(probs, labels), expected_grad, rtol=1e-6, atol=0)


@ALL
def test_per_example_outputs_keep_the_batch_shape(ns):
    assert _jit(ns.sigmoid_binary_cross_entropy)(LOGITS, BINARY_LABELS).shape == (4, 5)
    assert _jit(ns.binary_cross_entropy)(PROBS, BINARY_LABELS).shape == (4, 5)
    for name, (x, labels) in LAYOUT_CASES.items():
        assert _jit(getattr(ns, name))(x, labels).shape == (4,)
    assert _jit(ns.safe_softmax_cross_entropy)(LOGITS, SOFT).shape == (4,)


@pytest.mark.parametrize("namespace", ["jaxloss", "jaxloss.forward", "jaxloss.reference"])
def test_axis_none_means_every_axis_as_in_optax(namespace):
    ns = {"jaxloss": jaxloss, "jaxloss.forward": jaxloss.forward, "jaxloss.reference": jaxloss.reference}[namespace]
    logits = jnp.array([[1.0, -2.0, 0.5], [3.0, 0.0, -1.0]])
    labels = jax.nn.softmax(jnp.array([[0.0, 1.0, 2.0], [2.0, 1.0, 0.0]]).reshape(-1)).reshape(2, 3)
    got = ns.softmax_cross_entropy(logits, labels, axis=None)
    assert got.shape == ()
    np.testing.assert_allclose(float(got), float(optax.softmax_cross_entropy(logits, labels, axis=None)), rtol=1e-6)
    np.testing.assert_allclose(
        float(got), float(ns.softmax_cross_entropy(logits.reshape(-1), labels.reshape(-1))), rtol=1e-6
    )
    flat = ns.softmax_cross_entropy_with_integer_labels(logits, jnp.array(3), axis=None)
    np.testing.assert_allclose(
        float(flat), float(ns.softmax_cross_entropy_with_integer_labels(logits.reshape(-1), jnp.array(3))), rtol=1e-6
    )
    multi = ns.sigmoid_multilabel_cross_entropy(logits, labels, axis=None)
    np.testing.assert_allclose(float(multi), float(jnp.sum(ns.sigmoid_binary_cross_entropy(logits, labels))), rtol=1e-6)
