"""The closed-form seeds: the one place where derivative math is written.

Each function returns the gradient of the **per-example** cost with respect to its first
argument, or, for the ``*_labels_grad`` functions, with respect to the labels. The article's
cost ``J`` is the mean over the ``m`` examples, so its seeds are these divided by ``m``.

================================  ===============================  ===========================
cost                              seed, per example                article
================================  ===============================  ===========================
sigmoid, logit space              :math:`\\sigma(z) - y`            dJ/dZ = (A - Y)/m
softmax, logit space              :math:`a \\sum_p y_p - y`         dJ/dZ = (a sum(y) - y)/m
sigmoid, probability space        :math:`(a - y) / (a (1 - a))`    dJ/dA
softmax, probability space        :math:`-y / a`                   dJ/dA = -(1/m) y/a
================================  ===============================  ===========================

The custom rules in :mod:`jaxloss` (``custom_vjp``) and :mod:`jaxloss.forward` (``custom_jvp``)
are built from the private ``*_from_*`` functions below, which take the statistics the forward
pass has already computed; the public functions compute those statistics and call them.

Cancellation is avoided where it would cost digits: at an arg-max class the softmax seed is
formed as :math:`((\\sum_p y_p - y_j) - y_j T)/S` with :math:`S = 1 + T`, so the confident
one-hot case :math:`p_l - 1 = -T/S` keeps every digit (integer labels too; off the arg-max,
:math:`p_l \\le 1/2` and :math:`p_l - 1` does not cancel); and the sigmoid seed is
:math:`(1 - y) - \\sigma(-z)` for :math:`z \\ge 0`.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from jaxloss import _checks, _options, _stable
from jaxloss._stable import Axes, SoftmaxStats

__all__ = [
    "binary_cross_entropy_grad",
    "binary_cross_entropy_labels_grad",
    "categorical_cross_entropy_grad",
    "categorical_cross_entropy_labels_grad",
    "multilabel_cross_entropy_grad",
    "sigmoid_binary_cross_entropy_grad",
    "sigmoid_binary_cross_entropy_labels_grad",
    "sigmoid_multilabel_cross_entropy_grad",
    "soft_cap_grad",
    "softmax_cross_entropy_grad",
    "softmax_cross_entropy_labels_grad",
    "softmax_cross_entropy_with_integer_labels_grad",
    "z_loss_grad",
]


# --- sigmoid, logit space ---------------------------------------------------------------


def sigmoid_binary_cross_entropy_grad_from_inputs(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """:math:`\\partial\\ell/\\partial z = \\sigma(z) - y`, as :math:`(1-y) - \\sigma(-z)` for z >= 0."""
    small = jnp.exp(-jnp.abs(logits))
    sigmoid_of_minus_abs = small / (1.0 + small)  # sigma(-|z|), no cancellation
    return jnp.where(logits >= 0, (1.0 - labels) - sigmoid_of_minus_abs, sigmoid_of_minus_abs - labels)


def sigmoid_binary_cross_entropy_labels_grad_from_inputs(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """:math:`\\partial\\ell/\\partial y = \\log(1 - \\sigma(z)) - \\log\\sigma(z) = -z`."""
    return jnp.broadcast_to(-logits, jnp.broadcast_shapes(logits.shape, labels.shape))


# --- softmax, logit space ---------------------------------------------------------------


def _softmax_from_stats(logits: jax.Array, stats: SoftmaxStats) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Returns ``p``, the arg-max mask and ``S = 1 + T``."""
    total = 1.0 + stats.rest
    shifted = _stable.shifted_logits(logits, stats.max)
    # An arg-max is d >= 0, read as softmax_stats reads it (see there), not z == M.
    return _stable.divide_by_row(jnp.exp(shifted), total), shifted >= 0, total


def softmax_cross_entropy_grad_from_stats(
    logits: jax.Array, labels: jax.Array, stats: SoftmaxStats, axes: Axes
) -> jax.Array:
    """:math:`\\partial\\ell/\\partial z_j = p_j \\sum_p y_p - y_j` (the article's general form)."""
    probs, is_max, total = _softmax_from_stats(logits, stats)
    # A per-row step between the sum and its broadcast, so that XLA's CPU backend does not write
    # the broadcast label sum out as an array the size of the labels.
    label_sum = jnp.sum(labels, axis=axes, keepdims=True) + 0.0 * stats.rest
    at_max = ((label_sum - labels) - labels * stats.rest) / total
    grad = jnp.where(is_max, at_max, probs * label_sum - labels)
    return jnp.where(_stable.live_rows(stats), grad, 0.0)


