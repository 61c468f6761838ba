"""The article's formulas, literally: the activation, then the cost. No custom rule; autodiff differentiates them.

"Feedforward Neural Networks in Depth, Part 3: Cost Functions" (J. Lalin, 2021):

.. math::
  J = -\\frac{1}{m}\\sum_i \\left[y_i \\log a_i + (1 - y_i)\\log(1 - a_i)\\right],
  \\quad a = \\sigma(z) = \\frac{1}{1 + e^{-z}}

.. math::
  J = -\\frac{1}{m}\\sum_i \\sum_j y_{ji} \\log a_{ji}, \\quad a_j = \\frac{e^{z_j}}{\\sum_p e^{z_p}}

Per example (no 1/m). Each function has the signature of the rule it is the reference of,
``(x, y, aux, axes)``. The only departures from the letter are the conventions every namespace
shares: ``0 log 0 = 0``, masks written with the double ``where`` (so masked entries get a zero
gradient, not ``0 * inf``), a dead row costs 0, NaN in gives NaN out, and a label outside the
classes gives NaN. The formulas overflow where float arithmetic does: the sigmoid rounds to 0 or
1 once |z| passes about 17 in float32, and the softmax overflows once a logit passes about 88.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from jaxloss import _clamp, _options
from jaxloss._checks import Axes


def _y_log_a(probs: jax.Array, labels: jax.Array) -> jax.Array:
    """:math:`y \\log a` with ``0 log 0 = 0``; only that point is replaced, so d/dy = log a is kept elsewhere."""
    zero_times_log_zero = (labels == 0) & (probs == 0)
    return labels * jnp.log(jnp.where(zero_times_log_zero, 1.0, probs))


def sigmoid(logits: jax.Array) -> jax.Array:
    """:math:`\\sigma(z) = 1/(1 + e^{-z})`."""
    return 1.0 / (1.0 + jnp.exp(-logits))


def softmax(logits: jax.Array, axes: Axes) -> jax.Array:
    """:math:`e^{z_j} / \\sum_p e^{z_p}`, without the max shift (a dead row gives 0)."""
    exps = jnp.exp(logits)
    total = jnp.sum(exps, axis=axes, keepdims=True)
    return exps / jnp.where(total == 0, 1.0, total)


def _live(logits: jax.Array, axes: Axes) -> jax.Array:
    """Rows with a class that is not ``-inf`` (NaN rows count as live)."""
    return jnp.any(logits != -jnp.inf, axis=axes)


def binary_cross_entropy(probs: jax.Array, labels: jax.Array, limits: Any, axes: Axes) -> jax.Array:
    """:math:`-[y \\log a + (1 - y) \\log(1 - a)]`, with ``0 log 0 = 0``."""
    del limits, axes
    probs = _clamp.outside_as_nan(probs)
    return -(_y_log_a(probs, labels) + _y_log_a(1.0 - probs, 1.0 - labels))


def categorical_cross_entropy(probs: jax.Array, labels: jax.Array, limits: Any, axes: Axes) -> jax.Array:
    """:math:`-\\sum_j y_j \\log a_j`."""
    del limits
    probs = _clamp.outside_as_nan(probs)
    return -jnp.sum(_y_log_a(probs, labels), axis=axes)


def sigmoid_binary_cross_entropy(logits: jax.Array, labels: jax.Array, options: Any, axes: Axes) -> jax.Array:
    """:math:`-w [w_+ y' \\log \\sigma(z') + (1 - y') \\log(1 - \\sigma(z'))]`, with :math:`z' = c \\tanh(z/c)`."""
    del axes
    if options is None:
        return binary_cross_entropy(sigmoid(logits), labels, None, ())
    probs = sigmoid(_options.soft_cap(logits, options.cap))
    smoothed = _options.smooth_binary_labels(labels, options.smoothing)
    positive = smoothed * jnp.log(probs)
    if options.pos_weight is not None:
        positive = options.pos_weight * positive
    loss = -(positive + (1.0 - smoothed) * jnp.log(1.0 - probs))
    return loss if options.weights is None else options.weights * loss


def softmax_cross_entropy(logits: jax.Array, labels: jax.Array, options: Any, axes: Axes) -> jax.Array:
    """:math:`-\\sum_j y'_j \\log a_j + \\alpha (\\log \\sum_p e^{z'_p})^2`, :math:`a = \\operatorname{softmax}(z')`."""
    live = _live(logits, axes)
    # A dead row costs 0 with a zero gradient: it is computed on zeros, not on 0/0.
    logits = jnp.where(jnp.expand_dims(live, axes), logits, 0.0)
    if options is None:
        loss = categorical_cross_entropy(softmax(logits, axes), labels, None, axes)
        return jnp.where(live, loss, 0.0)
    capped = _options.soft_cap_classes(logits, options.cap)
    effective = _options.option_labels(capped, labels, options, axes)
    loss = categorical_cross_entropy(softmax(capped, axes), effective, None, axes)
    if options.z_loss is not None:
        total = jnp.sum(jnp.exp(capped), axis=axes)
        loss = loss + options.z_loss * jnp.square(jnp.log(total))
    return jnp.where(live, loss, 0.0)


def softmax_cross_entropy_with_integer_labels(logits: jax.Array, labels: jax.Array, aux: Any, axes: Axes) -> jax.Array:
    """The integer-label cost with its options, literally.

    .. math::
      (1 - \\epsilon) w_l (\\log \\textstyle\\sum_p e^{z'_p} - z'_l)
      + \\frac{\\epsilon}{C} \\sum_j w_j (\\log \\textstyle\\sum_p e^{z'_p} - z'_j)
      + \\alpha (\\log \\textstyle\\sum_p e^{z'_p})^2

    The sums over :math:`p` run over the classes ``where`` keeps; :math:`z'_l` is read whether
    or not its class is kept (optax's meaning), and the smoothing share goes to the :math:`C`
    classes in play. Without options it is :math:`\\log \\sum_p e^{z_p} - z_l`.
    """
    (axis,) = axes
    where, options = aux.where, aux.options
    capped = logits if options is None else _options.soft_cap_classes(logits, options.cap)
    kept = capped if where is None else jnp.where(where, capped, -jnp.inf)
    total = jnp.sum(jnp.exp(kept), axis=axis)
    live = _live(kept, axes)
    log_total = jnp.log(jnp.where(live, total, 1.0))
    num_classes = logits.shape[axis]
    index = jnp.expand_dims(labels, axis)
    is_label = jax.lax.broadcasted_iota(labels.dtype, logits.shape, axis) == index
    label_logit = jnp.sum(jnp.where(is_label, capped, 0.0), axis=axis)
    loss = log_total - label_logit
    if options is not None:
        if options.weights is not None:
            loss = jnp.sum(jnp.where(is_label, options.weights, 0.0), axis=axis) * loss
        if options.smoothing is not None:
            in_play = kept != -jnp.inf
            weights = 1.0 if options.weights is None else options.weights
            gaps = jnp.where(in_play, weights * (jnp.expand_dims(log_total, axis) - kept), 0.0)
            share = options.smoothing / jnp.maximum(jnp.sum(in_play, axis=axis, dtype=logits.dtype), 1.0)
            loss = (1.0 - options.smoothing) * loss + share * jnp.sum(gaps, axis=axis)
        if options.z_loss is not None:
            loss = loss + options.z_loss * jnp.square(log_total)
    in_range = (labels >= 0) & (labels < num_classes)
    # NaN for a label out of range, in the loss and (through the product) in its gradient.
    return jnp.where(live, loss * jnp.where(in_range, 1.0, jnp.nan), 0.0)


# --- beyond the article: the rest of optax's family, literally ----------------------------------


def sigmoid_focal_loss(logits: jax.Array, labels: jax.Array, aux: Any, axes: Axes) -> jax.Array:
    """:math:`a_t (1 - p_t)^\\gamma \\mathrm{ce}`, :math:`p_t = a y + (1 - a)(1 - y)`, :math:`a = \\sigma(z)`.

    torchvision's formula, with optax's :math:`a_t = 1` when ``alpha`` is None.
    """
    del axes
    probs = sigmoid(logits)
    ce = binary_cross_entropy(probs, labels, None, ())
    p_t = probs * labels + (1.0 - probs) * (1.0 - labels)
    loss = jnp.power(1.0 - p_t, aux.gamma) * ce
    if aux.alpha is None:
        return loss
    return (aux.alpha * labels + (1.0 - aux.alpha) * (1.0 - labels)) * loss


def poly_loss_cross_entropy(logits: jax.Array, labels: jax.Array, epsilon: Any, axes: Axes) -> jax.Array:
    """Poly-1: :math:`-\\sum_j y_j \\log a_j + \\epsilon \\sum_j y_j (1 - a_j)`, :math:`a = \\mathrm{softmax}(z)`.

    optax's formula; a dead row costs 0, as in :func:`softmax_cross_entropy`.
    """
    live = _live(logits, axes)
    logits = jnp.where(jnp.expand_dims(live, axes), logits, 0.0)
    probs = softmax(logits, axes)
    # A masked (-inf) class is out of play, its label ignored as in the cross-entropy's 0 log 0.
    first = jnp.where(logits == -jnp.inf, 0.0, labels * (1.0 - probs))
    loss = categorical_cross_entropy(probs, labels, None, axes) + epsilon * jnp.sum(first, axis=axes)
    return jnp.where(live, loss, 0.0)


def kl_divergence(log_predictions: jax.Array, targets: jax.Array, aux: Any, axes: Axes) -> jax.Array:
    """:math:`t (\\log t - \\log p)` with ``0 log 0 = 0`` (optax's, with the double ``where``)."""
    del aux, axes
    absent = targets == 0
    safe = jnp.where(absent, 1.0, targets)
    return jnp.where(absent, 0.0, safe * (jnp.log(safe) - jnp.where(absent, 0.0, log_predictions)))


def kl_divergence_with_log_targets(
    log_predictions: jax.Array, log_targets: jax.Array, aux: Any, axes: Axes
) -> jax.Array:
    """:math:`e^{\\log t} (\\log t - \\log p)`, 0 at a ``-inf`` log-target (optax's, with the double ``where``)."""
    del aux, axes
    absent = log_targets == -jnp.inf
    safe = jnp.where(absent, 0.0, log_targets)
    return jnp.where(absent, 0.0, jnp.exp(safe) * (safe - jnp.where(absent, 0.0, log_predictions)))
