"""Numerically exact forward formulas, and the row statistics they share with the seeds.

Every loss here is written as a sum of non-negative terms, so nothing cancels:

* sigmoid cross-entropy, for logit ``z`` and label ``y`` in [0, 1]:

  .. math::
    \\ell(z, y) = \\begin{cases}
      z (1 - y) + \\log(1 + e^{-z}) & z > 0 \\\\
      -z y + \\log(1 + e^{z}) & z \\le 0
    \\end{cases}

* softmax cross-entropy. With :math:`M = \\max_j z_j` and
  :math:`T = \\sum_j e^{z_j - M} - 1` summed *without* one arg-max term (so ``T`` carries no
  rounding of the leading 1), :math:`\\operatorname{lse}(z) - z_j = (M - z_j) + \\log1p(T)`, and
  both pieces are non-negative.

Conventions shared by every cost: ``0 log 0 = 0``; a ``-inf`` logit is a masked class; a row
whose logits are all ``-inf`` is a fully masked row and costs 0; a NaN anywhere in a row gives
NaN.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

Axes = tuple[int, ...]


class SoftmaxStats(NamedTuple):
    """Per-row statistics of a softmax, kept with ``keepdims=True``.

    Attributes:
      max: :math:`M = \\max_j z_j`.
      rest: :math:`T = S - 1`, where :math:`S = \\sum_j e^{z_j - M} \\ge 1`, computed without
        forming ``S`` so that small ``T`` keeps every digit.
    """

    max: jax.Array
    rest: jax.Array


def softmax_stats(logits: jax.Array, axes: Axes) -> SoftmaxStats:
    """Computes :math:`M` and :math:`T = \\sum_j e^{z_j - M} - 1` along ``axes``.

    :math:`T` is the sum below the maximum, :math:`\\sum_{z_j < M} e^{z_j - M}`, plus the number
    of ties for the maximum less one, so that no rounding of a leading 1 touches it.

    Written for XLA's CPU fusion, whose fused reduction kernel takes only arithmetic producers
    (a ``select`` or a shared broadcast constant makes it write an array the size of the logits
    first): the indicator of the entries below the maximum is ``sign(-d) + |sign(-d)|``, twice
    the indicator, halved per row after each sum. ``+inf`` maxima are handled per row.

    Both passes take ties from the sign of the same :math:`d = z - M`, never from ``z == M``:
    where the logits are an expression such as ``a * b``, XLA fuses it into each pass and may
    contract ``a * b - M`` into one fused multiply-add, which leaves the arg-max a tiny
    :math:`d \\ne 0`. Read the same way in every pass, such an entry is still counted once.
    """
    row_max = jnp.max(logits, axis=axes, keepdims=True)
    infinite = row_max == jnp.inf
    largest = jnp.finfo(logits.dtype).max
    finite_max = jnp.minimum(row_max, largest)
    diff = logits - finite_max
    # 2 [d < 0] as sign(-d) + |sign(-d)|: 2 below the maximum, 0 at it and above (an arg-max
    # whose d a fused multiply-add left a hair above 0); halved per row after the sum.
    below_max = 0.5 * jnp.sum(jnp.exp(diff) * _twice_below(diff), axis=axes, keepdims=True)
    # The count is chained after the sum (a zero that depends on it) so that the two are not
    # fused into one slower multi-output loop. In a +inf row the shift is finfo.max twice over:
    # each +inf entry stays +inf (a tie) and every finite entry falls below.
    chained_max = finite_max + 0.0 * jnp.where(infinite, 0.0, below_max)
    chained_diff = (logits - chained_max) - jnp.where(infinite, largest, 0.0)
    count_below = 0.5 * jnp.sum(_twice_below(chained_diff), axis=axes, keepdims=True)
    count_below = jax.lax.stop_gradient(count_below)  # a count: no derivative
    num_classes = math.prod(logits.shape[a] for a in axes)
    ties = num_classes - count_below
    return SoftmaxStats(row_max, jnp.where(infinite, 0.0, below_max) + (ties - 1.0))


def _twice_below(diff: jax.Array) -> jax.Array:
    """2 where ``diff < 0``, else 0 (NaN stays NaN), with arithmetic only: no select, no constant."""
    sign = jnp.sign(-diff)
    return sign + jnp.abs(sign)


def shifted_logits(logits: jax.Array, row_max: jax.Array) -> jax.Array:
    """Returns :math:`z_j - M`, exactly 0 at every arg-max.

    Where :math:`M = +\\infty`, the ``+inf`` entries give 0 and the others ``-inf``. A row of only
    ``-inf`` gives NaN here and is zeroed by :func:`live_rows`.
    """
    infinite = row_max == jnp.inf
    return jnp.where(infinite, jnp.where(logits == jnp.inf, 0.0, -jnp.inf), logits - row_max)


def divide_by_row(numerators: jax.Array, row_values: jax.Array) -> jax.Array:
    """``numerators / row_values`` (broadcast), correctly rounded.

    XLA rewrites a division by a broadcast into a multiplication by its reciprocal, which
    rounds twice (up to 1 ulp instead of 1/2). Adding ``0 * numerators`` makes the divisor an
    array of the numerators' shape, which it does not rewrite; the addition is fused and free.
    """
    return numerators / (row_values + 0.0 * numerators)


def two_sum(a: jax.Array, b: jax.Array) -> tuple[jax.Array, jax.Array]:
    """:math:`a + b = s + e` exactly, with :math:`s` the rounded sum (Knuth's TwoSum).

    XLA does not reassociate floating-point additions, so the error term survives compilation.
    """
    total = a + b
    b_part = total - a
    a_part = total - b_part
    return total, (a - a_part) + (b - b_part)


def one_minus(x: jax.Array) -> tuple[jax.Array, jax.Array]:
    """:math:`1 - x = r + e` exactly for :math:`|x| \\le 1`, with :math:`r` rounded (Fast2Sum).

    The 1 is computed (``x == x``), as in :func:`log1p_nonnegative`, so that XLA cannot fold
    :math:`(1 - r) - x` to 0.
    """
    one = (x == x).astype(x.dtype)
    rest = one - x
    return rest, (one - rest) - x


def log1p_nonnegative(x: jax.Array) -> jax.Array:
    """``log1p(x)`` for finite x >= 0, to about 1.5 ulp.

    XLA's float32 ``log1p`` is off by up to 2.3 ulp for x in [0.1, 1]. From 0.1 up this takes
    :math:`\\log u + (x - (u - 1))/u` with :math:`u = 1 + x` rounded. XLA's simplifier would fold
    :math:`(1 + x) - 1` back into ``x``; the 1 is therefore computed (``x == x``), which it cannot
    fold, and which costs nothing, unlike an optimisation barrier, which writes ``u`` out.
    """
    one = (x == x).astype(x.dtype)  # 1 (0 for NaN, which stays NaN)
    total = one + x
    compensated = jnp.log(total) + (x - (total - one)) / total
    return jnp.where(x < 0.1, jnp.log1p(x), compensated)


def log_total(stats: SoftmaxStats) -> jax.Array:
    """:math:`\\log S = \\log1p(T)`, per row, to about 1.5 ulp (one value per row: free)."""
    return log1p_nonnegative(stats.rest)


def neg_log_softmax(logits: jax.Array, stats: SoftmaxStats) -> jax.Array:
    """Returns :math:`-\\log p_j = (M - z_j) + \\log1p(T) \\ge 0`, a sum of non-negative terms."""
    return log_total(stats) - shifted_logits(logits, stats.max)


def live_rows(stats: SoftmaxStats) -> jax.Array:
    """True for rows with at least one class that is not ``-inf`` (NaN rows count as live)."""
    return stats.max != -jnp.inf


def softmax_cross_entropy(logits: jax.Array, labels: jax.Array, axes: Axes) -> tuple[jax.Array, SoftmaxStats]:
    """:math:`\\sum_j y_j (-\\log p_j) = 2 \\sum_j y_j (\\log S / 2 + (M - z_j)/2)`; ``0 log 0 = 0``.

    Each term is non-negative for labels in [0, 1]. The halves keep :math:`M - z_j` from
    overflowing for finite logits such as 3e38 and -3e38, where :math:`y_j (M - z_j)` may not.

    The per-class terms are arithmetic only (as in :func:`sigmoid_binary_cross_entropy`), so
    that XLA's CPU backend computes the sum inside one fused reduction instead of writing the
    terms out. A term's exact value is infinite at a ``-inf`` logit, where :math:`(M - z)/2` is
    ``+inf``, and at every finite logit of a row whose maximum is ``+inf``: there the shift is
    the largest float, which leaves :math:`(M - z)/2` at least :math:`2^{103}` below it and 0 at
    the ``+inf`` logits, and a per-row factor of the largest float sends the former to ``+inf``.
    :func:`_times_infinity` takes ``inf * 0`` as 0.
    """
    stats = softmax_stats(logits, axes)
    largest = jnp.finfo(logits.dtype).max
    half_shift = 0.5 * jnp.minimum(stats.max, largest)  # per row; the largest float in a +inf row
    # Per row: 1, or the largest float in a +inf row (-0.0 in the select, not softmax_stats's
    # 0.0, so that XLA does not share one broadcast between two fused reductions and write it out).
    row_scale = 1.0 + jnp.where(stats.max == jnp.inf, largest, -0.0)
    half_gap = half_shift - 0.5 * jnp.minimum(logits, largest)  # (M - z)/2: +inf at a -inf logit
    half_loss = 0.5 * log_total(stats) + half_gap * row_scale  # -log(p)/2, +inf where p = 0
    terms = _times_infinity(half_loss, labels)
    loss = 2.0 * jnp.sum(terms, axis=axes, keepdims=True)
    loss = jnp.where(live_rows(stats), loss, 0.0)
    return jnp.squeeze(loss, axes), stats


def _times_infinity(value: jax.Array, weight: jax.Array) -> jax.Array:
    """``value * weight`` for ``value`` in [0, +inf], with ``inf * 0 = 0``, arithmetic only.

    The value is capped at the largest float, and the product scaled by the largest float
    again where the value was ``+inf``, which overflows to ``sign(w) * inf`` for any normal
    ``w`` and leaves ``0 * largest = 0``. The scale is a step function: no derivative.
    """
    largest = jnp.finfo(value.dtype).max
    finite = jnp.minimum(value, largest)
    # 1, or the largest float; written without a constant 1, which the seeds have (see
    # sigmoid_binary_cross_entropy).
    scale = 2.0 * (0.5 + 0.5 * jax.lax.stop_gradient(jnp.minimum(value - finite, largest)))
    return (finite * weight) * scale


def label_logit(logits: jax.Array, labels: jax.Array, axes: Axes) -> jax.Array:
    """Gathers the label's logit (an out-of-range label reads a clipped index; callers mask it).

    Where the class axis is split over devices by an explicit sharding, a gather would have to
    collect the logits first; there the label's logit is a masked sum over the classes instead,
    which each device reduces locally before one all-reduce of a number per row.
    """
    (axis,) = axes
    if _sharded_along(logits, axis):
        classes = jax.lax.broadcasted_iota(labels.dtype, logits.shape, axis)
        at_label = classes == jnp.expand_dims(labels, axis)
        return jnp.sum(jnp.where(at_label, logits, 0.0), axis=axis, keepdims=True)
    return jnp.take_along_axis(logits, jnp.expand_dims(labels, axis), axis=axis, mode="clip")


def _sharded_along(array: jax.Array, axis: int) -> bool:
    """Whether ``array``'s type says that ``axis`` is split over mesh axes (explicit sharding)."""
    spec = getattr(getattr(jax.typeof(array), "sharding", None), "spec", None)
    return spec is not None and len(spec) > axis and spec[axis] is not None


def integer_label_mask(logits: jax.Array, labels: jax.Array, axes: Axes) -> tuple[jax.Array, jax.Array]:
    """One-hot mask of ``labels`` along the single class axis, and which labels are in range."""
    (axis,) = axes
    num_classes = logits.shape[axis]
    labels = jnp.expand_dims(labels, axis)
    classes = jax.lax.broadcasted_iota(labels.dtype, logits.shape, axis)
    in_range = (labels >= 0) & (labels < num_classes)
    return classes == labels, in_range


def softmax_cross_entropy_with_integer_labels(
    logits: jax.Array, labels: jax.Array, where: jax.Array | None, axes: Axes
) -> tuple[jax.Array, SoftmaxStats, jax.Array]:
    """:math:`\\operatorname{lse}(z) - z_l = (M - z_l) + \\log1p(T)`.

    As in optax, ``where`` restricts the normaliser only: the label's own logit is always read.
    Labels outside ``[0, C)`` give NaN; rows with nothing kept (or only ``-inf`` logits kept)
    give 0. Returns the loss, the
    row statistics of the kept logits and which rows are live.
    """
    kept = kept_logits(logits, where)
    stats = softmax_stats(kept, axes)
    num_classes = logits.shape[axes[0]]
    in_range = jnp.expand_dims((labels >= 0) & (labels < num_classes), axes)
    z_label = label_logit(logits, labels, axes)
    gap = jnp.where(z_label == stats.max, 0.0, stats.max - z_label)
    loss = gap + log_total(stats)
    loss = jnp.where(in_range, loss, jnp.nan)
    live = live_rows(stats)  # False also where `where` keeps nothing, or keeps only -inf logits
    if where is not None:
        live = live & jnp.any(where, axis=axes, keepdims=True)
    loss = jnp.where(live, loss, 0.0)
    return jnp.squeeze(loss, axes), stats, live


def kept_logits(logits: jax.Array, where: jax.Array | None) -> jax.Array:
    """The logits with the classes that ``where`` drops set to ``-inf``."""
    return logits if where is None else jnp.where(where, logits, -jnp.inf)


def log1p(x: jax.Array) -> jax.Array:
    """``log(1 + x)``, working around XLA's float64 ``log1p`` on the CPU.

    There it is off by up to 128 ulp for x in [-0.5, -0.3] (measured against mpmath). For
    x <= -0.25, ``1 + x`` is exact (Sterbenz), so ``log(1 + x)`` is used instead (1.5 ulp).
    XLA's float32 ``log1p`` is kept: it is the better of the two in float32.
    """
    if x.dtype != jnp.float64:
        return jnp.log1p(x)
    return jnp.where(x <= -0.25, jnp.log(1.0 + x), jnp.log1p(x))


def sigmoid_binary_cross_entropy(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """Element-wise :math:`\\max(z, 0)(1-y) + \\max(-z, 0)\\,y + \\log1p(e^{-|z|})`.

    That is :math:`z(1-y) + \\log1p(e^{-z})` for z > 0 and :math:`-zy + \\log1p(e^{z})` otherwise:
    non-negative terms, nothing cancels. An infinite logit with the matching hard label costs
    0, not ``inf * 0 = NaN``.

    Written for XLA's CPU backend with arithmetic only (no compare, no select, no 0 or 1 constant
    shared with the seed), so that a mean or sum of it is computed inside one fused reduction and
    the losses are never written out: see :func:`_times_label` and :func:`log1p_unit`.
    """
    largest = jnp.finfo(logits.dtype).max
    magnitude = jnp.abs(logits)
    finite = jnp.sign(logits) * jnp.minimum(magnitude, largest)  # +-inf -> +-largest
    # max(., -0.0), not max(., 0.0): the seed's 0 would be shared, and XLA writes a shared
    # constant out as an array the size of the logits. (min(max(z, 0), largest) would be a
    # clamp, which the fused reduction does not take.)
    positive, negative = jnp.maximum(finite, -0.0), jnp.maximum(-finite, -0.0)
    other = 2.0 * (0.5 - 0.5 * labels)  # 1 - y, rounded once, without the seed's constant 1
    linear = _times_label(positive, logits, other) + _times_label(negative, -logits, labels)
    return linear + log1p_unit(jnp.exp(-magnitude))


def _times_label(part: jax.Array, signed_logits: jax.Array, label: jax.Array) -> jax.Array:
    """``max(z, 0) * w``, given ``part = max(z, 0)`` with ``+inf`` clamped to the largest float.

    The excess ``max(z, largest) - largest`` is ``+inf`` only for ``z = +inf``, where
    :func:`_times_infinity` makes ``+inf * w`` the limit ``sign(w) * inf``, or 0 for ``w = 0``.
    """
    largest = jnp.finfo(part.dtype).max
    excess = jnp.maximum(signed_logits, largest) - largest  # 0, or +inf where z = +inf
    return part * label + _times_infinity(excess, label)


def log1p_unit(x: jax.Array) -> jax.Array:
    """``log1p(x)`` for x in [0, 1], about 1.6 ulp in float32, with arithmetic only.

    :math:`\\log u + (x - (u - 1))/u` with :math:`u = 1 + x` rounded and :math:`u - 1` exact. The
    constants are 0.5, 0.25 and 4, so that XLA can neither fold :math:`(1 + x) - 1` back into
    :math:`x` nor share a constant with the seeds (see :func:`sigmoid_binary_cross_entropy`).
    """
    half_total = 0.5 * x + 0.5  # u / 2, rounded once
    total = half_total + half_total
    total_less_one = (0.5 * half_total - 0.25) * 4.0  # u/4 - 1/4 is exact (Sterbenz)
    return jnp.log(total) + (x - total_less_one) / total


def probability_limits(input_dtype: jnp.dtype, compute_dtype: jnp.dtype) -> jax.Array:
    """``[tiny, 1 - eps/2]`` of the input's dtype, in the compute dtype: the clamp policy's limits.

    float16 is computed in float32 but clamped to its own limits, so that the seed at an exact
    0 or 1 is finite when it is cast back to float16.
    """
    info = jnp.finfo(input_dtype)
    return jnp.array([info.smallest_normal, 1.0 - info.epsneg], dtype=compute_dtype)


def clamp_probs(probs: jax.Array, *, upper: bool, limits: jax.Array | None = None) -> jax.Array:
    """The clamp policy of the probability-space costs.

    ``log a`` is evaluated at ``max(a, tiny)`` and ``log(1 - a)`` at ``min(a, 1 - eps/2)``, where
    ``tiny`` is the dtype's smallest normal number and ``1 - eps/2`` the largest number below 1.
    With ``upper=True`` both clamps are applied (for the binary seed, one fraction). Only exact 0,
    exact 1 and subnormals move, so every loss and seed is finite and the seed keeps its sign;
    a term whose label weight is 0 still costs exactly 0. Values outside ``[0, 1]`` are not
    probabilities and give NaN.
    """
    if limits is None:
        limits = probability_limits(probs.dtype, probs.dtype)
    clamped = jnp.clip(probs, limits[0], limits[1] if upper else 1.0)
    return jnp.where((probs < 0) | (probs > 1), jnp.nan, clamped)


def binary_cross_entropy(probs: jax.Array, labels: jax.Array, limits: jax.Array | None = None) -> jax.Array:
    """Element-wise :math:`-[y \\log a + (1-y) \\log(1-a)]`, with ``log1p(-a)`` for ``log(1-a)``."""
    low = clamp_probs(probs, upper=False, limits=limits)
    top = clamp_probs(jnp.ones((), probs.dtype), upper=True, limits=limits)
    high = jnp.where(jnp.isnan(low), jnp.nan, jnp.minimum(probs, top))
    pos = jnp.where(labels == 0, 0.0, labels * jnp.log(low))
    neg = jnp.where(labels == 1, 0.0, (1.0 - labels) * log1p(-high))
    return -(pos + neg)


def categorical_cross_entropy(
    probs: jax.Array, labels: jax.Array, axes: Axes, limits: jax.Array | None = None
) -> tuple[jax.Array, jax.Array]:
    """:math:`-\\sum_j y_j \\log a_j` with ``0 log 0 = 0``; a NaN probability still gives NaN."""
    clamped = clamp_probs(probs, upper=False, limits=limits)
    skip = (labels == 0) & ~jnp.isnan(clamped)
    terms = jnp.where(skip, 0.0, labels * jnp.log(clamped))
    return -jnp.sum(terms, axis=axes), clamped


# --- the training options (see ``_options``) ----------------------------------------------


def soft_cap(logits: jax.Array, cap: jax.Array | None) -> jax.Array:
    """:math:`c \\tanh(z / c)`, the logit soft-capping of Gemma 2 (the logits when ``cap`` is None)."""
    return logits if cap is None else cap * jnp.tanh(logits / cap)


def smooth_binary_labels(labels: jax.Array, smoothing: jax.Array | None) -> jax.Array:
    """:math:`(1 - \\epsilon) y + \\epsilon / 2`, Keras's label smoothing for sigmoid costs."""
    return labels if smoothing is None else (1.0 - smoothing) * labels + 0.5 * smoothing


def smooth_labels(logits: jax.Array, labels: jax.Array, smoothing: jax.Array | None, axes: Axes) -> jax.Array:
    """:math:`(1 - \\epsilon) y + \\epsilon / C`, torch's label smoothing for softmax costs.

    ``C`` counts the classes in play: a ``-inf`` logit (a masked class, or one that ``where``
    drops) gets no share, so smoothing never puts weight on a class of zero probability. With
    no masked class this is torch's ``ε / C``.
    """
    if smoothing is None:
        return labels
    in_play = logits != -jnp.inf
    count = jnp.sum(in_play, axis=axes, keepdims=True).astype(labels.dtype)
    share = jnp.where(in_play, smoothing / jnp.maximum(count, 1.0), 0.0)
    return (1.0 - smoothing) * labels + share


def option_labels(
    capped_logits: jax.Array, labels: jax.Array, smoothing: jax.Array | None, weights: jax.Array | None, axes: Axes
) -> jax.Array:
    """The effective labels of a softmax cost with options: :math:`w \\odot ((1 - \\epsilon) y + \\epsilon / C)`.

    Class weights act on the labels, :math:`-\\sum_j w_j y_j \\log p_j`, as in torch.
    """
    smoothed = smooth_labels(capped_logits, labels, smoothing, axes)
    return smoothed if weights is None else weights * smoothed


def softmax_cross_entropy_with_options(
    capped: jax.Array, labels: jax.Array, options: Any, axes: Axes
) -> tuple[jax.Array, SoftmaxStats]:
    """:math:`-\\sum_j y'_j \\log \\operatorname{softmax}(z')_j + \\alpha \\operatorname{lse}(z')^2`.

    Takes the capped logits :math:`z' = c \\tanh(z/c)` (:func:`soft_cap`) and
    applies the other options; :math:`y'` comes from :func:`option_labels`. Returns the loss and
    the row statistics of :math:`z'`.
    """
    effective = option_labels(capped, labels, options.smoothing, options.weights, axes)
    loss, stats = softmax_cross_entropy(capped, effective, axes)
    if options.z_loss is not None:
        penalty = options.z_loss * jnp.square(jnp.squeeze(log_sum_exp(stats), axes))
        loss = loss + jnp.where(jnp.squeeze(live_rows(stats), axes), penalty, 0.0)
    return loss, stats


def sigmoid_cross_entropy_with_options(logits: jax.Array, labels: jax.Array, options: Any) -> jax.Array:
    """Element-wise sigmoid cross-entropy with the options applied, a sum of non-negative terms."""
    capped = soft_cap(logits, options.cap)
    smoothed = smooth_binary_labels(labels, options.smoothing)
    if options.pos_weight is None:
        loss = sigmoid_binary_cross_entropy(capped, smoothed)
    else:
        loss = sigmoid_pos_weighted_cross_entropy(capped, smoothed, options.pos_weight)
    return loss if options.weights is None else options.weights * loss


def integer_labels_as_soft(
    logits: jax.Array, labels: jax.Array, axes: Axes, ignore_index: int | None
) -> tuple[jax.Array, jax.Array]:
    """One-hot labels along the single class axis, and which examples count.

    Examples whose label is ``ignore_index`` do not count; other labels outside ``[0, C)``
    give a row of NaN labels, so that their loss and gradient are NaN.
    """
    is_label, in_range = integer_label_mask(logits, labels, axes)
    counts = jnp.ones(labels.shape, bool) if ignore_index is None else labels != ignore_index
    onehot = is_label.astype(logits.dtype)
    invalid = ~in_range & jnp.expand_dims(counts, axes)
    return jnp.where(invalid, jnp.nan, onehot), counts


def softplus(x: jax.Array) -> jax.Array:
    """:math:`\\log(1 + e^x) = \\max(x, 0) + \\log1p(e^{-|x|})`, a sum of non-negative terms."""
    return jnp.maximum(x, 0.0) + log1p_nonnegative(jnp.exp(-jnp.abs(x)))


def sigmoid_pos_weighted_cross_entropy(logits: jax.Array, labels: jax.Array, pos_weight: jax.Array) -> jax.Array:
    """:math:`-[w_+ y \\log \\sigma(z) + (1 - y) \\log(1 - \\sigma(z))]`.

    torch's ``pos_weight``, written :math:`w_+ y\\,\\mathrm{sp}(-z) + (1 - y)\\,\\mathrm{sp}(z)`
    with the softplus ``sp``. Both terms are non-negative, and each is exactly 0 where its label
    factor is 0 (so infinite logits with the matching hard label cost 0).
    """
    positive = jnp.where(labels == 0, 0.0, pos_weight * labels * softplus(-logits))
    negative = jnp.where(labels == 1, 0.0, (1.0 - labels) * softplus(logits))
    return positive + negative


def log_sum_exp(stats: SoftmaxStats) -> jax.Array:
    """:math:`\\operatorname{lse}(z) = M + \\log1p(T)`, per row (``-inf`` for a row of ``-inf``)."""
    return stats.max + log_total(stats)