def softmax_cross_entropy_labels_grad_from_stats(logits: jax.Array, stats: SoftmaxStats) -> jax.Array:
    """:math:`\\partial\\ell/\\partial y_j = -\\log p_j`, and 0 at a masked (``-inf``) class.

    A ``-inf`` logit marks a class out of play, so its label is ignored as ``where`` would ignore
    it, rather than passing an infinite gradient back to whatever produced the labels.
    """
    grad = _stable.neg_log_softmax(logits, stats)
    return jnp.where(_stable.live_rows(stats) & (logits != -jnp.inf), grad, 0.0)


def softmax_cross_entropy_with_integer_labels_grad_from_stats(
    kept_logits: jax.Array, labels: jax.Array, stats: SoftmaxStats, live: jax.Array, axes: Axes
) -> jax.Array:
    """:math:`\\partial\\ell/\\partial z_j = p_j - [j = l]`.

    At the label, when it is an arg-max, :math:`p_l - 1 = -T/S`: no cancellation for a
    confident prediction. Otherwise :math:`p_l \\le 1/2` and :math:`p_l - 1` is formed directly.
    """
    probs, is_max, total = _softmax_from_stats(kept_logits, stats)
    is_label, in_range = _stable.integer_label_mask(kept_logits, labels, axes)
    # One use of `probs`, so that XLA fuses the whole seed into one loop.
    grad = jnp.where(is_label & is_max, -stats.rest / total, probs - is_label.astype(probs.dtype))
    grad = jnp.where(in_range, grad, jnp.nan)
    return jnp.where(live, grad, 0.0)


# --- probability space -----------------------------------------------------------------


def binary_cross_entropy_grad_from_clamped(clamped: jax.Array, labels: jax.Array) -> jax.Array:
    """:math:`\\partial\\ell/\\partial a = (1-y)/(1-a) - y/a = (a - y)/(a(1 - a))`, one fraction, no cancellation.

    :math:`a - y` and :math:`1 - a` are each carried with their rounding errors (an exact
    two-term sum), and the quotient is corrected for both, so that only the product
    :math:`a(1 - a)`, the division and the correction round: about 1.5 ulp instead of 2.2.
    """
    diff, diff_error = _stable.two_sum(clamped, -labels)
    rest, rest_error = _stable.one_minus(clamped)
    denominator = clamped * rest
    quotient = diff / denominator
    return quotient + (diff_error - quotient * (clamped * rest_error)) / denominator


def binary_cross_entropy_labels_grad_from_clamped(clamped: jax.Array) -> jax.Array:
    """:math:`\\partial\\ell/\\partial y = \\log(1-a) - \\log a = \\log((1 - a)/a)`.

    The two logarithms cancel near :math:`a = 1/2`, so it is one log1p of a non-negative
    argument: :math:`\\log1p((1 - 2a)/a)` for :math:`a \\le 1/2` and
    :math:`-\\log1p((2a - 1)/(1 - a))` above, where :math:`2a - 1` and :math:`1 - a` are exact
    (Sterbenz) and :math:`1 - 2a` is exact from :math:`a = 1/4` up.
    """
    low = clamped <= 0.5
    numerator = jnp.where(low, 1.0 - 2.0 * clamped, 2.0 * clamped - 1.0)
    denominator = jnp.where(low, clamped, 1.0 - clamped)
    magnitude = _stable.log1p_nonnegative(numerator / denominator)
    return jnp.where(low, magnitude, -magnitude)


def categorical_cross_entropy_grad_from_clamped(clamped: jax.Array, labels: jax.Array) -> jax.Array:
    """:math:`\\partial\\ell/\\partial a_j = -y_j / a_j`."""
    return -labels / clamped


def categorical_cross_entropy_labels_grad_from_clamped(clamped: jax.Array) -> jax.Array:
    """:math:`\\partial\\ell/\\partial y_j = -\\log a_j`."""
    return -jnp.log(clamped)


# --- the training options --------------------------------------------------------------


def soft_cap_grad_from_inputs(logits: jax.Array, cap: jax.Array | None) -> jax.Array:
    """:math:`d(c \\tanh(z/c))/dz = 1 - \\tanh^2(z/c) = 1/\\cosh^2(z/c)` (no cancellation near ±1)."""
    if cap is None:
        return jnp.ones_like(logits)
    return 1.0 / jnp.square(jnp.cosh(logits / cap))


