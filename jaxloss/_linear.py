"""Fused linear + softmax cross-entropy over vocabulary blocks: the logits are never stored.

For hidden states :math:`h` (N, D), a weight :math:`W` (D, V), a bias :math:`b` and integer
labels :math:`l`, the logits :math:`z = hW + b` are computed block by block (B columns at a
time): once for the row statistics, and again in the backward pass for the seed.

Forward, one pass over the blocks with an online maximum (rescaling what came before): per row,
:math:`M = \\max_j z_j`, :math:`R = \\sum_{j \\ne l} e^{z_j - M}` (the label left out by its
index) and the label's logit :math:`z_l`. Then :math:`S = R + e^{z_l - M}`, and, as in
``_stable``, :math:`T = S - 1` carries no rounded leading 1 when the label is an arg-max
(:math:`T = R`), so :math:`\\ell = (M - z_l) + \\log1p(T)` keeps its digits for confident
predictions.

Backward, per block: :math:`p = e^{z - M}/S`, the closed-form seed :math:`g = p - \\text{onehot}`
(:math:`p_l - 1 = -R/S`, no cancellation), then :math:`\\bar h \\mathrel{+}= g W_B^\\top`,
:math:`\\bar W_B = h^\\top g` and :math:`\\bar b_B = \\sum_n g`. The residuals are the inputs and
O(N) statistics. Products accumulate in float32 (float64 for float64 inputs), and each block of
:math:`\\bar W` is one product over all N rows, never a running sum in low precision.

With the training options (``_options``) the labels are
:math:`y' = w \\odot ((1 - \\epsilon)\\,\\text{onehot}(l) + \\epsilon/V)`, so
:math:`\\ell = (1 - \\epsilon) w_l [(M - z_l) + \\log S] + \\frac{\\epsilon}{V}[Q + (\\sum_j w_j) \\log S]
+ \\alpha \\operatorname{lse}^2` with :math:`Q = \\sum_j w_j (M - z_j) \\ge 0` (accumulated online,
every term non-negative), and the seed is
:math:`(1 - \\epsilon) w_l (p - \\text{onehot}) + \\frac{\\epsilon}{V}(p \\sum_j w_j - w)
+ 2\\alpha \\operatorname{lse}\\, p`, chained through :math:`1 - \\tanh^2(z/c)` with a soft cap.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jaxloss import _stable, seeds

TARGET_BLOCK_BYTES = 4 * 2**20  # one block of logits: about 4 MiB


def block_columns(rows: int, vocab: int, itemsize: int, block_size: int | None) -> int:
    """The block width: ``block_size``, or about 4 MiB of logits, a multiple of 128 where it can be."""
    if block_size is not None:
        return max(1, min(int(block_size), vocab))
    columns = max(1, TARGET_BLOCK_BYTES // max(1, rows * itemsize))
    if columns >= 128:
        columns -= columns % 128
    return max(1, min(columns, vocab))


class BlockOptions(NamedTuple):
    """The options as the blocks use them: arrays in the compute dtype, or None."""

    smoothing: jax.Array | None
    weights: jax.Array | None  # (V,) per-class weights
    z_loss: jax.Array | None
    cap: jax.Array | None


class RowStats(NamedTuple):
    """Per-row statistics over the classes of one weight (all of them, or one shard)."""

    max: jax.Array  # M
    others: jax.Array  # R = sum over j != l of e^(z_j - M)
    label_logit: jax.Array  # z_l, or 0 where the label is not among these classes
    has_label: jax.Array  # 1 where the label is among these classes, else 0
    label_weight: jax.Array  # w_l (1 without weights), or 0 where the label is not here
    gaps: jax.Array  # Q = sum_j w_j (M - z_j) with label smoothing, else 0
    seen_weight: jax.Array  # sum_j w_j over these classes (a scalar)


def compute_dtype(*arrays: jax.Array) -> Any:
    """float32, or float64 when an input is float64."""
    dtype = jnp.dtype(jnp.float32)
    for a in arrays:
        if a.dtype == jnp.float64:
            dtype = jnp.dtype(jnp.float64)
    return dtype


def _logits_block(hidden: jax.Array, weight: jax.Array, bias: jax.Array | None, start: Any, width: int) -> jax.Array:
    """:math:`h W_B + b_B`, accumulated in the compute dtype."""
    compute = compute_dtype(hidden, weight)
    columns = jax.lax.dynamic_slice_in_dim(weight, start, width, axis=1)
    logits = jax.lax.dot(hidden, columns, preferred_element_type=compute)
    if bias is not None:
        logits = logits + jax.lax.dynamic_slice_in_dim(bias, start, width).astype(compute)[None, :]
    return logits


def _for_blocks(vocab: int, width: int, body: Callable[[Any, Any, int], Any], carry: Any) -> Any:
    """Runs ``body(carry, start, width)`` over the full blocks, then over the remainder.

    The first block runs before the loop, so that the loop's carry already has the type the
    body gives it (inside ``shard_map``, values that vary over the mesh axes).
    """
    full = vocab // width
    if full:
        carry = body(carry, 0, width)
    if full > 1:
        carry = jax.lax.fori_loop(1, full, lambda k, c: body(c, k * width, width), carry)
    if vocab % width:
        carry = body(carry, full * width, vocab % width)
    return carry


def _block_weights(options: BlockOptions, start: Any, width: int, dtype: Any) -> jax.Array:
    if options.weights is None:
        return jnp.ones((width,), dtype)
    return jax.lax.dynamic_slice_in_dim(options.weights, start, width)


def local_stats(
    hidden: jax.Array, weight: jax.Array, bias: jax.Array | None, labels: jax.Array, options: BlockOptions, width: int
) -> RowStats:
    """The row statistics over the classes of ``weight``; ``labels`` count from its first column."""
    rows, vocab = hidden.shape[0], weight.shape[1]
    compute = compute_dtype(hidden, weight)

    def body(stats: RowStats, start: Any, size: int) -> RowStats:
        logits = _stable.soft_cap(_logits_block(hidden, weight, bias, start, size), options.cap)
        is_label = (start + jax.lax.iota(labels.dtype, size))[None, :] == labels[:, None]
        new_max = jnp.maximum(stats.max, jnp.max(logits, axis=1))
        shift_to = jnp.where(new_max == -jnp.inf, 0.0, new_max)  # rows of only -inf so far
        rescale = jnp.exp(stats.max - shift_to)
        exps = jnp.exp(logits - shift_to[:, None])
        others = stats.others * rescale + jnp.sum(jnp.where(is_label, 0.0, exps), axis=1)
        class_weights = _block_weights(options, start, size, compute)
        label_logit = stats.label_logit + jnp.sum(jnp.where(is_label, logits, 0.0), axis=1)
        has_label = stats.has_label + jnp.sum(is_label, axis=1).astype(compute)
        label_weight = stats.label_weight + jnp.sum(jnp.where(is_label, class_weights[None, :], 0.0), axis=1)
        gaps = stats.gaps
        if options.smoothing is not None:
            raised = jnp.where(stats.max == -jnp.inf, 0.0, shift_to - stats.max)
            gaps = (
                gaps
                + raised * stats.seen_weight
                + jnp.sum(class_weights[None, :] * (shift_to[:, None] - logits), axis=1)
            )
        seen = stats.seen_weight + jnp.sum(class_weights)
        return RowStats(new_max, others, label_logit, has_label, label_weight, gaps, seen)

    zeros = jnp.zeros((rows,), compute)
    first = RowStats(jnp.full((rows,), -jnp.inf, compute), zeros, zeros, zeros, zeros, zeros, jnp.zeros((), compute))
    return _for_blocks(vocab, width, body, first)


class Totals(NamedTuple):
    """What the seed needs per row: the maximum, S = 1 + T, R, lse, and the label's weight."""

    max: jax.Array
    total: jax.Array
    others: jax.Array
    lse: jax.Array
    label_weight: jax.Array


