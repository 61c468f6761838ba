"""The closed-form seeds: the one place where derivative math is written.

Each function returns the gradient of the **per-example** cost with respect to its first
argument, or, for the ``*_labels_grad`` functions, with respect to the labels. The article's
cost ``J`` is the mean over the ``m`` examples, so its seeds are these divided by ``m``.

The table of the seeds and the article's equations is in :mod:`jaxloss.seeds`.

Each function takes what the forward pass has already computed (the inputs, the row statistics
of ``_stats``). The custom rules of :mod:`jaxloss` (``custom_vjp``) and :mod:`jaxloss.forward`
(``custom_jvp``) pair them with the forward formulas in the family modules; the public
:mod:`jaxloss.seeds` evaluates them through those rules.

Cancellation is avoided where it would cost digits: at an arg-max class the soft-label seed is
formed as :math:`((\\sum_p y_p - y_j) - y_j T)/S` with :math:`S = 1 + T`, so the confident
one-hot case :math:`p_l - 1 = -T/S` keeps every digit; with integer labels
:math:`p_l - 1 = -R/S`, :math:`R` the sum without the label; and the sigmoid seed is
:math:`(1 - y) - \\sigma(-z)` for :math:`z \\ge 0`.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from jaxloss import _backend, _compensated, _options, _stats
from jaxloss._stats import Axes, SoftmaxStats

# --- sigmoid, logit space ---------------------------------------------------------------


def sigmoid_binary_cross_entropy_grad_from_inputs(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """:math:`\\partial\\ell/\\partial z = \\sigma(z) - y`, as :math:`(1-y) - \\sigma(-z)` for z >= 0."""
    small = jnp.exp(-jnp.abs(logits))
    sigmoid_of_minus_abs = small / (1.0 + small)  # sigma(-|z|), no cancellation
    return jnp.where(logits >= 0, (1.0 - labels) - sigmoid_of_minus_abs, sigmoid_of_minus_abs - labels)


def sigmoid_binary_cross_entropy_labels_grad_from_inputs(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """:math:`\\partial\\ell/\\partial y = \\log(1 - \\sigma(z)) - \\log\\sigma(z) = -z`."""
    return jnp.broadcast_to(-logits, jnp.broadcast_shapes(logits.shape, labels.shape))


def sigmoid_focal_loss_grads_from_parts(
    logits: jax.Array, labels: jax.Array, parts: Any, alpha: jax.Array | None, gamma: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """Seeds of the focal loss :math:`\\ell = a_t q^\\gamma \\mathrm{ce}`, from the ``_focal`` parts.

    .. math::
      \\frac{\\partial \\ell}{\\partial z} = a_t q^\\gamma \\left[(\\sigma(z) - y)
        + \\gamma (1 - 2y) \\frac{\\sigma(z)\\sigma(-z)}{q} \\mathrm{ce}\\right],
      \\qquad
      \\frac{\\partial \\ell}{\\partial y} = a_t q^\\gamma \\left[-z
        - \\gamma \\tanh(z/2) \\frac{\\mathrm{ce}}{q}\\right] + (2\\alpha - 1) q^\\gamma \\mathrm{ce}

    with :math:`q = 1 - p_t`, :math:`a_t = \\alpha y + (1 - \\alpha)(1 - y)` (1 without
    ``alpha``), :math:`dq/dz = (1 - 2y)\\sigma(z)\\sigma(-z)` and
    :math:`dq/dy = \\sigma(-z) - \\sigma(z) = -\\tanh(z/2)`. For hard labels both brackets are sums
    of terms of one sign, so nothing cancels; :math:`q^{\\gamma - 1}` is never formed, so
    :math:`\\gamma < 1` (an infinite slope at :math:`p_t = 1`) stays finite.
    """
    factor, scale = parts.factor + parts.factor_low, parts.scale  # q^gamma = factor * scale, scaled last
    logit_part = sigmoid_binary_cross_entropy_grad_from_inputs(logits, labels)
    logit_part = logit_part + gamma * (1.0 - 2.0 * labels) * parts.slope
    # q^gamma z -> 0 as |z| -> inf where q^gamma = 0 (it decays exponentially).
    factor_times_z = jnp.where(factor == 0, 0.0, factor * logits)
    # q^gamma multiplies ce/q first, and a_t each term before they are added: at |z| near the
    # largest float a term may exceed it where the sum with the alpha term does not. The sums
    # are scaled last: a term below the smallest normal number (2 q^gamma beside -z q^gamma at
    # z = -44.5, y = 0 in float32) would be flushed to 0, 4% of the label gradient.
    linear_term = -factor_times_z
    slope_term = -((factor * parts.ce_over_q) * (gamma * jnp.tanh(0.5 * logits)))
    grad = factor * logit_part
    if alpha is None:
        return grad * scale, (linear_term + slope_term) * scale
    weight = alpha * labels + (1.0 - alpha) * (1.0 - labels)
    alpha_part = jnp.where(factor == 0, 0.0, (2.0 * alpha - 1.0) * (factor * parts.ce))
    return (weight * grad) * scale, ((weight * linear_term + alpha_part) + weight * slope_term) * scale


# --- softmax, logit space ---------------------------------------------------------------


def _softmax_from_stats(
    logits: jax.Array, stats: SoftmaxStats, precise: bool = False
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Returns ``p``, the arg-max mask and ``S = 1 + T``.

    ``precise``: :math:`p` within about 0.5 ulp on every backend (``_compensated.exp_rounded``
    and ``divide``), for the poly-1 seeds, where :math:`\\epsilon < 0` squares its error.
    """
    total = 1.0 + stats.rest
    shifted = _stats.shifted_logits(logits, stats.max)
    # An arg-max is d >= 0, read as softmax_stats reads it (see there), not z == M.
    if precise:
        return _compensated.divide(_compensated.exp_rounded(shifted), total), shifted >= 0, total
    return _backend.divide_by_row(jnp.exp(shifted), total), shifted >= 0, total