def sigmoid_pos_weighted_grad_from_inputs(logits: jax.Array, labels: jax.Array, pos_weight: jax.Array) -> jax.Array:
    """:math:`\\partial\\ell/\\partial z = (1 - y)\\,\\sigma(z) - w_+ y\\,\\sigma(-z)`."""
    small = jnp.exp(-jnp.abs(logits))
    below_half = small / (1.0 + small)  # sigma(-|z|)
    above_half = 1.0 / (1.0 + small)  # sigma(|z|)
    positive = logits >= 0
    sigmoid = jnp.where(positive, above_half, below_half)
    sigmoid_of_minus = jnp.where(positive, below_half, above_half)
    return (1.0 - labels) * sigmoid - pos_weight * labels * sigmoid_of_minus


def sigmoid_pos_weighted_labels_grad_from_inputs(logits: jax.Array, pos_weight: jax.Array) -> jax.Array:
    """:math:`\\partial\\ell/\\partial y = w_+ \\operatorname{sp}(-z) - \\operatorname{sp}(z)`."""
    return pos_weight * _stable.softplus(-logits) - _stable.softplus(logits)


def sigmoid_options_grads_from_inputs(
    logits: jax.Array, labels: jax.Array, options: Any
) -> tuple[jax.Array, jax.Array]:
    """Seeds of the sigmoid cost with options, w.r.t. the logits and the labels.

    With :math:`z' = c \\tanh(z/c)` and :math:`y' = (1 - \\epsilon) y + \\epsilon/2`:
    :math:`\\partial\\ell/\\partial z = w\\,[(1 - y')\\sigma(z') - w_+ y' \\sigma(-z')]\\,(1 - \\tanh^2(z/c))`
    and :math:`\\partial\\ell/\\partial y = w(1 - \\epsilon)[w_+ \\operatorname{sp}(-z') - \\operatorname{sp}(z')]`.
    """
    capped = _stable.soft_cap(logits, options.cap)
    smoothed = _stable.smooth_binary_labels(labels, options.smoothing)
    if options.pos_weight is None:
        grad = sigmoid_binary_cross_entropy_grad_from_inputs(capped, smoothed)
        labels_grad = sigmoid_binary_cross_entropy_labels_grad_from_inputs(capped, smoothed)
    else:
        grad = sigmoid_pos_weighted_grad_from_inputs(capped, smoothed, options.pos_weight)
        labels_grad = sigmoid_pos_weighted_labels_grad_from_inputs(capped, options.pos_weight)
    if options.smoothing is not None:
        labels_grad = (1.0 - options.smoothing) * labels_grad
    if options.weights is not None:
        grad, labels_grad = options.weights * grad, options.weights * labels_grad
    if options.cap is not None:
        grad = grad * soft_cap_grad_from_inputs(logits, options.cap)
    return grad, labels_grad


def z_loss_grad_from_stats(logits: jax.Array, stats: SoftmaxStats, z_loss: jax.Array) -> jax.Array:
    """:math:`\\partial(\\alpha \\operatorname{lse}(z)^2)/\\partial z = 2\\alpha \\operatorname{lse}(z)\\, a`."""
    probs, _, _ = _softmax_from_stats(logits, stats)
    grad = (2.0 * z_loss) * _stable.log_sum_exp(stats) * probs
    return jnp.where(_stable.live_rows(stats), grad, 0.0)


def softmax_options_grads_from_stats(
    logits: jax.Array, capped: jax.Array, labels: jax.Array, options: Any, stats: SoftmaxStats, axes: Axes
) -> tuple[jax.Array, jax.Array]:
    """Seeds of the softmax cost with options; ``stats`` are those of the capped logits.

    With :math:`z' = c \\tanh(z/c)` and :math:`y' = w \\odot ((1 - \\epsilon) y + \\epsilon / C)`:
    :math:`\\partial\\ell/\\partial z = (a \\sum_p y'_p - y' + 2\\alpha \\operatorname{lse}(z') a)(1 - \\tanh^2(z/c))`
    and :math:`\\partial\\ell/\\partial y = -w (1 - \\epsilon) \\log a`. ``capped`` is :math:`z'`, computed once
    in the forward pass.
    """
    effective = _stable.option_labels(capped, labels, options.smoothing, options.weights, axes)
    grad = softmax_cross_entropy_grad_from_stats(capped, effective, stats, axes)
    if options.z_loss is not None:
        grad = grad + z_loss_grad_from_stats(capped, stats, options.z_loss)
    if options.cap is not None:
        grad = grad * soft_cap_grad_from_inputs(logits, options.cap)
    labels_grad = softmax_cross_entropy_labels_grad_from_stats(capped, stats)
    if options.smoothing is not None:
        labels_grad = (1.0 - options.smoothing) * labels_grad
    if options.weights is not None:
        labels_grad = options.weights * labels_grad
    return grad, labels_grad