def finish(stats: RowStats, options: BlockOptions, vocab: int) -> tuple[jax.Array, Totals]:
    """The loss of each row from its statistics (over the whole vocabulary), and the seed's totals.

    Rows whose label is among none of the classes get NaN (a label out of range).
    """
    label_term = jnp.exp(stats.label_logit - stats.max)
    label_is_max = stats.label_logit == stats.max
    rest = jnp.where(label_is_max, stats.others, (stats.others + label_term) - 1.0)
    log_total = _stable.log1p_nonnegative(rest)
    nll = jnp.where(label_is_max, 0.0, stats.max - stats.label_logit) + log_total
    loss = nll
    if options.smoothing is not None or options.weights is not None:
        keep_share = 1.0 if options.smoothing is None else 1.0 - options.smoothing
        loss = keep_share * stats.label_weight * nll
        if options.smoothing is not None:
            loss = loss + (options.smoothing / vocab) * (stats.gaps + stats.seen_weight * log_total)
    lse = stats.max + log_total
    if options.z_loss is not None:
        loss = loss + options.z_loss * jnp.square(lse)
    valid = stats.has_label == 1.0
    loss = jnp.where(valid, loss, jnp.nan)
    total = jnp.where(valid, 1.0 + rest, jnp.nan)  # and a NaN seed
    return loss, Totals(stats.max, total, stats.others, lse, stats.label_weight)


