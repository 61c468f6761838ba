"""The article's formulas, literally: the activation, then the cost. No custom rule.

"Feedforward Neural Networks in Depth, Part 3: Cost Functions" (J. Lalin, 2021):

.. math::
  J = -\\frac{1}{m}\\sum_i \\left[y_i \\log a_i + (1 - y_i)\\log(1 - a_i)\\right],
  \\quad a = \\sigma(z) = \\frac{1}{1 + e^{-z}}

.. math::
  J = -\\frac{1}{m}\\sum_i \\sum_j y_{ji} \\log a_{ji}, \\quad a_j = \\frac{e^{z_j}}{\\sum_p e^{z_p}}

Per example (no 1/m). The only departures from the letter are the conventions every
implementation shares: ``0 log 0 = 0`` and masks, written with the double-``where`` so that
masked entries get a zero gradient instead of ``0 * inf``.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from jaxloss._stable import Axes, integer_label_mask, kept_logits, option_labels, smooth_binary_labels, soft_cap


def _y_log_a(probs: jax.Array, labels: jax.Array) -> jax.Array:
    # 0 log 0 = 0. Only that point is replaced, so d/dy = log a is kept wherever a > 0.
    zero_times_log_zero = (labels == 0) & (probs == 0)
    return labels * jnp.log(jnp.where(zero_times_log_zero, 1.0, probs))


def sigmoid(logits: jax.Array) -> jax.Array:
    """:math:`\\sigma(z) = 1/(1 + e^{-z})`."""
    return 1.0 / (1.0 + jnp.exp(-logits))


def softmax(logits: jax.Array, axes: Axes) -> jax.Array:
    """:math:`e^{z_j} / \\sum_p e^{z_p}`, without the max shift (a row of only ``-inf`` gives 0)."""
    exps = jnp.exp(logits)
    total = jnp.sum(exps, axis=axes, keepdims=True)
    return exps / jnp.where(total == 0, 1.0, total)


def binary_cross_entropy(probs: jax.Array, labels: jax.Array, where: jax.Array | None, axes: Axes) -> jax.Array:
    """:math:`-[y \\log a + (1 - y) \\log(1 - a)]`."""
    del where, axes
    return -(labels * jnp.log(probs) + (1.0 - labels) * jnp.log(1.0 - probs))


def categorical_cross_entropy(probs: jax.Array, labels: jax.Array, where: jax.Array | None, axes: Axes) -> jax.Array:
    """:math:`-\\sum_j y_j \\log a_j`."""
    del where
    return -jnp.sum(_y_log_a(probs, labels), axis=axes)


def sigmoid_binary_cross_entropy(
    logits: jax.Array, labels: jax.Array, where: jax.Array | None, axes: Axes
) -> jax.Array:
    """The binary cost of :math:`a = \\sigma(z)`."""
    return binary_cross_entropy(sigmoid(logits), labels, where, axes)


def softmax_cross_entropy(logits: jax.Array, labels: jax.Array, where: jax.Array | None, axes: Axes) -> jax.Array:
    """The categorical cost of :math:`a = \\operatorname{softmax}(z)`."""
    return categorical_cross_entropy(softmax(logits, axes), labels, where, axes)


def softmax_cross_entropy_with_integer_labels(
    logits: jax.Array, labels: jax.Array, where: jax.Array | None, axes: Axes
) -> jax.Array:
    """:math:`-\\log(e^{z_l} / \\sum_p e^{z_p})`, the sum over the classes that ``where`` keeps."""
    kept = kept_logits(logits, where)
    total = jnp.sum(jnp.exp(kept), axis=axes)
    is_label, in_range = integer_label_mask(logits, labels, axes)
    z_label = jnp.sum(jnp.where(is_label, logits, 0.0), axis=axes)
    live = total > 0 if where is None else jnp.any(where, axis=axes)
    loss = -jnp.log(jnp.exp(z_label) / jnp.where(live, total, 1.0))
    loss = jnp.where(jnp.squeeze(in_range, axes), loss, jnp.nan)
    return jnp.where(live, loss, 0.0)


def sigmoid_cross_entropy_with_options(logits: jax.Array, labels: jax.Array, options: Any, axes: Axes) -> jax.Array:
    """:math:`-w [w_+ y' \\log \\sigma(z') + (1 - y') \\log(1 - \\sigma(z'))]`, with :math:`z' = c \\tanh(z/c)`."""
    del axes
    probs = sigmoid(soft_cap(logits, options.cap))
    smoothed = smooth_binary_labels(labels, options.smoothing)
    positive = smoothed * jnp.log(probs)
    if options.pos_weight is not None:
        positive = options.pos_weight * positive
    loss = -(positive + (1.0 - smoothed) * jnp.log(1.0 - probs))
    return loss if options.weights is None else options.weights * loss


def softmax_cross_entropy_with_options(logits: jax.Array, labels: jax.Array, options: Any, axes: Axes) -> jax.Array:
    """:math:`-\\sum_j y'_j \\log a_j + \\alpha (\\log \\sum_p e^{z'_p})^2`.

    With :math:`a = \\operatorname{softmax}(z')` and :math:`y'` the effective labels.
    """
    capped = soft_cap(logits, options.cap)
    effective = option_labels(capped, labels, options.smoothing, options.weights, axes)
    loss = categorical_cross_entropy(softmax(capped, axes), effective, None, axes)
    if options.z_loss is not None:
        total = jnp.sum(jnp.exp(capped), axis=axes)
        live = total > 0
        loss = loss + jnp.where(live, options.z_loss * jnp.square(jnp.log(jnp.where(live, total, 1.0))), 0.0)
    return loss
