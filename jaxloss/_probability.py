"""The article's costs in probability space, J(A, Y): binary, categorical and multi-label cross-entropy.

Their seeds are dJ/dA. Exact 0 and 1 follow the clamp policy of ``_clamp``.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from jaxloss import _article, _checks, _clamp, _compensated, _seeds
from jaxloss._rules import Axes, rule
from jaxloss._sigmoid import summed_over

# --- binary ----------------------------------------------------------------------------------------


def _binary_loss(probs: jax.Array, labels: jax.Array, limits: jax.Array | None) -> jax.Array:
    """Element-wise :math:`-[y \\log a + (1-y) \\log1p(-a)]` under the clamp policy; ``0 log 0 = 0``."""
    low = _clamp.clamp_probs(probs, upper=False, limits=limits)
    top = _clamp.clamp_probs(jnp.ones((), probs.dtype), upper=True, limits=limits)
    high = jnp.where(jnp.isnan(low), jnp.nan, jnp.minimum(probs, top))
    pos = jnp.where(labels == 0, 0.0, labels * jnp.log(low))
    neg = jnp.where(labels == 1, 0.0, (1.0 - labels) * _compensated.log1p(-high))
    return 0.0 - (pos + neg)  # +0, not -0, for a loss of nothing


@rule(reference=_article.binary_cross_entropy)
def _binary(probs: jax.Array, labels: jax.Array, limits: Any, axes: Axes) -> tuple[jax.Array, Any]:
    del axes
    return _binary_loss(probs, labels, limits), (probs, labels, limits)


@_binary.defseed
def _binary_seed(residuals: Any, axes: Axes) -> tuple[jax.Array, jax.Array]:
    del axes
    probs, labels, limits = residuals
    clamped = _clamp.clamp_probs(probs, upper=True, limits=limits)
    return (
        _seeds.binary_cross_entropy_grad_from_clamped(clamped, labels),
        _seeds.binary_cross_entropy_labels_grad_from_clamped(clamped),
    )


# --- categorical -----------------------------------------------------------------------------------


@rule(reference=_article.categorical_cross_entropy)
def _categorical(probs: jax.Array, labels: jax.Array, limits: Any, axes: Axes) -> tuple[jax.Array, Any]:
    """:math:`-\\sum_j y_j \\log a_j` with ``0 log 0 = 0``; a NaN probability still gives NaN."""
    clamped = _clamp.clamp_probs(probs, upper=False, limits=limits)
    skip = (labels == 0) & ~jnp.isnan(clamped)
    terms = jnp.where(skip, 0.0, labels * jnp.log(clamped))
    return 0.0 - jnp.sum(terms, axis=axes), (probs, labels, limits)


@_categorical.defseed
def _categorical_seed(residuals: Any, axes: Axes) -> tuple[jax.Array, jax.Array]:
    del axes
    probs, labels, limits = residuals
    clamped = _clamp.clamp_probs(probs, upper=False, limits=limits)
    return (
        _seeds.categorical_cross_entropy_grad_from_clamped(clamped, labels),
        _seeds.categorical_cross_entropy_labels_grad_from_clamped(clamped),
    )


def _prepare(probs: Any, labels: Any) -> tuple[jax.Array, jax.Array, jax.Array]:
    """The validated, broadcast pair in the compute dtype, and the clamp limits of the input's dtype."""
    a = _checks.as_array(probs, "probs")
    x, y = _checks.floating_pair(a, labels, "probs")
    return x, y, _clamp.probability_limits(a.dtype, x.dtype)


# --- the public costs ----------------------------------------------------------------------------


def binary_cross_entropy(probs: jax.typing.ArrayLike, labels: jax.typing.ArrayLike) -> jax.Array:
    """Element-wise binary cross-entropy of probabilities and labels.

    .. math::
      \\ell(a, y) = -[y \\log a + (1 - y) \\log(1 - a)],
      \\qquad \\frac{\\partial \\ell}{\\partial a} = \\frac{1 - y}{1 - a} - \\frac{y}{a}
      = \\frac{a - y}{a (1 - a)}

    The article's J(A, Y) and its seed dJ/dA, per example. Clamp policy: ``log a`` is taken at
    ``max(a, tiny)`` and ``log(1 - a)`` at ``min(a, 1 - eps/2)`` (the smallest normal number and
    the largest number below 1), and the seed at ``a`` clamped to both. Exact 0 and 1 give a
    finite loss (0 when the label agrees) and a finite seed of the right sign, unlike clipping,
    which zeroes the gradient; values outside [0, 1] give NaN.

    Forward mode needs the twin: the seed is a ``custom_vjp`` rule, so ``jax.grad``, ``jax.vjp``,
    ``jax.vmap`` and ``jax.hessian`` (forward over reverse) work, but ``jax.jvp`` and ``jax.jacfwd``
    raise; use ``jaxloss.forward.binary_cross_entropy`` (the same seed as a ``custom_jvp`` rule) for
    those.

    Args:
      probs: floating probabilities in [0, 1], any shape.
      labels: labels in [0, 1], broadcastable with ``probs``.

    Returns:
      The loss of each element, with the broadcast shape.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> import jaxloss
      >>> probs, labels = jnp.array([0.5, 1.0, 0.0]), jnp.array([1.0, 1.0, 1.0])
      >>> print(jaxloss.binary_cross_entropy(probs, labels))
      [ 0.6931472  0.        87.33655  ]
      >>> print(jax.grad(lambda a: jaxloss.binary_cross_entropy(a, labels).sum())(probs))
      [-2.0000000e+00 -1.0000001e+00 -8.5070592e+37]

    References:
      J. Lalin, "Feedforward Neural Networks in Depth, Part 3: Cost Functions" (2021), the
      binary cost J(A, Y) and dJ/dA.
    """
    a, y, limits = _prepare(probs, labels)
    return _binary(a, y, limits, ())