def softmax_cross_entropy_grad_from_stats(
    logits: jax.Array, labels: jax.Array, stats: SoftmaxStats, axes: Axes
) -> jax.Array:
    """:math:`\\partial\\ell/\\partial z_j = p_j \\sum_p y_p - y_j` (the article's general form)."""
    probs, is_max, total = _softmax_from_stats(logits, stats)
    # A per-row step between the sum and its broadcast, so that XLA's CPU backend does not write
    # the broadcast label sum out as an array the size of the labels.
    label_sum = _backend.row_step(jnp.sum(labels, axis=axes, keepdims=True), stats.rest)
    at_max = ((label_sum - labels) - labels * stats.rest) / total
    grad = jnp.where(is_max, at_max, probs * label_sum - labels)
    return jnp.where(_stats.live_rows(stats.max), grad, 0.0)


def softmax_cross_entropy_labels_grad_from_stats(logits: jax.Array, stats: SoftmaxStats) -> jax.Array:
    """:math:`\\partial\\ell/\\partial y_j = -\\log p_j`, and 0 at a masked (``-inf``) class.

    A ``-inf`` logit marks a class out of play, so its label is ignored as ``where`` would ignore
    it, rather than passing an infinite gradient back to whatever produced the labels.
    """
    grad = _stats.neg_log_softmax(logits, stats)
    return jnp.where(_stats.live_rows(stats.max) & (logits != -jnp.inf), grad, 0.0)


def poly_loss_cross_entropy_labels_grad_from_stats(
    logits: jax.Array, stats: SoftmaxStats, epsilon: jax.Array
) -> jax.Array:
    """:math:`\\partial\\ell/\\partial y_j = \\phi_j = -\\log p_j + \\epsilon (1 - p_j)`, 0 at a masked class.

    The poly-1 loss is linear in the labels, :math:`\\ell = \\sum_j y_j \\phi_j`, so these are
    also its terms (:func:`poly_loss_cross_entropy_half_terms_from_stats` gives them halved).
    """
    half, _ = poly_loss_cross_entropy_half_terms_from_stats(logits, stats, epsilon)
    return jnp.where(_stats.live_rows(stats.max) & (logits != -jnp.inf), 2.0 * half, 0.0)