def integer_labels_block_grad_from_totals(
    raw_logits: jax.Array,
    is_label: jax.Array,
    row_max: jax.Array,
    total: jax.Array,
    others: jax.Array,
    lse: jax.Array,
    label_weight: jax.Array,
    options: Any,
    class_weights: jax.Array | None,
    weight_total: jax.Array,
    num_classes: int,
) -> jax.Array:
    """The integer-label softmax seed on a block of classes, from whole-vocabulary row totals.

    Used where the logits come a block (or a device's shard) at a time: :math:`M`, :math:`S`,
    :math:`R = \\sum_{j \\ne l} e^{z_j - M}` and :math:`\\operatorname{lse}` are per row, over
    every class. :math:`p = e^{z - M}/S` and :math:`p_l - 1 = -R/S`, with no cancellation. With
    the options (``raw_logits`` are then before the soft cap; ``class_weights`` are the block's
    weights, needed with label smoothing) it is
    :math:`(1 - \\epsilon) w_l (p - \\text{onehot}) + \\frac{\\epsilon}{C}(p \\sum_j w_j - w)
    + 2\\alpha \\operatorname{lse}\\, p`, times :math:`1 - \\tanh^2(z/c)`: the same seed as
    :func:`softmax_options_grads_from_stats` of the one-hot labels.
    """
    logits = _stable.soft_cap(raw_logits, options.cap)
    probs = _stable.divide_by_row(jnp.exp(logits - row_max[:, None]), total[:, None])
    grad = jnp.where(is_label, (-others / total)[:, None], probs)
    if options.smoothing is not None or options.weights is not None:
        keep_share = 1.0 if options.smoothing is None else 1.0 - options.smoothing
        grad = (keep_share * label_weight)[:, None] * grad
        if options.smoothing is not None:
            assert class_weights is not None
            grad = grad + (options.smoothing / num_classes) * (weight_total * probs - class_weights[None, :])
    if options.z_loss is not None:
        grad = grad + (2.0 * options.z_loss) * lse[:, None] * probs
    if options.cap is not None:
        grad = grad * soft_cap_grad_from_inputs(raw_logits, options.cap)
    return grad


# --- public seeds ----------------------------------------------------------------------


def _floats(*arrays: jax.typing.ArrayLike) -> list[jax.Array]:
    out = [jnp.asarray(a) for a in arrays]
    dtype = _checks.compute_dtype(*out)
    return [jnp.broadcast_to(a.astype(dtype), jnp.broadcast_shapes(*(o.shape for o in out))) for a in out]


def sigmoid_binary_cross_entropy_grad(
    logits: jax.typing.ArrayLike,
    labels: jax.typing.ArrayLike,
    *,
    label_smoothing: float | jax.typing.ArrayLike = 0.0,
    weights: jax.typing.ArrayLike | None = None,
    pos_weight: jax.typing.ArrayLike | None = None,
    soft_cap: float | jax.typing.ArrayLike | None = None,
) -> jax.Array:
    """dJ/dZ of the sigmoid cost, per example: :math:`\\sigma(z) - y`.

    With the options of :func:`jaxloss.sigmoid_binary_cross_entropy` it is
    :math:`w\\,[(1 - y')\\sigma(z') - w_+ y' \\sigma(-z')]\\,(1 - \\tanh^2(z/c))`, with
    :math:`y' = (1 - \\epsilon) y + \\epsilon/2` and :math:`z' = c \\tanh(z/c)`.

    Examples:
      >>> import jax.numpy as jnp
      >>> from jaxloss import seeds
      >>> grad = seeds.sigmoid_binary_cross_entropy_grad(jnp.array([0.0, 20.0]), jnp.array([1.0, 1.0]))
      >>> print([f"{g:.6e}" for g in grad.tolist()])
      ['-5.000000e-01', '-2.061154e-09']
    """
    z, y = _floats(logits, labels)
    options = _options.sigmoid_options(
        z, label_smoothing=label_smoothing, weights=weights, pos_weight=pos_weight, soft_cap=soft_cap
    )
    if options is None:
        return sigmoid_binary_cross_entropy_grad_from_inputs(z, y)
    return sigmoid_options_grads_from_inputs(z, y, options)[0]