def categorical_cross_entropy(
    probs: jax.typing.ArrayLike,
    labels: jax.typing.ArrayLike,
    axis: int | tuple[int, ...] | None = -1,
    where: jax.typing.ArrayLike | None = None,
) -> jax.Array:
    """Categorical cross-entropy of probabilities and labels.

    .. math::
      \\ell(a, y) = -\\sum_j y_j \\log a_j,
      \\qquad \\frac{\\partial \\ell}{\\partial a} = -\\frac{y}{a}

    The article's J(A, Y) and its seed dJ/dA, per example. ``0 log 0 = 0``. Clamp policy: ``a``
    is raised to the smallest normal number, so an exact 0 with a positive label gives a finite
    loss and a finite negative seed; values outside [0, 1] give NaN.

    Forward mode needs the twin: the seed is a ``custom_vjp`` rule, so ``jax.grad``, ``jax.vjp``,
    ``jax.vmap`` and ``jax.hessian`` (forward over reverse) work, but ``jax.jvp`` and ``jax.jacfwd``
    raise; use ``jaxloss.forward.categorical_cross_entropy`` (the same seed as a ``custom_jvp``
    rule) for those.

    Args:
      probs: floating probabilities with classes along ``axis``.
      labels: per-class target weights, broadcastable with ``probs``.
      axis: the class axis or axes (``None``: every axis, as in optax); the article's layout is
        ``axis=0``.
      where: optional boolean mask of the classes (the shape of ``probs``) or of the examples
        (the batch shape); dropped classes cost 0 and get a zero gradient.

    Returns:
      The loss of each example: the broadcast shape without ``axis``.

    Examples:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> probs = jnp.array([[0.25, 0.75], [1.0, 0.0]])
      >>> print(jaxloss.categorical_cross_entropy(probs, jnp.array([[1.0, 0.0], [1.0, 0.0]])))
      [1.3862944 0.       ]

    References:
      J. Lalin, "Feedforward Neural Networks in Depth, Part 3: Cost Functions" (2021), the
      multiclass cost J(A, Y) and dJ/dA = -(1/m) Y/A.
    """
    a, y, limits = _prepare(probs, labels)
    axes = _checks.canonical_axes(axis, a.ndim, "probs")
    mask = _checks.canonical_where(where, a.shape, axes)
    if mask is not None:
        a = jnp.where(mask, a, 1.0)
        y = jnp.where(mask, y, 0.0)
    return _categorical(a, y, limits, axes)


def multilabel_cross_entropy(
    probs: jax.typing.ArrayLike,
    labels: jax.typing.ArrayLike,
    axis: int | tuple[int, ...] | None = -1,
    where: jax.typing.ArrayLike | None = None,
) -> jax.Array:
    """Multi-label cross-entropy of probabilities, summed over ``axis``.

    .. math::
      \\ell(a, y) = \\sum_j -[y_j \\log a_j + (1 - y_j) \\log(1 - a_j)],
      \\qquad \\frac{\\partial \\ell}{\\partial a_j} = \\frac{a_j - y_j}{a_j (1 - a_j)}

    The article's multi-label J(A, Y) and its seed dJ/dA, per example, with the clamp policy of
    :func:`binary_cross_entropy`.

    Forward mode needs the twin: the seed is a ``custom_vjp`` rule, so ``jax.grad``, ``jax.vjp``,
    ``jax.vmap`` and ``jax.hessian`` (forward over reverse) work, but ``jax.jvp`` and ``jax.jacfwd``
    raise; use ``jaxloss.forward.multilabel_cross_entropy`` (the same seed as a ``custom_jvp`` rule)
    for those.

    Args:
      probs: floating probabilities with labels along ``axis``.
      labels: labels in [0, 1], broadcastable with ``probs``.
      axis: the label axis or axes (``None``: every axis); the article's layout is ``axis=0``.
      where: optional boolean mask of the labels or of the examples; dropped labels cost 0.

    Returns:
      The loss of each example.

    Examples:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> print(jaxloss.multilabel_cross_entropy(jnp.array([[0.5, 0.5]]), jnp.array([[1.0, 0.0]])))
      [1.3862944]

    References:
      J. Lalin, "Feedforward Neural Networks in Depth, Part 3: Cost Functions" (2021), the
      multi-label cost.
    """
    a, y, limits = _prepare(probs, labels)
    return summed_over(_binary, a, y, limits, axis, where, "probs", 0.5)