def backward_blocks(
    hidden: jax.Array,
    weight: jax.Array,
    bias: jax.Array | None,
    labels: jax.Array,
    options: BlockOptions,
    totals: Totals,
    weight_total: jax.Array,
    vocab_total: int,
    cotangent: jax.Array,
    width: int,
) -> tuple[jax.Array, jax.Array, jax.Array | None]:
    """Gradients for ``hidden`` (in the compute dtype), ``weight`` and ``bias`` (in their dtypes).

    ``cotangent`` is the per-row cotangent (0 for rows that do not count); ``labels`` count
    from the first column of ``weight``; ``weight_total`` is :math:`\\sum_j w_j` over the whole
    vocabulary (``vocab_total`` classes).
    """
    rows, vocab = hidden.shape[0], weight.shape[1]
    compute = compute_dtype(hidden, weight)
    hidden_c = hidden.astype(compute)

    def body(carry: Any, start: Any, size: int) -> Any:
        d_hidden, d_weight, d_bias = carry
        raw = _logits_block(hidden, weight, bias, start, size)
        is_label = (start + jax.lax.iota(labels.dtype, size))[None, :] == labels[:, None]
        class_weights = None if options.smoothing is None else _block_weights(options, start, size, compute)
        grad = seeds.integer_labels_block_grad_from_totals(
            raw, is_label, totals.max, totals.total, totals.others, totals.lse, totals.label_weight,
            options, class_weights, weight_total, vocab_total,
        )  # fmt: skip
        grad = cotangent[:, None] * grad
        columns = jax.lax.dynamic_slice_in_dim(weight, start, size, axis=1).astype(compute)
        d_hidden = d_hidden + jax.lax.dot(grad, columns.T, preferred_element_type=compute)
        d_columns = jax.lax.dot(hidden_c.T, grad, preferred_element_type=compute)
        # Each block of the weight's gradient is complete (one float32 product over all rows)
        # before it is rounded to the weight's dtype: nothing accumulates in low precision.
        d_weight = jax.lax.dynamic_update_slice_in_dim(d_weight, d_columns.astype(d_weight.dtype), start, axis=1)
        if d_bias is not None:
            d_bias = jax.lax.dynamic_update_slice_in_dim(
                d_bias, jnp.sum(grad, axis=0).astype(d_bias.dtype), start, axis=0
            )
        return d_hidden, d_weight, d_bias

    start = (
        jnp.zeros((rows, hidden.shape[1]), compute),
        jnp.zeros(weight.shape, weight.dtype),
        None if bias is None else jnp.zeros(bias.shape, bias.dtype),
    )
    return _for_blocks(vocab, width, body, start)


# --- the rule on one device ------------------------------------------------------------------


def _forward(
    hidden: jax.Array,
    weight: jax.Array,
    bias: jax.Array | None,
    labels: jax.Array,
    counts: jax.Array,
    options: BlockOptions,
    width: int,
) -> tuple[jax.Array, Any]:
    stats = local_stats(hidden, weight, bias, labels, options, width)
    loss, totals = finish(stats, options, weight.shape[1])
    loss = jnp.where(counts, loss, 0.0)
    return loss, (totals, stats.seen_weight)


def _primal(
    hidden: jax.Array,
    weight: jax.Array,
    bias: jax.Array | None,
    labels: jax.Array,
    counts: jax.Array,
    options: BlockOptions,
    width: int,
) -> jax.Array:
    """Per-row losses of ``hidden @ weight + bias``; ``width`` classes per block (static)."""
    return _forward(hidden, weight, bias, labels, counts, options, width)[0]


fused = jax.custom_vjp(_primal, nondiff_argnums=(6,))


def _fused_fwd(
    hidden: jax.Array,
    weight: jax.Array,
    bias: jax.Array | None,
    labels: jax.Array,
    counts: jax.Array,
    options: BlockOptions,
    width: int,
) -> tuple[jax.Array, Any]:
    loss, (totals, weight_total) = _forward(hidden, weight, bias, labels, counts, options, width)
    return loss, (hidden, weight, bias, labels, counts, options, totals, weight_total)


def _fused_bwd(width: int, residuals: Any, cotangent: jax.Array) -> tuple[Any, ...]:
    hidden, weight, bias, labels, counts, options, totals, weight_total = residuals
    row_cotangent = jnp.where(counts, cotangent, 0.0).astype(totals.max.dtype)
    d_hidden, d_weight, d_bias = backward_blocks(
        hidden, weight, bias, labels, options, totals, weight_total, weight.shape[1], row_cotangent, width
    )
    return (
        summed_like(d_hidden.astype(hidden.dtype), hidden),
        summed_like(d_weight, weight),
        None if bias is None or d_bias is None else summed_like(d_bias, bias),
        None,
        None,
        None,
    )


fused.defvjp(_fused_fwd, _fused_bwd)


def summed_like(cotangent: jax.Array, primal: jax.Array) -> jax.Array:
    """The cotangent of ``primal``, summed over the mesh axes it varies over and ``primal`` does not.

    Inside ``shard_map``, an input that is the same on every device of an axis (a weight
    replicated over the data axis, hidden states replicated over the vocabulary axis) is used on
    each of them, so its gradient is the sum of theirs. Outside ``shard_map`` this is the
    identity.
    """
    extra = tuple(sorted(_varying_axes(cotangent) - _varying_axes(primal)))
    return jax.lax.psum(cotangent, extra) if extra else cotangent


def _varying_axes(array: jax.Array) -> frozenset[str]:
    """The mesh axes over which ``array`` varies inside ``shard_map`` (none outside it)."""
    kind = getattr(jax.typeof(array), "manual_axis_type", None)
    if kind is None:  # older JAX
        return frozenset(getattr(jax.typeof(array), "vma", frozenset()))
    return frozenset(kind.varying)