def sigmoid_binary_cross_entropy_labels_grad(logits: jax.typing.ArrayLike, labels: jax.typing.ArrayLike) -> jax.Array:
    """dJ/dY of the sigmoid cost, per example: :math:`-z`."""
    z, y = _floats(logits, labels)
    return sigmoid_binary_cross_entropy_labels_grad_from_inputs(z, y)


sigmoid_multilabel_cross_entropy_grad = sigmoid_binary_cross_entropy_grad
"""dJ/dZ of the multi-label cost: label by label, the sigmoid seed :math:`\\sigma(z) - y`."""


def softmax_cross_entropy_grad(
    logits: jax.typing.ArrayLike,
    labels: jax.typing.ArrayLike,
    axis: int | tuple[int, ...] = -1,
    *,
    label_smoothing: float | jax.typing.ArrayLike = 0.0,
    weights: jax.typing.ArrayLike | None = None,
    z_loss: float | jax.typing.ArrayLike = 0.0,
    soft_cap: float | jax.typing.ArrayLike | None = None,
) -> jax.Array:
    """dJ/dZ of the softmax cost, per example: :math:`a \\sum_p y_p - y`.

    It is :math:`a - y` only when the labels sum to one. With the options of
    :func:`jaxloss.softmax_cross_entropy` it is
    :math:`(a \\sum_p y'_p - y' + 2\\alpha \\operatorname{lse}(z')\\, a)(1 - \\tanh^2(z/c))`, with
    :math:`y' = w \\odot ((1 - \\epsilon) y + \\epsilon / C)`, :math:`z' = c \\tanh(z/c)` and
    :math:`a = \\operatorname{softmax}(z')`.

    Examples:
      >>> import jax.numpy as jnp
      >>> from jaxloss import seeds
      >>> print(seeds.softmax_cross_entropy_grad(jnp.zeros(4), jnp.array([0.5, 0.5, 0.0, 0.0])))
      [-0.25 -0.25  0.25  0.25]
    """
    z, y = _floats(logits, labels)
    axes = _checks.canonical_axes(axis, z.ndim, "logits")
    options = _options.softmax_options(
        z, axes, label_smoothing=label_smoothing, weights=weights, z_loss=z_loss, soft_cap=soft_cap
    )
    if options is None:
        return softmax_cross_entropy_grad_from_stats(z, y, _stable.softmax_stats(z, axes), axes)
    capped = _stable.soft_cap(z, options.cap)
    stats = _stable.softmax_stats(capped, axes)
    return softmax_options_grads_from_stats(z, capped, y, options, stats, axes)[0]


def softmax_cross_entropy_labels_grad(
    logits: jax.typing.ArrayLike, labels: jax.typing.ArrayLike, axis: int | tuple[int, ...] = -1
) -> jax.Array:
    """dJ/dY of the softmax cost, per example: :math:`-\\log a`."""
    z, _ = _floats(logits, labels)
    axes = _checks.canonical_axes(axis, z.ndim, "logits")
    return softmax_cross_entropy_labels_grad_from_stats(z, _stable.softmax_stats(z, axes))