def poly_loss_cross_entropy_half_terms_from_stats(
    logits: jax.Array, stats: SoftmaxStats, epsilon: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """:math:`\\phi_j / 2` without overflow, and :math:`+\\infty` where :math:`p_j = 0` (else 0).

    :math:`-\\log p_j / 2 = \\log S / 2 + (M - z_j)/2`, the halves of the soft-label loss
    (``_softmax._soft_loss``), so that logits of ±3e38 give the finite loss they have.
    :math:`1 - p_j` is :math:`T/S` at an arg-max (no cancellation for a confident row). For
    :math:`\\epsilon \\ge 0` both terms are non-negative. For :math:`\\epsilon < 0` and
    :math:`p_j \\ge 1/2` the term is :math:`(1 + \\epsilon)(1 - p_j) + h` with
    :math:`h = -\\log p_j - (1 - p_j) \\ge 0` written without cancellation: with
    :math:`w = T/(2 + T) \\le 1/3`,

    .. math::
      h = \\frac{T^2}{(1 + T)(2 + T)} + \\sum_{k \\ge 1} \\frac{2 w^{2k+1}}{2k + 1},

    so :math:`\\epsilon = -1` keeps the digits of :math:`h \\approx T^2/2`.
    """
    probs, is_max, total = _softmax_from_stats(logits, stats, precise=True)
    rest = jnp.where(is_max, _compensated.divide(stats.rest, total), 1.0 - probs)
    half_gap = _stats.half_gap(logits, stats.max)
    direct = (0.5 * _stats.log_total(stats) + half_gap) + (0.5 * epsilon) * rest
    t = stats.rest
    w = _compensated.divide(t, 2.0 + t)
    square = w * w
    terms = 17 if logits.dtype == jnp.float64 else 8
    series = jnp.full_like(square, 2.0 / (2 * terms + 1))
    for k in range(terms - 1, 0, -1):
        series = 2.0 / (2 * k + 1) + square * series
    excess = _compensated.divide(t * t, (1.0 + t) * (2.0 + t)) + w * square * series
    near = 0.5 * ((1.0 + epsilon) * rest + excess)
    half = jnp.where((epsilon < 0) & is_max & (t <= 1.0), near, direct)
    return half, _backend.infinite_excess(half_gap)


def poly_loss_cross_entropy_grad_from_stats(
    logits: jax.Array, labels: jax.Array, stats: SoftmaxStats, epsilon: jax.Array, axes: Axes
) -> jax.Array:
    """:math:`\\partial\\ell/\\partial z_k = p_k \\sum_j y_j c_j - y_k c_k`, with :math:`c_j = 1 + \\epsilon p_j`.

    The cross-entropy's :math:`p_k \\sum y - y_k` plus :math:`\\epsilon p_k (\\sum_j y_j p_j - y_k)`.
    At an arg-max it is :math:`p_k \\sum_{j \\ne k} y_j c_j - y_k c_k (1 - p_k)`, so a confident
    one-hot row gives :math:`-(1 - p_l)(1 + \\epsilon p_l)` with every digit; :math:`c` is
    :math:`(1 + \\epsilon) - \\epsilon (1 - p)` for :math:`\\epsilon < 0`, a sum of
    non-negative terms for :math:`\\epsilon \\ge -1`.
    """
    row = poly_loss_cross_entropy_row_from_stats(logits, labels, stats, epsilon, axes)
    return poly_loss_cross_entropy_grad_from_row(logits, labels, stats, epsilon, row)


def poly_loss_cross_entropy_row_from_stats(
    logits: jax.Array, labels: jax.Array, stats: SoftmaxStats, epsilon: jax.Array, axes: Axes
) -> jax.Array:
    """:math:`\\sum_j y_j c_j` per row, the first pass of :func:`poly_loss_cross_entropy_grad_from_stats`."""
    weighted = _poly_terms(logits, labels, stats, epsilon)[3]
    return _backend.row_step(jnp.sum(weighted, axis=axes, keepdims=True), stats.rest)


def poly_loss_cross_entropy_grad_from_row(
    logits: jax.Array, labels: jax.Array, stats: SoftmaxStats, epsilon: jax.Array, row: jax.Array
) -> jax.Array:
    """The second pass of :func:`poly_loss_cross_entropy_grad_from_stats`, given the row sum ``row``.

    The rule passes its inputs and ``row`` through ``_backend.accelerator_barrier`` between the
    two passes, so that each recomputes the probabilities (``_softmax._poly_seed``).
    """
    probs, is_max, rest, weighted = _poly_terms(logits, labels, stats, epsilon)
    grad = jnp.where(is_max, probs * (row - weighted) - weighted * rest, probs * row - weighted)
    return jnp.where(_stats.live_rows(stats.max), grad, 0.0)


def _poly_terms(
    logits: jax.Array, labels: jax.Array, stats: SoftmaxStats, epsilon: jax.Array
) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
    """:math:`p`, the arg-max mask, :math:`1 - p` (:math:`T/S` at an arg-max) and :math:`y c`."""
    probs, is_max, total = _softmax_from_stats(logits, stats, precise=True)
    rest = jnp.where(is_max, _compensated.divide(stats.rest, total), 1.0 - probs)
    scale = jnp.where(epsilon < 0, (1.0 + epsilon) - epsilon * rest, 1.0 + epsilon * probs)
    return probs, is_max, rest, labels * scale


def softmax_cross_entropy_with_integer_labels_grad_from_totals(
    raw_logits: jax.Array,
    logits: jax.Array,
    labels: jax.Array,
    totals: _stats.LabelTotals,
    options: Any,
    axis: int,
    *,
    where: jax.Array | None = None,
    class_weights: jax.Array | None = None,
) -> jax.Array:
    """:math:`\\partial\\ell/\\partial z_j = p_j - [j = l]`, from the row totals of the loss (``_stats``).

    The one integer-label seed: the full logits, one block of them (``linear_cross_entropy``) or
    one device's shard (``jaxloss.sharded``), with ``labels`` counted from the first class of
    ``logits`` (size 1 along ``axis``). :math:`p = e^{z - M}/S` and, at the label,
    :math:`p_l - 1 = -R/S` with :math:`R = \\sum_{j \\ne l} e^{z_j - M}`: no cancellation
    for a confident prediction. With the options (``logits`` are then the capped logits, and
    ``raw_logits`` those before the cap) it is

    .. math::
      (1 - \\epsilon) w_l (p - \\text{onehot}) + \\frac{\\epsilon}{C}(p W - w)
      + 2 \\alpha \\operatorname{lse}\\, p

    times :math:`1 - \\tanh^2(z/c)`, with :math:`W = \\sum_j w_j` over the :math:`C` classes in
    play. Where ``where`` drops the label's class, the label's term is :math:`-1` (optax reads its
    logit outside the normaliser).
    """
    kept = logits if where is None else jnp.where(where, logits, -jnp.inf)
    probs = _backend.divide_by_row(jnp.exp(_stats.shifted_logits(kept, totals.max)), totals.total)
    is_label = jax.lax.broadcasted_iota(labels.dtype, logits.shape, axis) == labels
    at_label = -totals.others / totals.total
    if totals.label_kept is not None:
        at_label = jnp.where(totals.label_kept == 1.0, at_label, -1.0)
    grad = jnp.where(is_label, at_label, probs)
    if options is not None:
        if options.smoothing is not None or totals.label_weight is not None:
            keep_share = 1.0 if options.smoothing is None else 1.0 - options.smoothing
            grad = (keep_share * (1.0 if totals.label_weight is None else totals.label_weight)) * grad
        if options.smoothing is not None:
            assert totals.in_play is not None and totals.weight_in_play is not None
            weights = jnp.ones((), logits.dtype) if class_weights is None else class_weights
            played = jnp.where(kept != -jnp.inf, weights, 0.0)
            share = options.smoothing / jnp.maximum(totals.in_play, 1.0)
            grad = grad + share * (probs * totals.weight_in_play - played)
        if options.z_loss is not None:
            grad = grad + (2.0 * options.z_loss) * totals.lse * probs
        if options.cap is not None:
            grad = grad * soft_cap_grad_from_inputs(raw_logits, options.cap)
    return jnp.where(_stats.live_rows(totals.max), grad, 0.0)


# --- probability space -----------------------------------------------------------------


def binary_cross_entropy_grad_from_clamped(clamped: jax.Array, labels: jax.Array) -> jax.Array:
    """:math:`\\partial\\ell/\\partial a = (1-y)/(1-a) - y/a = (a - y)/(a(1 - a))`, one fraction, no cancellation.

    :math:`a - y` and :math:`1 - a` are each carried with their rounding errors (an exact
    two-term sum), and the quotient is corrected for both, so that only the product
    :math:`a(1 - a)`, the division and the correction round: about 1.5 ulp instead of 2.2.
    """
    diff, diff_error = _compensated.two_sum(clamped, -labels)
    rest, rest_error = _compensated.one_minus(clamped)
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
    magnitude = _compensated.log1p(numerator / denominator)
    return jnp.where(low, magnitude, -magnitude)


def categorical_cross_entropy_grad_from_clamped(clamped: jax.Array, labels: jax.Array) -> jax.Array:
    """:math:`\\partial\\ell/\\partial a_j = -y_j / a_j`."""
    return -labels / clamped


def categorical_cross_entropy_labels_grad_from_clamped(clamped: jax.Array) -> jax.Array:
    """:math:`\\partial\\ell/\\partial y_j = -\\log a_j`."""
    return -jnp.log(clamped)


# --- Kullback-Leibler divergence ----------------------------------------------------------------


def kl_divergence_grads_from_logs(
    log_predictions: jax.Array, targets: jax.Array, log_targets: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """:math:`\\partial\\ell/\\partial \\log p = -t` and :math:`\\partial\\ell/\\partial t = \\log t - \\log p + 1`.

    Both are 0 at a target of 0, a class out of play (``0 log 0 = 0``). For log-targets,
    :math:`\\partial\\ell/\\partial \\log t = t\\,\\partial\\ell/\\partial t`, which tends to 0 there.
    """
    absent = _backend.is_zero(targets)
    targets_grad = jnp.where(absent, 0.0, (log_targets - log_predictions) + 1.0)
    return jnp.where(absent, 0.0, -targets), targets_grad


def kl_divergence_with_log_targets_grads_from_logs(
    log_predictions: jax.Array, log_targets: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """:math:`-t` and :math:`t (\\log t - \\log p + 1)`: the seeds of the log-predictions and the log-targets.

    The label gradient is formed as :math:`h (h x)`, :math:`h = e^{\\log t / 2}`, where
    :math:`t = e^{\\log t}` would be subnormal (few digits on a GPU, 0 on XLA-CPU) while the
    gradient is not; above :math:`\\log \\text{tiny} + 1` as :math:`t x` (2.1 ulp in float32, 2.3
    in float64, against 3.2 and 3.8 for :math:`h (h x)` everywhere). 0 at a ``-inf`` log-target,
    ``+inf`` at any other against a ``-inf`` prediction (the limit, also where :math:`t`
    underflows). It shares no expression with the forward pass but the inputs: XLA-CPU writes
    shared ones out (256x512 float32, value_and_grad of the mean for both arguments: 3 or 4
    inputs-sized temporaries in trials that shared the forward's :math:`h`, 1 as written).
    """
    targets = jnp.exp(log_targets)
    difference = (log_targets - log_predictions) + 1.0
    # The selecting form on every platform: in the seed's element-wise output XLA-CPU fuses it.
    targets_grad = _compensated.exp_times.portable(log_targets, difference)  # type: ignore[attr-defined]
    targets_grad = jnp.where(log_predictions == -jnp.inf, jnp.inf, targets_grad)
    absent = log_targets == -jnp.inf
    return jnp.where(absent, 0.0, -targets), jnp.where(absent, 0.0, targets_grad)


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
    return pos_weight * _compensated.softplus(-logits) - _compensated.softplus(logits)


def sigmoid_options_grads_from_inputs(
    logits: jax.Array, labels: jax.Array, options: Any
) -> tuple[jax.Array, jax.Array]:
    """Seeds of the sigmoid cost with options, w.r.t. the logits and the labels.

    With :math:`z' = c \\tanh(z/c)` and :math:`y' = (1 - \\epsilon) y + \\epsilon/2`:
    :math:`\\partial\\ell/\\partial z = w\\,[(1 - y')\\sigma(z') - w_+ y' \\sigma(-z')]\\,(1 - \\tanh^2(z/c))`
    and :math:`\\partial\\ell/\\partial y = w(1 - \\epsilon)[w_+ \\operatorname{sp}(-z') - \\operatorname{sp}(z')]`.
    """
    capped = _options.soft_cap(logits, options.cap)
    smoothed = _options.smooth_binary_labels(labels, options.smoothing)
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
    grad = (2.0 * z_loss) * _stats.log_sum_exp(stats) * probs
    return jnp.where(_stats.live_rows(stats.max), grad, 0.0)


def softmax_options_grads_from_stats(
    logits: jax.Array, capped: jax.Array, labels: jax.Array, options: Any, stats: SoftmaxStats, axes: Axes
) -> tuple[jax.Array, jax.Array]:
    """Seeds of the softmax cost with options; ``stats`` are those of the capped logits.

    With :math:`z' = c \\tanh(z/c)` and :math:`y' = w \\odot ((1 - \\epsilon) y + \\epsilon / C)`:
    :math:`\\partial\\ell/\\partial z = (a \\sum_p y'_p - y' + 2\\alpha \\operatorname{lse}(z') a)(1 - \\tanh^2(z/c))`
    and :math:`\\partial\\ell/\\partial y = -w (1 - \\epsilon) \\log a`. ``capped`` is :math:`z'`, computed once
    in the forward pass.
    """
    effective = _options.option_labels(capped, labels, options, axes)
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
