"""Row statistics of a softmax: the one place each is computed.

Two kinds, for the two kinds of labels:

* **soft labels** (:class:`SoftmaxStats`): :math:`M = \\max_j z_j` and
  :math:`T = \\sum_j e^{z_j - M} - 1`, summed without one arg-max term (a tie count replaces it),
  so that small :math:`T` keeps every digit. Then :math:`-\\log p_j = (M - z_j) + \\log1p(T)`,
  a sum of non-negative terms.
* **integer labels** (:class:`LabelStats`): :math:`M` and :math:`R = \\sum_{j \\ne l} e^{z_j - M}`,
  the label left out by its index. Then :math:`S = R + e^{z_l - M}`, and
  :math:`T = S - 1` is :math:`R` itself when the label is an arg-max, so
  :math:`\\ell = (M - z_l) + \\log1p(T)` and the seed :math:`p_l - 1 = -R/S` keep their digits
  without a tie count. The same statistics serve the full logits (:func:`label_stats` once), the
  fused output layer (one block at a time, joined by :func:`merge`) and the vocabulary split
  over devices (joined by one ``pmax`` and one ``psum``, ``jaxloss.sharded``).

Conventions: ``0 log 0 = 0``; a ``-inf`` logit is a masked class; a row of only ``-inf`` is a
dead row and costs 0; ``+inf`` logits are limits (the ``+inf`` classes share the probability);
NaN anywhere in a row gives NaN.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jaxloss import _backend, _compensated
from jaxloss._checks import Axes


def half_gap(logits: jax.Array, row_max: jax.Array) -> jax.Array:
    """:math:`(M - z_j)/2`, halved so that logits of ±3e38 do not overflow; ``+inf`` at a ``-inf`` logit.

    In a row whose maximum is ``+inf`` the gap is taken from the largest float and multiplied by
    a per-row factor of the largest float, which sends the finite logits' gaps (at least
    :math:`2^{103}`) to ``+inf`` and leaves the ``+inf`` logits' 0 (``times_infinity`` then reads
    ``inf * 0`` as 0). The one form of the soft-label loss (``_softmax``) and poly-1's terms (``_seeds``).
    """
    largest = jnp.finfo(logits.dtype).max
    row_scale = 1.0 + _backend.row_select(row_max == jnp.inf, largest)
    return (0.5 * jnp.minimum(row_max, largest) - 0.5 * jnp.minimum(logits, largest)) * row_scale


def shifted_logits(logits: jax.Array, row_max: jax.Array) -> jax.Array:
    """:math:`z_j - M`, exactly 0 at every arg-max and never positive.

    In a row whose maximum is ``+inf`` the shift is the largest float twice over, so the ``+inf``
    entries give 0 and the others ``-inf``. Arithmetic only (``_backend``, rule 1).
    """
    largest = jnp.finfo(logits.dtype).max
    finite_max = jnp.minimum(row_max, largest)
    extra = _backend.row_select(row_max == jnp.inf, largest)
    return _backend.nonpositive_part((logits - finite_max) - extra)


# --- soft labels -------------------------------------------------------------------------------


class SoftmaxStats(NamedTuple):
    """Per-row statistics of a softmax, kept with ``keepdims=True``.

    Attributes:
      max: :math:`M = \\max_j z_j`.
      rest: :math:`T = S - 1`, where :math:`S = \\sum_j e^{z_j - M} \\ge 1`, computed without
        forming ``S``.
    """

    max: jax.Array
    rest: jax.Array


def softmax_stats(logits: jax.Array, axes: Axes, exp: Callable[[jax.Array], jax.Array] = jnp.exp) -> SoftmaxStats:
    """:math:`M` and :math:`T = \\sum_{z_j < M} e^{z_j - M} + (\\text{ties} - 1)` along ``axes``.

    Both sums read the entries below the maximum from the sign of the same :math:`d = z - M`,
    never from ``z == M``: where the logits are an expression such as ``a * b``, XLA may contract
    ``a * b - M`` into a fused multiply-add in one pass only, which leaves an arg-max a tiny
    :math:`d \\ne 0`; read the same way in both passes, it is still counted once. The indicator
    is ``_backend.twice_below_zero``, halved per row after each sum. ``exp`` is the exponential of
    the sum: poly-1 passes ``_compensated.exp_rounded``, exact to 0.51 ulp on every backend.
    """
    row_max = jnp.max(logits, axis=axes, keepdims=True)
    infinite = row_max == jnp.inf
    largest = jnp.finfo(logits.dtype).max
    finite_max = jnp.minimum(row_max, largest)
    diff = logits - finite_max
    below_max = 0.5 * jnp.sum(exp(diff) * _backend.twice_below_zero(diff), axis=axes, keepdims=True)
    # The count is chained after the sum (a zero that depends on it), so that XLA does not fuse
    # the two into one slower multi-output loop. In a +inf row the shift is the largest float
    # twice over: each +inf entry stays +inf (a tie) and every finite entry falls below.
    chained_max = _backend.row_step(finite_max, jnp.where(infinite, 0.0, below_max))
    chained_diff = (logits - chained_max) - jnp.where(infinite, largest, 0.0)
    count_below = 0.5 * jnp.sum(_backend.twice_below_zero(chained_diff), axis=axes, keepdims=True)
    ties = math.prod(logits.shape[a] for a in axes) - jax.lax.stop_gradient(count_below)
    return SoftmaxStats(row_max, jnp.where(infinite, 0.0, below_max) + (ties - 1.0))


def log_total(stats: SoftmaxStats) -> jax.Array:
    """:math:`\\log S = \\log1p(T)`, per row."""
    return _compensated.log1p_row(stats.rest)


def log_sum_exp(stats: SoftmaxStats) -> jax.Array:
    """:math:`\\operatorname{lse}(z) = M + \\log1p(T)`, per row (``-inf`` for a dead row)."""
    return stats.max + log_total(stats)


def neg_log_softmax(logits: jax.Array, stats: SoftmaxStats) -> jax.Array:
    """:math:`-\\log p_j = \\log1p(T) - (z_j - M) \\ge 0`, a sum of non-negative terms."""
    return log_total(stats) - shifted_logits(logits, stats.max)


def live_rows(row_max: jax.Array) -> jax.Array:
    """True for rows with a class that is not ``-inf`` (NaN rows count as live)."""
    return row_max != -jnp.inf


# --- integer labels ----------------------------------------------------------------------------


class LabelStats(NamedTuple):
    """Per-row statistics of a softmax and one integer label, over some classes of a row.

    Each field has the row's shape with the class axis kept (size 1). Fields an option does not
    need are ``None`` (so that they are neither computed nor communicated).

    Attributes:
      max: :math:`M`, the largest logit that the normaliser keeps.
      others: :math:`R = \\sum_{j \\ne l} e^{z_j - M}` over the kept classes.
      label_logit: :math:`z_l`, read whether or not ``where`` keeps its class (optax's meaning);
        0 where the label is not among these classes.
      has_label: 1 where the label is among these classes, else 0.
      label_kept: 1 where the normaliser keeps the label's class (``None``: always).
      label_weight: :math:`w_l` (``None`` without class weights).
      in_play: the number of kept classes that are not ``-inf`` (label smoothing only).
      weight_in_play: :math:`W = \\sum_j w_j` over the classes in play (label smoothing only).
      gaps: :math:`Q = \\sum_j w_j (M - z_j) \\ge 0` over the classes in play (label smoothing only).
    """

    max: jax.Array
    others: jax.Array
    label_logit: jax.Array
    has_label: jax.Array
    label_kept: jax.Array | None = None
    label_weight: jax.Array | None = None
    in_play: jax.Array | None = None
    weight_in_play: jax.Array | None = None
    gaps: jax.Array | None = None


def label_stats(
    logits: jax.Array,
    labels: jax.Array,
    axis: int,
    *,
    where: jax.Array | None = None,
    class_weights: jax.Array | None = None,
    smoothing: bool = False,
    whole_row: bool = True,
    stored: jax.Array | None = None,
) -> LabelStats:
    """The :class:`LabelStats` of ``logits`` (already soft-capped) along ``axis``.

    Args:
      logits: floating logits, classes along ``axis``.
      labels: integer labels counted from the first class of ``logits``, with ``logits``' shape
        but size 1 along ``axis``; values outside the classes are allowed (``has_label`` is 0).
      axis: the class axis.
      where: optional boolean mask of the classes the normaliser keeps, ``logits``' shape.
      class_weights: optional weights of the classes, broadcastable to ``logits``.
      smoothing: whether to gather the statistics that label smoothing needs.
      whole_row: whether ``logits`` hold every class of the row, so the label's logit can be
        gathered; otherwise (a block, a device's shard) it is a masked sum.
      stored: the logits as stored, of which ``logits`` is the float32 copy (``_rules.widen``):
        the label's logit is then gathered from them and widened, one value per row, so that
        no gather reads the copy (XLA-TPU writes a widening out for a gather that reads it).
    """
    kept = logits if where is None else jnp.where(where, logits, -jnp.inf)
    row_max = jnp.max(kept, axis=axis, keepdims=True)
    exps = jnp.exp(shifted_logits(kept, row_max))
    classes = jax.lax.broadcasted_iota(logits.dtype, logits.shape, axis)
    others = jnp.sum(exps * _backend.not_equal_indicator(classes, labels.astype(logits.dtype)), axis, keepdims=True)
    # Classes that are all -inf here (a dead row, or a block or shard of masked classes in a live
    # row) hold no probability: R = 0, not the NaN of (-inf) - (-inf), so that joins stay finite.
    others = jnp.where(live_rows(row_max), others, 0.0)
    num_classes = logits.shape[axis]

    def at_label(values: jax.Array) -> jax.Array:
        if whole_row:
            index = jnp.clip(labels, 0, num_classes - 1)
            return jnp.take_along_axis(jnp.broadcast_to(values, logits.shape), index, axis=axis)
        is_label = jax.lax.broadcasted_iota(labels.dtype, logits.shape, axis) == labels
        return jnp.sum(jnp.where(is_label, values, 0.0), axis=axis, keepdims=True)

    if whole_row:
        has_label = ((labels >= 0) & (labels < num_classes)).astype(logits.dtype)
    else:
        has_label = at_label(jnp.ones((), logits.dtype))
    label_logit = at_label(logits) if stored is None else at_label(stored).astype(logits.dtype)
    stats = LabelStats(row_max, others, label_logit, has_label)
    if where is not None:
        stats = stats._replace(label_kept=at_label(where.astype(logits.dtype)))
    if class_weights is not None:
        stats = stats._replace(label_weight=at_label(class_weights))
    if smoothing:
        in_play = kept != -jnp.inf
        weights = jnp.ones((), logits.dtype) if class_weights is None else class_weights
        played = jnp.where(in_play, weights, 0.0)
        gaps = jnp.where(in_play, weights * (row_max - kept), 0.0)
        stats = stats._replace(
            in_play=jnp.sum(in_play, axis=axis, keepdims=True, dtype=logits.dtype),
            weight_in_play=jnp.sum(played, axis=axis, keepdims=True),
            gaps=jnp.sum(gaps, axis=axis, keepdims=True),
        )
    return stats


def relative_to(stats: LabelStats, new_max: jax.Array) -> LabelStats:
    """The same statistics with the sums taken relative to ``new_max >= stats.max``."""
    shift_to = jnp.where(new_max == -jnp.inf, 0.0, new_max)
    others = stats.others * jnp.exp(stats.max - shift_to)
    gaps = stats.gaps
    if gaps is not None:
        assert stats.weight_in_play is not None
        raised = jnp.where(stats.max == -jnp.inf, 0.0, new_max - stats.max)
        gaps = gaps + raised * stats.weight_in_play
    return stats._replace(max=new_max, others=others, gaps=gaps)


def merge(first: LabelStats, second: LabelStats) -> LabelStats:
    """The statistics of two disjoint sets of classes of the same rows, joined."""
    new_max = jnp.maximum(first.max, second.max)
    a, b = relative_to(first, new_max), relative_to(second, new_max)
    summed = jax.tree.map(jnp.add, sums(a), sums(b))
    return summed._replace(max=new_max)


def sums(stats: LabelStats) -> Any:
    """The fields that add up over disjoint sets of classes (all but the maximum), as a pytree."""
    return stats._replace(max=None)  # type: ignore[arg-type]


class LabelTotals(NamedTuple):
    """What the integer-label seed needs per row, over every class: the loss's own statistics."""

    max: jax.Array  # M
    total: jax.Array  # S = 1 + T (NaN for a label out of range)
    others: jax.Array  # R
    lse: jax.Array  # M + log S
    label_kept: jax.Array | None
    label_weight: jax.Array | None
    in_play: jax.Array | None
    weight_in_play: jax.Array | None


def label_loss(stats: LabelStats, options: Any) -> tuple[jax.Array, LabelTotals]:
    """The loss of each row from its :class:`LabelStats` over every class, and the seed's totals.

    .. math::
      \\ell = (1 - \\epsilon) w_l [(M - z_l) + \\log S]
        + \\frac{\\epsilon}{C}\\,[Q + W \\log S] + \\alpha (M + \\log S)^2

    without options :math:`(M - z_l) + \\log1p(T)`, with :math:`T = R` when the label is an
    arg-max and :math:`(R + e^{z_l - M}) - 1` otherwise. ``options`` is a
    ``_options.SoftmaxOptions`` or None. A label outside the classes gives NaN, a dead row 0.
    """
    label_kept = 1.0 if stats.label_kept is None else stats.label_kept
    label_term = label_kept * jnp.exp(stats.label_logit - jnp.where(stats.max == -jnp.inf, 0.0, stats.max))
    label_is_max = (stats.label_logit == stats.max) & (label_kept == 1.0)
    rest = jnp.where(label_is_max, stats.others, (stats.others + label_term) - 1.0)
    log_total = _compensated.log1p_row(rest)
    nll = jnp.where(stats.label_logit == stats.max, 0.0, stats.max - stats.label_logit) + log_total
    loss = nll
    if options is not None:
        if options.smoothing is not None or stats.label_weight is not None:
            keep_share = 1.0 if options.smoothing is None else 1.0 - options.smoothing
            loss = keep_share * (1.0 if stats.label_weight is None else stats.label_weight) * nll
        if options.smoothing is not None:
            assert stats.in_play is not None and stats.gaps is not None and stats.weight_in_play is not None
            share = options.smoothing / jnp.maximum(stats.in_play, 1.0)
            loss = loss + share * (stats.gaps + stats.weight_in_play * log_total)
    lse = stats.max + log_total
    if options is not None and options.z_loss is not None:
        loss = loss + options.z_loss * jnp.square(lse)
    valid = stats.has_label == 1.0
    live = live_rows(stats.max)
    loss = jnp.where(live, jnp.where(valid, loss, jnp.nan), 0.0)
    total = jnp.where(valid, 1.0 + rest, jnp.nan)
    totals = LabelTotals(
        stats.max, total, stats.others, lse, stats.label_kept, stats.label_weight, stats.in_play, stats.weight_in_play
    )
    return loss, totals