def softmax_cross_entropy_with_integer_labels_grad(
    logits: jax.typing.ArrayLike,
    labels: jax.typing.ArrayLike,
    axis: int = -1,
    *,
    label_smoothing: float | jax.typing.ArrayLike = 0.0,
    weights: jax.typing.ArrayLike | None = None,
    ignore_index: int | None = None,
    z_loss: float | jax.typing.ArrayLike = 0.0,
    soft_cap: float | jax.typing.ArrayLike | None = None,
) -> jax.Array:
    """dJ/dZ of the softmax cost with integer labels, per example: :math:`a - \\operatorname{onehot}(l)`.

    With options, it is :func:`softmax_cross_entropy_grad` of the one-hot labels, and 0 for
    the examples whose label is ``ignore_index``.

    Examples:
      >>> import jax.numpy as jnp
      >>> from jaxloss import seeds
      >>> grad = seeds.softmax_cross_entropy_with_integer_labels_grad(jnp.array([30.0, 0.0]), jnp.array(0))
      >>> print([f"{g:.6e}" for g in grad.tolist()])
      ['-9.357623e-14', '9.357623e-14']
    """
    (z,) = _floats(logits)
    classes = jnp.asarray(labels)
    axes = _checks.canonical_axes(axis, z.ndim, "logits")
    options = _options.softmax_options(
        z, axes, label_smoothing=label_smoothing, weights=weights, z_loss=z_loss, soft_cap=soft_cap
    )
    if options is None and ignore_index is None:
        stats = _stable.softmax_stats(z, axes)
        return softmax_cross_entropy_with_integer_labels_grad_from_stats(
            z, classes, stats, _stable.live_rows(stats), axes
        )
    y, counts = _stable.integer_labels_as_soft(z, classes, axes, ignore_index)
    grad = softmax_cross_entropy_grad(
        z, y, axes, label_smoothing=label_smoothing, weights=weights, z_loss=z_loss, soft_cap=soft_cap
    )
    return jnp.where(jnp.expand_dims(counts, axes), grad, 0.0)


def soft_cap_grad(logits: jax.typing.ArrayLike, soft_cap: float | jax.typing.ArrayLike) -> jax.Array:
    """The chain factor of logit soft-capping: :math:`d(c \\tanh(z/c))/dz = 1 - \\tanh^2(z/c)`."""
    (z,) = _floats(logits)
    return soft_cap_grad_from_inputs(z, jnp.asarray(soft_cap, z.dtype))


def z_loss_grad(
    logits: jax.typing.ArrayLike, z_loss: float | jax.typing.ArrayLike, axis: int | tuple[int, ...] = -1
) -> jax.Array:
    """The seed of the z-loss :math:`\\alpha \\operatorname{lse}(z)^2`: :math:`2 \\alpha \\operatorname{lse}(z) a`."""
    (z,) = _floats(logits)
    axes = _checks.canonical_axes(axis, z.ndim, "logits")
    return z_loss_grad_from_stats(z, _stable.softmax_stats(z, axes), jnp.asarray(z_loss, z.dtype))


def binary_cross_entropy_grad(probs: jax.typing.ArrayLike, labels: jax.typing.ArrayLike) -> jax.Array:
    """dJ/dA of the binary cost, per example: :math:`(1-y)/(1-a) - y/a`, clamped as the cost is.

    Examples:
      >>> import jax.numpy as jnp
      >>> from jaxloss import seeds
      >>> print(seeds.binary_cross_entropy_grad(jnp.array([0.25, 0.5]), jnp.array([1.0, 0.0])))
      [-4.  2.]
    """
    a, y = _floats(probs, labels)
    return binary_cross_entropy_grad_from_clamped(_stable.clamp_probs(a, upper=True), y)


def binary_cross_entropy_labels_grad(probs: jax.typing.ArrayLike, labels: jax.typing.ArrayLike) -> jax.Array:
    """dJ/dY of the binary cost, per example: :math:`\\log(1-a) - \\log a`."""
    a, _ = _floats(probs, labels)
    return binary_cross_entropy_labels_grad_from_clamped(_stable.clamp_probs(a, upper=True))


multilabel_cross_entropy_grad = binary_cross_entropy_grad
"""dJ/dA of the multi-label cost: label by label, the binary seed."""


def categorical_cross_entropy_grad(probs: jax.typing.ArrayLike, labels: jax.typing.ArrayLike) -> jax.Array:
    """dJ/dA of the categorical cost, per example: :math:`-y/a`, clamped as the cost is.

    Examples:
      >>> import jax.numpy as jnp
      >>> from jaxloss import seeds
      >>> print(seeds.categorical_cross_entropy_grad(jnp.array([0.25, 0.75]), jnp.array([1.0, 0.0])))
      [-4. -0.]
    """
    a, y = _floats(probs, labels)
    return categorical_cross_entropy_grad_from_clamped(_stable.clamp_probs(a, upper=False), y)


def categorical_cross_entropy_labels_grad(probs: jax.typing.ArrayLike, labels: jax.typing.ArrayLike) -> jax.Array:
    """dJ/dY of the categorical cost, per example: :math:`-\\log a`."""
    a, _ = _floats(probs, labels)
    return categorical_cross_entropy_labels_grad_from_clamped(_stable.clamp_probs(a, upper=False))
