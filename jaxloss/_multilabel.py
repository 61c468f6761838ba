"""The multi-label costs: a sigmoid per label, summed over the label axis.

The cost of each label is the binary cost, so its seed is the binary seed; the sum and the mask
are left to autodiff (their transposes are a broadcast and a select).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from jaxloss import _checks, _options
from jaxloss._impl import Cost, Implementation, publish


def _summed(
    cost: Cost,
    x: jax.Array,
    y: jax.Array,
    axis: int | tuple[int, ...],
    where: jax.typing.ArrayLike | None,
    input_name: str,
    neutral: float,
    aux: Any = None,
) -> jax.Array:
    axes = _checks.canonical_axes(axis, x.ndim, input_name)
    mask = _checks.canonical_where(where, x.shape, axes)
    if mask is None:
        return jnp.sum(cost(x, y, aux, ()), axis=axes)
    # Masked elements get finite stand-ins first, so that NaN there cannot leak into gradients.
    x = jnp.where(mask, x, neutral)
    y = jnp.where(mask, y, 0.0)
    return jnp.sum(jnp.where(mask, cost(x, y, aux, ()), 0.0), axis=axes)


def make_sigmoid_multilabel_cross_entropy(impl: Implementation) -> Callable[..., jax.Array]:
    """Builds ``sigmoid_multilabel_cross_entropy`` for one implementation."""

    def sigmoid_multilabel_cross_entropy(
        logits: jax.typing.ArrayLike,
        labels: jax.typing.ArrayLike,
        axis: int | tuple[int, ...] = -1,
        where: jax.typing.ArrayLike | None = None,
        *,
        label_smoothing: float | jax.typing.ArrayLike = 0.0,
        weights: jax.typing.ArrayLike | None = None,
        pos_weight: jax.typing.ArrayLike | None = None,
        soft_cap: float | jax.typing.ArrayLike | None = None,
    ) -> jax.Array:
        z, y = _checks.floating_pair(logits, labels, "logits")
        options = _options.sigmoid_options(
            z, label_smoothing=label_smoothing, weights=weights, pos_weight=pos_weight, soft_cap=soft_cap
        )
        if options is None:
            return _summed(impl.sigmoid, z, y, axis, where, "logits", 0.0)
        return _summed(impl.sigmoid_options, z, y, axis, where, "logits", 0.0, options)

    sigmoid_multilabel_cross_entropy.__doc__ = f"""Multi-label cross-entropy: a sigmoid per label, summed over ``axis``.

    .. math::
      \\ell(z, y) = \\sum_j -[y_j \\log \\sigma(z_j) + (1 - y_j) \\log(1 - \\sigma(z_j))],
      \\qquad \\frac{{\\partial \\ell}}{{\\partial z_j}} = \\sigma(z_j) - y_j

    The article's multi-label cost. {impl.rule}

    Args:
      logits: floating logits with labels along ``axis``.
      labels: labels in [0, 1], broadcastable with ``logits``.
      axis: the label axis or axes; the article's layout is ``axis=0``.
      where: optional boolean mask of the labels (the shape of ``logits``) or of the examples
        (the batch shape); dropped labels cost 0 and get a zero gradient.
      {_options.SIGMOID_OPTIONS_DOC}

    Returns:
      The loss of each example.
    """
    return publish(sigmoid_multilabel_cross_entropy, impl)


def make_multilabel_cross_entropy(impl: Implementation) -> Callable[..., jax.Array]:
    """Builds ``multilabel_cross_entropy`` (probability space) for one implementation."""

    def multilabel_cross_entropy(
        probs: jax.typing.ArrayLike,
        labels: jax.typing.ArrayLike,
        axis: int | tuple[int, ...] = -1,
        where: jax.typing.ArrayLike | None = None,
    ) -> jax.Array:
        a, y, limits = _checks.probability_pair(probs, labels)
        return _summed(impl.binary_probs, a, y, axis, where, "probs", 0.5, limits)

    multilabel_cross_entropy.__doc__ = f"""Multi-label cross-entropy of probabilities, summed over ``axis``.

    .. math::
      \\ell(a, y) = \\sum_j -[y_j \\log a_j + (1 - y_j) \\log(1 - a_j)],
      \\qquad \\frac{{\\partial \\ell}}{{\\partial a_j}} = \\frac{{a_j - y_j}}{{a_j (1 - a_j)}}

    The article's multi-label J(A, Y) and its seed dJ/dA, per example, with the clamp policy
    of ``binary_cross_entropy``. {impl.rule}

    Args:
      probs: floating probabilities with labels along ``axis``.
      labels: labels in [0, 1], broadcastable with ``probs``.
      axis: the label axis or axes; the article's layout is ``axis=0``.
      where: optional boolean mask of the labels or of the examples; dropped labels cost 0.

    Returns:
      The loss of each example.
    """
    return publish(multilabel_cross_entropy, impl)
