"""``linear_cross_entropy``: the output layer and the softmax cross-entropy, fused; the logits are never stored.

For hidden states :math:`h` (N, D), a weight :math:`W` (D, V), a bias :math:`b` and integer
labels :math:`l`, the logits :math:`z = hW + b` are computed block by block (B columns at a
time): once for the row statistics, and again in the backward pass for the seed.

Forward, one pass over the blocks: each block's label statistics (``_stats.label_stats``: per
row :math:`M`, :math:`R = \\sum_{j \\ne l} e^{z_j - M}` with the label left out by its index,
and :math:`z_l`) are joined to the running ones by ``_stats.merge`` (an online maximum), and the
loss is formed from them by ``_stats.label_loss``, as for the full logits.

Backward, per block: the closed-form seed :math:`g = p - \\text{onehot}` (``_seeds``, the same
function as for the full logits; :math:`p_l - 1 = -R/S`, no cancellation), then
:math:`\\bar h \\mathrel{+}= g W_B^\\top`, :math:`\\bar W_B = h^\\top g` and :math:`\\bar b_B = \\sum_n g`.
The residuals are the inputs and O(N) statistics. Products accumulate in float32 (float64 for
float64 inputs), and each block of :math:`\\bar W` is one product over all N rows, never a running sum in low precision,
rounded once to the weight's dtype.

With a reduction, the rows rule forms the gradients in the forward pass, a block of rows at a
time, into a float32 :math:`\\bar W`. Which rule and which blocks: :func:`plan_blocks`, per
platform.

With the training options (``_options``) the statistics and the seed are those of the full
logits with the same options.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxloss import _backend, _checks, _norms, _options, _seeds, _stats

TARGET_BLOCK_BYTES = 4 * 2**20  # one block of logits: about 4 MiB


def block_columns(rows: int, vocab: int, itemsize: int, block_size: int | None) -> int:
    """The block width: ``block_size``, or about 4 MiB of logits, a multiple of 128 where it can be."""
    if block_size is not None:
        return max(1, min(int(block_size), vocab))
    columns = max(1, TARGET_BLOCK_BYTES // max(1, rows * itemsize))
    if columns >= 128:
        columns -= columns % 128
    return max(1, min(columns, vocab))


def compute_dtype(*arrays: jax.Array) -> Any:
    """float32, or float64 when an input is float64."""
    dtype = jnp.dtype(jnp.float32)
    for a in arrays:
        if a.dtype == jnp.float64:
            dtype = jnp.dtype(jnp.float64)
    return dtype


def _logits_block(hidden: jax.Array, weight: jax.Array, bias: jax.Array | None, start: Any, width: int) -> jax.Array:
    """:math:`h W_B + b_B`, the operands in ``product_dtype``, accumulated in the compute dtype.

    ``hidden`` is already in the operands' dtype; the weight's columns are cast a block at a time.
    """
    compute = compute_dtype(hidden, weight)
    columns = jax.lax.dynamic_slice_in_dim(weight, start, width, axis=1)
    logits = _backend.dot(hidden, columns, operand=hidden.dtype, compute=compute)
    if bias is not None:
        logits = logits + jax.lax.dynamic_slice_in_dim(bias, start, width).astype(compute)[None, :]
    return logits


def _for_blocks(
    vocab: int, width: int, body: Callable[[Any, Any, int], Any], carry: Any, operands: tuple[jax.Array, ...] = ()
) -> Any:
    """Runs ``body(carry, start, width)`` over the full blocks, in one loop, then over the remainder.

    Where one of the ``operands`` the body reads varies over mesh axes (inside ``shard_map``),
    the first block runs before the loop, so that the loop's carry already has the type the
    body gives it. Elsewhere every full block is in the loop: XLA-GPU inlines a loop of one
    trip and may then hold two blocks at once. Compiled for an H200 (bfloat16, N=8192, D=4096,
    V=128256, value_and_grad of the mean in two blocks of 64128 classes): 5.87 GiB of
    temporaries with the first block outside the loop, 3.55 GiB with both in it.
    """
    full = vocab // width
    first = 0
    if full and any(_varying_axes(a) for a in operands):
        carry, first = body(carry, 0, width), 1
    if full > first:
        carry = jax.lax.fori_loop(first, full, lambda k, c: body(c, k * width, width), carry)
    if vocab % width:
        carry = body(carry, full * width, vocab % width)
    return carry


def _block_weights(options: _options.SoftmaxOptions | None, start: Any, width: int) -> jax.Array | None:
    """The block's class weights, shape (1, width), or None."""
    if options is None or options.weights is None:
        return None
    return jax.lax.dynamic_slice_in_dim(options.weights, start, width, axis=1)


def local_stats(
    hidden: jax.Array,
    weight: jax.Array,
    bias: jax.Array | None,
    labels: jax.Array,
    options: _options.SoftmaxOptions | None,
    width: int,
) -> _stats.LabelStats:
    """The label statistics over the classes of ``weight``; ``labels`` (rows, 1) count from its first column."""
    vocab = weight.shape[1]
    smoothing = options is not None and options.smoothing is not None
    cap = None if options is None else options.cap
    hidden = hidden.astype(product_dtype(hidden, weight))

    def block(start: Any, size: int) -> _stats.LabelStats:
        logits = _options.soft_cap_classes(_logits_block(hidden, weight, bias, start, size), cap)
        return _stats.label_stats(
            logits,
            labels - start,
            1,
            class_weights=_block_weights(options, start, size),
            smoothing=smoothing,
            whole_row=False,
        )

    full, tail = divmod(vocab, width)
    if not full:
        return block(0, tail)
    stats = block(0, width)
    if full > 1:
        stats = jax.lax.fori_loop(1, full, lambda k, s: _stats.merge(s, block(k * width, width)), stats)
    if tail:
        stats = _stats.merge(stats, block(full * width, tail))
    return stats


def _block_seed(
    hidden: jax.Array,
    weight: jax.Array,
    bias: jax.Array | None,
    labels: jax.Array,
    options: _options.SoftmaxOptions | None,
    totals: _stats.LabelTotals,
    start: Any,
    size: int,
) -> jax.Array:
    """The seed :math:`\\partial\\ell/\\partial z` on the block of ``size`` classes from ``start``, shape (rows, size).

    ``hidden`` in the products' dtype; ``labels`` (rows, 1) count from the first column of
    ``weight``; ``totals`` are over the whole vocabulary.
    """
    raw = _logits_block(hidden, weight, bias, start, size)
    return _seeds.softmax_cross_entropy_with_integer_labels_grad_from_totals(
        raw,
        _options.soft_cap_classes(raw, None if options is None else options.cap),
        labels - start,
        totals,
        options,
        1,
        class_weights=_block_weights(options, start, size),
    )


def seed_norms(
    hidden: jax.Array,
    weight: jax.Array,
    bias: jax.Array | None,
    labels: jax.Array,
    counts: jax.Array,
    options: _options.SoftmaxOptions | None,
    totals: _stats.LabelTotals,
    width: int,
) -> jax.Array:
    """:math:`\\lVert \\partial\\ell_n/\\partial z_n \\rVert_2` of each row, shape (rows,), in one more pass.

    Each block's logits are recomputed (one more matrix product over the step) and its seed
    formed as in the backward pass; the sum of squares is carried per row, scaled by the power
    of two of the largest magnitude so far (``_norms.add_block``). 0 for rows that do not count.
    """
    return _norms.finished(seed_squares(hidden, weight, bias, labels, counts, options, totals, width))


def seed_squares(
    hidden: jax.Array,
    weight: jax.Array,
    bias: jax.Array | None,
    labels: jax.Array,
    counts: jax.Array,
    options: _options.SoftmaxOptions | None,
    totals: _stats.LabelTotals,
    width: int,
) -> _norms.Squares:
    """:func:`seed_norms` before the square root: the scaled sums of squares over the classes of ``weight``."""
    hidden_p = hidden.astype(product_dtype(hidden, weight))

    def body(carry: _norms.Squares, start: Any, size: int) -> _norms.Squares:
        grad = _block_seed(hidden_p, weight, bias, labels, options, totals, start, size)
        return _norms.add_block(carry, jnp.where(counts[:, None], jnp.abs(grad), 0.0))

    start = _norms.no_squares(hidden.shape[0], totals.max.dtype)
    return _for_blocks(weight.shape[1], width, body, start, (hidden, weight, labels, counts))


def seed_grams(
    hidden: jax.Array,
    weight: jax.Array,
    bias: jax.Array | None,
    labels: jax.Array,
    counts: jax.Array,
    options: _options.SoftmaxOptions | None,
    totals: _stats.LabelTotals,
    width: int,
    length: int,
) -> _norms.Grams:
    """The seeds' Gram matrices within each sequence of ``length`` rows (``_norms.Grams``), in one more pass.

    As :func:`seed_squares`, block by block over the classes of ``weight``, with a T x T product
    per sequence and block: O(N T V) multiply-adds more, against the step's O(N D V).
    """
    hidden_p = hidden.astype(product_dtype(hidden, weight))
    sequences = hidden.shape[0] // length

    def body(carry: _norms.Grams, start: Any, size: int) -> _norms.Grams:
        grad = _block_seed(hidden_p, weight, bias, labels, options, totals, start, size)
        grad = jnp.where(counts[:, None], grad, 0.0)
        return _norms.add_gram_block(carry, grad.reshape(sequences, length, size))

    start = _norms.no_grams(sequences, length, totals.max.dtype)
    return _for_blocks(weight.shape[1], width, body, start, (hidden, weight, labels, counts))


def same_example(segments: jax.Array, counts: jax.Array) -> jax.Array:
    """(sequences, T, T): True where tokens t and u of a sequence share a segment id and both count.

    ``segments`` (sequences, T); ``counts`` (rows,) or (sequences, T).
    """
    kept = counts.reshape(segments.shape)
    return (segments[:, :, None] == segments[:, None, :]) & kept[:, :, None] & kept[:, None, :]


def grouped_norms(
    grams: _norms.Grams, hidden: jax.Array, has_bias: bool, segments: jax.Array, counts: jax.Array
) -> jax.Array:
    """:func:`_norms.segment_norms` of flat rows: each row holds its example's norm, 0 where it does not count."""
    sequences, length = segments.shape
    norms = _norms.segment_norms(
        grams, hidden.reshape(sequences, length, -1), has_bias, same_example(segments, counts)
    ).reshape(-1)
    return jnp.where(counts.reshape(-1), norms, 0.0)


def example_norms(seed_norm: jax.Array, hidden: jax.Array, has_bias: bool) -> jax.Array:
    """Each example's gradient norm for (weight, bias): :math:`\\lVert g_n \\rVert \\sqrt{\\lVert h_n \\rVert^2 + [b]}`.

    The gradient of :math:`\\ell_n` for the weight is the outer product :math:`h_n g_n^\\top`,
    whose Frobenius norm is :math:`\\lVert h_n \\rVert \\lVert g_n \\rVert`, and for the bias
    :math:`g_n`. ``hidden`` (rows, D); the norms are taken scaled (``_norms.row_norm``).
    """
    h = _norms.row_norm(jnp.abs(hidden.astype(seed_norm.dtype)), 1)
    return seed_norm * (jnp.hypot(h, 1.0) if has_bias else h)


def clip_factors(norms: jax.Array, clip_norm: jax.Array) -> jax.Array:
    """:math:`c_n = \\min(1, C/\\lVert \\nabla_n \\rVert)`: 1 for a zero gradient (C/0 is inf), 0 for an infinite one.

    A NaN norm, or a NaN ``clip_norm`` (a traced one out of range), gives NaN.
    """
    return jnp.minimum(1.0, clip_norm / norms)


def backward_blocks(
    hidden: jax.Array,
    weight: jax.Array,
    bias: jax.Array | None,
    labels: jax.Array,
    options: _options.SoftmaxOptions | None,
    totals: _stats.LabelTotals,
    cotangent: jax.Array,
    blocks: BlockPlan,
) -> tuple[jax.Array, jax.Array, jax.Array | None]:
    """Gradients for ``hidden`` (in the compute dtype), ``weight`` and ``bias`` (in their dtypes).

    The weight's gradient is in the compute dtype instead where the plan keeps it so
    (``blocks.rounded`` false) or where it is still to be summed over a mesh axis
    (``summed_like``); the caller casts it after the sum.

    ``cotangent`` is the per-row cotangent, shape (rows, 1), 0 for rows that do not count;
    ``labels`` (rows, 1) count from the first column of ``weight``; ``totals`` are over the
    whole vocabulary.
    """
    rows, vocab = hidden.shape[0], weight.shape[1]
    compute = compute_dtype(hidden, weight)
    operand = product_dtype(hidden, weight)
    hidden_p = hidden.astype(operand)

    # Each block of the weight's gradient is complete (one float32 product over all rows), so it
    # is rounded once, to the weight's dtype, as it is written: no (D, V) float32 array is kept.
    # Inside ``shard_map``, a weight replicated over an axis the rows are split over gets its
    # gradient summed over that axis afterwards (``summed_like``): those blocks stay float32.
    summed = _varying_axes(hidden) | _varying_axes(labels) | _varying_axes(cotangent)
    accumulate = compute if summed - _varying_axes(weight) or not blocks.rounded else weight.dtype

    def body(carry: Any, start: Any, size: int) -> Any:
        d_hidden, d_weight, d_bias = carry
        grad = cotangent * _block_seed(hidden_p, weight, bias, labels, options, totals, start, size)
        columns = jax.lax.dynamic_slice_in_dim(weight, start, size, axis=1)
        d_hidden = d_hidden + _backend.dot(grad, columns, operand=operand, compute=compute, transpose_b=True)
        d_columns = _backend.dot(hidden_p.T, grad, operand=operand, compute=compute).astype(accumulate)
        d_weight = jax.lax.dynamic_update_slice_in_dim(d_weight, d_columns, start, axis=1)
        if d_bias is not None:
            d_bias = jax.lax.dynamic_update_slice_in_dim(
                d_bias, jnp.sum(grad, axis=0).astype(d_bias.dtype), start, axis=0
            )
        return d_hidden, d_weight, d_bias

    start = (
        jnp.zeros((rows, hidden.shape[1]), compute),
        jnp.zeros(weight.shape, accumulate),
        None if bias is None else jnp.zeros(bias.shape, bias.dtype),
    )
    return _for_blocks(vocab, blocks.width, body, start, (hidden, weight, labels, cotangent))


# --- the rule on one device, per example ------------------------------------------------------


def token_stats(stats: _stats.LabelStats, totals: _stats.LabelTotals, counts: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Per row: the lse of the (capped) logits, and 1 where the label's logit is the largest and the row counts."""
    correct = (stats.label_logit == stats.max) & counts[:, None]
    return totals.lse[:, 0], correct[:, 0].astype(totals.lse.dtype)


def _forward(
    hidden: jax.Array,
    weight: jax.Array,
    bias: jax.Array | None,
    labels: jax.Array,
    counts: jax.Array,
    options: _options.SoftmaxOptions | None,
    segments: jax.Array | None,
    blocks: BlockPlan,
    norms: bool,
) -> tuple[tuple[jax.Array, jax.Array, jax.Array, jax.Array], Any]:
    stats = local_stats(hidden, weight, bias, labels[:, None], options, blocks.width)
    loss, totals = _stats.label_loss(stats, options)
    norm = jnp.zeros_like(totals.lse[:, 0])
    if norms and segments is None:
        norm = seed_norms(hidden, weight, bias, labels[:, None], counts, options, totals, blocks.width)
    elif norms and segments is not None:
        length = segments.shape[1]
        grams = seed_grams(hidden, weight, bias, labels[:, None], counts, options, totals, blocks.width, length)
        norm = grouped_norms(grams, hidden, bias is not None, segments, counts)
    outputs = (jnp.where(counts, loss[:, 0], 0.0), *token_stats(stats, totals, counts), norm)
    return outputs, (hidden, weight, bias, labels, counts, options, totals)


def _primal(
    hidden: jax.Array,
    weight: jax.Array,
    bias: jax.Array | None,
    labels: jax.Array,
    counts: jax.Array,
    options: _options.SoftmaxOptions | None,
    segments: jax.Array | None,
    blocks: BlockPlan,
    norms: bool = False,
) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
    """Per-row losses of ``hidden @ weight + bias``, the rows' lse and correctness, and with
    ``norms`` the norm of each row's seed (:func:`seed_norms`; else 0), or with ``segments``
    (sequences, T) each example's whole gradient norm (:func:`seed_grams`); in the blocks of ``blocks``."""
    return _forward(hidden, weight, bias, labels, counts, options, segments, blocks, norms)[0]


fused = jax.custom_vjp(_primal, nondiff_argnums=(7, 8))


def _fused_bwd(blocks: BlockPlan, norms: bool, residuals: Any, cotangents: Any) -> tuple[Any, ...]:
    # The lse, correctness and norm outputs reach the caller behind stop_gradient: their cotangents are 0.
    del norms
    hidden, weight, bias, labels, counts, options, totals = residuals
    row_cotangent = jnp.where(counts, cotangents[0], 0.0).astype(totals.max.dtype)[:, None]
    d_hidden, d_weight, d_bias = backward_blocks(
        hidden, weight, bias, labels[:, None], options, totals, row_cotangent, blocks
    )
    return (
        summed_like(d_hidden.astype(hidden.dtype), hidden),
        summed_like(d_weight, weight).astype(weight.dtype),
        None if bias is None or d_bias is None else summed_like(d_bias, bias),
        None,
        None,
        None,
        None,
    )


fused.defvjp(_forward, _fused_bwd)


# --- the rule on one device, reduced: the gradients formed in the forward pass -------------------


REDUCED_BLOCK_BYTES = 32 * 2**20  # one block of rows' logits, with a reduction: at most 32 MiB
MAX_BLOCK_ROWS = 256  # and at most 256 rows: more adds memory, not speed (below)


def block_rows(rows: int, vocab: int, itemsize: int, block_size: int | None) -> int:
    """Rows per block of the reduced rule: 256, at most 32 MiB of logits, or as many logits as ``block_size`` columns.

    Every block adds its product :math:`h_B^\\top g` into the (D, V) float32 accumulator, so
    the accumulator is read and written N/rows times; blocks of a few rows make that traffic
    dominate. Measured at N=2048, D=512, V=32768 float32 (value_and_grad, one run, against
    optax's unfused cost): 64 rows per block 1.08x, 128 rows 1.31x, 256 rows (32 MiB) 1.53x,
    512 rows 1.50x; 32 rows (4 MiB, the per-example rule's block) 0.64x. Beyond 256 rows
    only the memory grows: at N=4096, D=512, V=4096, blocks of 2048 rows (32 MiB) took 104 MiB of
    temporaries, more than the unfused cost's 64 MiB.
    """
    if block_size is not None:
        return max(1, min(rows, rows * min(int(block_size), vocab) // max(1, vocab)))
    return max(1, min(rows, MAX_BLOCK_ROWS, REDUCED_BLOCK_BYTES // (itemsize * max(1, vocab))))


class Plan(NamedTuple):
    """The static part of the reduced rule: rows per block, and the dtypes the gradients return in."""

    height: int
    width: int
    hidden: Any
    weight: Any
    bias: Any
    norms: bool = False  # also the norm of each example's gradient (``example_norms``)
    clip: bool = False  # each example's gradient clipped to ``clip_norm`` (``clip_factors``)


def _reduced_forward(
    hidden: jax.Array,
    weight: jax.Array,
    bias: jax.Array | None,
    labels: jax.Array,
    counts: jax.Array,
    options: _options.SoftmaxOptions | None,
    segments: jax.Array | None,
    denominator: jax.Array,
    clip_norm: jax.Array,
    plan: Plan,
) -> tuple[tuple[jax.Array, jax.Array, jax.Array, jax.Array], Any]:
    """The reduced loss, and the gradients of the sum of the losses, ``plan.height`` rows at a time.

    Each block of rows holds every class, so its statistics, its loss and its seed are those of
    the full logits (``_stats.label_stats``, ``label_loss``, the one seed), and the block's
    gradients follow at once: :math:`\\bar h_B = g W^\\top` and :math:`\\bar W \\mathrel{+}= h_B^\\top g`
    (a float32 accumulator), three matrix products in all. The reduction is the sum over
    ``denominator`` (1, or the examples' weight; 0 when that is 0, as ``jaxloss.mean``); the
    backward pass multiplies the gradients by the cotangent over it.

    With ``plan.norms`` each row's gradient norm comes from its block's seed, which holds every
    class (``example_norms``: no product more), or with ``segments`` each example's from the
    Gram matrices of its block's sequences (``_norms.segment_norms``: a T x T product per
    sequence); with ``plan.clip`` each row's loss and seed are
    multiplied by its clip factor (``clip_factors``) before they are summed, so that the
    gradients are the clipped sums.
    """
    rows, dim = hidden.shape
    compute = compute_dtype(hidden, weight)
    operand = product_dtype(hidden, weight)
    hidden_t = _backend.transposed(hidden.astype(operand))
    cap = None if options is None else options.cap
    class_weights = None if options is None else options.weights
    smoothing = options is not None and options.smoothing is not None

    def body(carry: Any, start: Any, size: int) -> Any:
        total, lse, correct, norms, d_hidden, d_weight, d_bias = carry
        h_b = jax.lax.dynamic_slice_in_dim(hidden, start, size, axis=0).astype(operand)
        y_b = jax.lax.dynamic_slice_in_dim(labels, start, size)[:, None]
        kept = jax.lax.dynamic_slice_in_dim(counts, start, size)
        raw = _backend.dot(h_b, weight, operand=operand, compute=compute)
        if bias is not None:
            raw = raw + bias.astype(compute)[None, :]
        capped = _options.soft_cap_classes(raw, cap)
        stats = _stats.label_stats(capped, y_b, 1, class_weights=class_weights, smoothing=smoothing)
        loss, totals = _stats.label_loss(stats, options)
        grad = _seeds.softmax_cross_entropy_with_integer_labels_grad_from_totals(
            raw, capped, y_b, totals, options, 1, class_weights=class_weights
        )
        grad = jnp.where(kept[:, None], grad, 0.0)
        loss_b = jnp.where(kept, loss[:, 0], 0.0)
        if plan.norms and segments is not None:
            length = segments.shape[1]
            seq_b = jax.lax.dynamic_slice_in_dim(segments, start // length, size // length, axis=0)
            grams = _norms.add_gram_block(
                _norms.no_grams(size // length, length, compute), grad.reshape(size // length, length, -1)
            )
            norms_b = grouped_norms(grams, h_b, bias is not None, seq_b, kept)
        elif plan.norms:
            norms_b = example_norms(_norms.row_norm(jnp.abs(grad), 1), h_b, bias is not None)
        if plan.norms:
            norms = jax.lax.dynamic_update_slice_in_dim(norms, norms_b, start, axis=0)
            if plan.clip:
                factors = clip_factors(norms_b, clip_norm)
                grad, loss_b = factors[:, None] * grad, factors * loss_b
        total = total + jnp.sum(loss_b)
        lse_b, correct_b = token_stats(stats, totals, kept)
        lse = jax.lax.dynamic_update_slice_in_dim(lse, lse_b, start, axis=0)
        correct = jax.lax.dynamic_update_slice_in_dim(correct, correct_b, start, axis=0)
        d_h_b = _backend.dot(grad, weight, operand=operand, compute=compute, transpose_b=True)
        d_hidden = jax.lax.dynamic_update_slice_in_dim(d_hidden, d_h_b, start, axis=0)
        h_t = jax.lax.dynamic_slice_in_dim(hidden_t, start, size, axis=1)
        d_weight = d_weight + _backend.dot(h_t, grad, operand=operand, compute=compute)
        if d_bias is not None:
            d_bias = d_bias + jnp.sum(grad, axis=0)
        return total, lse, correct, norms, d_hidden, d_weight, d_bias

    carry = (
        jnp.zeros((), compute),
        jnp.zeros((rows,), compute),
        jnp.zeros((rows,), compute),
        jnp.zeros((rows,), compute),
        jnp.zeros((rows, dim), compute),
        jnp.zeros(weight.shape, compute),
        None if bias is None else jnp.zeros(bias.shape, compute),
    )
    total, lse, correct, norms, d_hidden, d_weight, d_bias = _for_blocks(
        rows, plan.height, body, carry, (hidden, weight, labels, counts)
    )
    return (over(total, denominator), lse, correct, norms), (d_hidden, d_weight, d_bias, denominator)


def _reduced_primal(
    hidden: jax.Array,
    weight: jax.Array,
    bias: jax.Array | None,
    labels: jax.Array,
    counts: jax.Array,
    options: _options.SoftmaxOptions | None,
    segments: jax.Array | None,
    denominator: jax.Array,
    clip_norm: jax.Array,
    plan: Plan,
) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
    """Without a gradient, the per-example rule's forward pass (one product, two with norms), reduced."""
    blocks = BlockPlan("vocabulary", plan.width, hidden.shape[0])
    loss, lse, correct, norm = _primal(hidden, weight, bias, labels, counts, options, segments, blocks, plan.norms)
    if plan.norms and segments is None:
        norm = example_norms(norm, hidden, bias is not None)
    if plan.norms and plan.clip:
        loss = clip_factors(norm, clip_norm) * loss
    return over(jnp.sum(loss), denominator), lse, correct, norm


reduced = jax.custom_vjp(_reduced_primal, nondiff_argnums=(9,))


def _reduced_bwd(plan: Plan, residuals: Any, cotangents: Any) -> tuple[Any, ...]:
    # As for ``fused``, the lse and correctness outputs carry no cotangent.
    d_hidden, d_weight, d_bias, denominator = residuals
    factor = over(cotangents[0].astype(denominator.dtype), denominator)
    return (
        (factor * d_hidden).astype(plan.hidden),
        (factor * d_weight).astype(plan.weight),
        None if d_bias is None else (factor * d_bias).astype(plan.bias),
        None,
        None,
        None,
        None,
        None,
        None,
    )


reduced.defvjp(_reduced_forward, _reduced_bwd)


def product_dtype(hidden: jax.Array, weight: jax.Array) -> Any:
    """The dtype of the matrix products' operands: the inputs' common dtype (bfloat16 stays bfloat16).

    Products accumulate in float32 whatever the operands; XLA-CPU multiplies float32 copies
    (``_backend.dot``).
    """
    return jnp.promote_types(hidden.dtype, weight.dtype)


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


# --- the block plan -------------------------------------------------------------------------------


class BlockPlan(NamedTuple):
    """How the fused cost walks the logits: a rule, and its block.

    Attributes:
      rule: ``"vocabulary"``: blocks of ``width`` classes over all rows, four matrix products
        (the per-example rule; with a reduction, it is reduced afterwards); ``"rows"``: blocks of
        ``height`` rows over all classes, three products, the gradients formed in the forward
        pass into a float32 ``(D, V)`` accumulator (reductions only).
      width: classes per block of the vocabulary rule (and of the forward pass without a gradient).
      height: rows per block of the rows rule.
      rounded: the vocabulary rule's blocks of the weight's gradient are each rounded to the
        weight's dtype as they are written (accelerators: no float32 ``(D, V)`` array is kept);
        False keeps them in the compute dtype and rounds the whole gradient once at the end
        (XLA-CPU, where writing a bfloat16 block into a bfloat16 array is slow: :func:`plan_blocks`).
        Either way each element is rounded once, from its complete float32 sum.
    """

    rule: str
    width: int
    height: int
    rounded: bool = True


ACCELERATOR_BLOCK_BYTES = {"none": 2 * 2**30, "reduced": 3 * 2**30}
"""On an accelerator, the most one block may take at its peak (:func:`plan_blocks`): its float32 logits and its seed.

Measured on one H200 (jax 0.11.2; value_and_grad of the mean for hidden and weight, bfloat16,
N=8192, D=4096, V=128256, against optax's unfused step at 73.4 ms; ``shared/gpu/sweep*.jsonl``):
the time falls with the number of blocks, whatever their size. Per example, 8 vocabulary blocks
ran at 1.41x, 4 at 1.50x and 2 at 1.74x; with a reduction, 126 row blocks (the CPU's plan) at
0.24x, 4 at 1.22x and 2 at 1.81x, and the rows rule keeps a float32 (D, V) accumulator
beside its block. So each block is as large as a budget allows, and the budgets are the
issue's memory targets for that size less the rest of the program: 2 GiB per example (3 blocks
of 42752 classes, 6 bytes a logit; target at most 3 GiB of temporaries), 3 GiB with a reduction
(2 blocks of 64128; target at most 4 GiB).
"""

ACCELERATOR_MEMORY_SHARE = 16
"""And at most this share of the device's memory (``memory_stats()["bytes_limit"]``): 1 GiB on a 16 GiB card."""


def device_memory() -> int | None:
    """The memory of this process's first device in bytes, or None where it reports none (XLA-CPU).

    ``jax.local_devices()[0].memory_stats()["bytes_limit"]``: what XLA's allocator may take
    there. A program compiled here for another machine's device (``jaxloss.tools.accelerators``)
    gets None, and with it the budgets of :data:`ACCELERATOR_BLOCK_BYTES` alone.
    """
    try:
        stats = jax.local_devices()[0].memory_stats()
    except Exception:  # a backend without the query
        return None
    limit = None if not stats else stats.get("bytes_limit")
    return int(limit) if limit else None


def planned(run: Callable[..., Any], operands: Any, plan: Callable[..., BlockPlan]) -> Any:
    """``run(operands, blocks)``, with each platform's plan in the program lowered for it.

    ``plan(platform=..., memory=...)`` gives the plans (:func:`plan_blocks`). Where XLA-CPU's
    and the accelerators' differ, ``jax.lax.platform_dependent`` holds both and the program
    lowered for a platform keeps its own (so a program compiled here for an H200 has the H200's
    blocks); under ``JAXLOSS_PORTABLE=1`` every platform gets the accelerators' plan.
    """
    on_cpu, on_accelerators = plan(platform="cpu"), plan(platform="accelerator", memory=device_memory())
    if _backend.PORTABLE or on_cpu == on_accelerators:
        return run(operands, on_accelerators)
    return jax.lax.platform_dependent(
        operands,
        cpu=functools.partial(run, blocks=on_cpu),
        default=functools.partial(run, blocks=on_accelerators),
    )


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def _even_columns(vocab: int, most: int) -> int:
    """The fewest blocks of at most ``most`` classes (a multiple of 128 where it can be), as even as they can be."""
    if most >= vocab:
        return vocab
    most = max(1, most)
    if most >= 128:
        most -= most % 128
    blocks = -(-vocab // most)
    width = -(-vocab // blocks)
    if most >= 128:
        width = min(_round_up(width, 128), most)
    return min(width, vocab)


def plan_blocks(
    rows: int,
    dim: int,
    vocab: int,
    *,
    operand: Any,
    compute: Any,
    reduction: str,
    platform: str,
    memory: int | None = None,
    block_size: int | None = None,
    length: int = 1,
) -> BlockPlan:
    """The fused cost's blocks, for one platform: the one function that sizes them.

    * ``block_size`` given: the same blocks on every platform. Classes per block, and with a
      reduction the rows rule with as many logits per block of rows.
    * XLA-CPU (``platform="cpu"``): blocks sized for its caches. About 4 MiB of logits per
      vocabulary block (:func:`block_columns`); with a reduction, the rows rule with 256 rows
      per block, at most 32 MiB (:func:`block_rows`, which has the measurements). The weight's
      gradient stays in the compute dtype until the last block (``rounded=False``): there,
      writing each bfloat16 block into a bfloat16 gradient made value_and_grad of the
      per-example cost 1.45x slower (N=2048, D=512, V=32768, bfloat16, jax 0.10.2, 2 cores:
      2312 ms against 1594 ms, optax 1620 ms; float32 alike either way).
    * An accelerator (any other platform): the fewest blocks within a budget
      (:data:`ACCELERATOR_BLOCK_BYTES`, and at most 1/:data:`ACCELERATOR_MEMORY_SHARE` of
      ``memory``). With a reduction, the rows rule in one block (no loop: three products) when
      its float32 logits, its seed in the operands' dtype and the float32 ``(D, V)`` gradient
      fit. Otherwise the vocabulary rule, whose blocks of the weight's gradient are each
      complete and rounded once to the weight's dtype, so that no ``(D, V)`` float32
      accumulator is kept: one block of every class when its logits and seed fit (its
      gradient is the result, written in the weight's dtype), else blocks within the budget
      for a block's peak in the loop: its logits and seed, or its seed and its float32 product
      for the weight's gradient (``D`` by the block), which XLA-GPU writes out before it is
      rounded into the gradient, whichever is larger. Compiled for an H200 (bfloat16, the
      per-example cost, jax 0.10.2): N=2048, D=4096, V=128256 in 1, 2 and 3 blocks held 0.49,
      1.25 and 0.85 GiB; N=4096, D=8192, V=256000 in 3, 4 and 5 blocks 4.81, 2.57 and
      2.08 GiB, optax 3.91 GiB.

    Args:
      rows: examples N.
      dim: hidden width D.
      vocab: classes V (on this device).
      operand: the matrix products' operand dtype (``product_dtype``).
      compute: the compute dtype (float32, or float64).
      reduction: ``"none"``, ``"mean"`` or ``"sum"``.
      platform: ``"cpu"``, or an accelerator's platform (``"cuda"``, ``"rocm"``, ``"tpu"``).
      memory: the device's memory in bytes (:func:`device_memory`), or None.
      block_size: the caller's override, or None.
      length: tokens per sequence that a block of rows must hold whole (``segment_ids``): the
        rows rule's blocks are a multiple of it, and where not one sequence fits, the vocabulary
        rule serves the reduction.

    Returns:
      A :class:`BlockPlan`.

    Examples:
      >>> import jax.numpy as jnp
      >>> from jaxloss._linear import plan_blocks
      >>> plan_blocks(8192, 4096, 128256, operand=jnp.bfloat16, compute=jnp.float32,
      ...             reduction="mean", platform="cuda")
      BlockPlan(rule='vocabulary', width=64128, height=8192, rounded=True)
    """
    itemsize = jnp.dtype(compute).itemsize
    reduced = reduction != "none"
    if block_size is not None or platform == "cpu":
        width = block_columns(rows, vocab, itemsize, block_size)
        rounded = platform != "cpu"
        height = block_rows(rows, vocab, itemsize, block_size)
        height -= height % length
        if not reduced or not height:
            return BlockPlan("vocabulary", width, rows, rounded)
        return BlockPlan("rows", width, height, rounded)
    budget = ACCELERATOR_BLOCK_BYTES["reduced" if reduced else "none"]
    if memory:
        budget = min(budget, memory // ACCELERATOR_MEMORY_SHARE)
    seed = jnp.dtype(operand).itemsize
    if reduced and rows * vocab * (itemsize + seed) + dim * vocab * itemsize <= budget:
        return BlockPlan("rows", vocab, rows)
    if rows * vocab * (itemsize + seed) <= budget:
        # One block, no loop: its weight's gradient is the result, which XLA-GPU writes from the
        # product in the weight's dtype.
        return BlockPlan("vocabulary", vocab, rows)
    # In a loop, a block's peak, per class: its logits and its seed, or its seed and its column
    # of the weight's gradient (the float32 product, written out before it is rounded into
    # the gradient).
    per_class = max(rows * (itemsize + seed), rows * seed + dim * itemsize)
    width = _even_columns(vocab, budget // per_class)
    return BlockPlan("vocabulary", width, rows)


# --- the public cost ----------------------------------------------------------------------------


def validate(
    hidden: jax.typing.ArrayLike,
    weight: jax.typing.ArrayLike,
    labels: jax.typing.ArrayLike,
    bias: jax.typing.ArrayLike | None,
    where: jax.typing.ArrayLike | None,
    block_size: int | None,
) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array | None, jax.Array | None]:
    """Checks the shapes and dtypes; returns the arrays (labels broadcast to the batch shape)."""
    h = _checks.as_array(hidden, "hidden")
    _checks.require_floating(h, "hidden")
    w = _checks.as_array(weight, "weight")
    _checks.require_floating(w, "weight")
    if h.ndim < 1:
        raise ValueError(f"`hidden` must have a feature axis, got shape {h.shape}.")
    if w.ndim != 2 or w.shape[0] != h.shape[-1]:
        raise ValueError(f"`weight` must have shape (D, V) with D = {h.shape[-1]} (from `hidden`), got {w.shape}.")
    _checks.require_classes(w, (1,), "weight")
    classes = _checks.class_ids(labels)
    batch = h.shape[:-1]
    try:
        classes = jnp.broadcast_to(classes, batch)
    except ValueError:
        raise ValueError(f"`labels` with shape {classes.shape} must broadcast to the batch shape {batch}.") from None
    b = None
    if bias is not None:
        b = _checks.as_array(bias, "bias")
        _checks.require_floating(b, "bias")
        if b.shape != (w.shape[1],):
            raise ValueError(f"`bias` must have shape ({w.shape[1]},), got {b.shape}.")
    mask = None
    if where is not None:
        mask = _checks.boolean_mask(where)
        try:
            mask = jnp.broadcast_to(mask, batch)
        except ValueError:
            raise ValueError(f"`where` with shape {mask.shape} must broadcast to the batch shape {batch}.") from None
    if block_size is not None:
        _checks.require_python_int(block_size, "block_size")
        if block_size < 1:
            raise ValueError(f"`block_size` must be positive, got {block_size}.")
    return h, w, classes, b, mask


def class_options(
    compute: Any,
    classes: int,
    *,
    label_smoothing: float | jax.typing.ArrayLike,
    weights: jax.typing.ArrayLike | None,
    z_loss: float | jax.typing.ArrayLike,
    soft_cap: float | jax.typing.ArrayLike | None,
) -> _options.SoftmaxOptions | None:
    """The softmax options, checked against one row of ``classes`` logits (``weights``: shape ``(classes,)``)."""
    probe = jnp.zeros((1, classes), compute)
    return _options.softmax_options(
        probe, (1,), label_smoothing=label_smoothing, weights=weights, z_loss=z_loss, soft_cap=soft_cap
    )


def counted_rows(classes: jax.Array, mask: jax.Array | None, ignore_index: int | None) -> tuple[jax.Array, jax.Array]:
    """Which rows count (kept by ``where``, label not ``ignore_index``), and labels that are valid where they do not.

    A row that does not count has its label replaced by 0, so that its (unused) statistics are
    finite and its zero cotangent gives a zero gradient, not ``0 * NaN``.
    """
    counts = jnp.ones(classes.shape, bool) if mask is None else mask
    if ignore_index is not None:
        _checks.require_label_value(ignore_index, classes, "ignore_index")
        counts = counts & (classes != ignore_index)
    return counts, jnp.where(counts, classes, 0)


class TokenStats(NamedTuple):
    """What ``linear_cross_entropy(..., return_stats=True)`` returns beside the loss, per example.

    Attributes:
      lse: :math:`\\operatorname{lse}_j z_j`, the log-sum-exp of the logits (soft-capped where
        ``soft_cap`` is set), float32 (float64 for float64 inputs): what a z-loss penalises.
      correct: bool, True where the label's logit is the largest (the arg-max, ties included)
        and the example counts (``where``, ``ignore_index``): the token accuracy is
        ``correct.sum() / counted``.
      grad_norm: the Frobenius norm of each example's gradient with respect to the output
        layer's parameters (weight, and bias where given):
        :math:`\\lVert \\partial\\ell_n/\\partial z_n \\rVert_2 \\sqrt{\\lVert h_n \\rVert^2 + [b]}`,
        the seed's norm from the same statistics (``jaxloss.grad_norms``'s, with the cost's
        options), 0 where the example does not count; float32 (float64 for float64 inputs).
        With ``segment_ids``, each token holds the norm of its segment's summed gradient.

    None carries a gradient (``stop_gradient``); penalise the lse with ``z_loss=``.
    """

    lse: jax.Array
    correct: jax.Array
    grad_norm: jax.Array | None = None


REDUCTIONS = ("none", "mean", "sum")


def linear_cross_entropy(
    hidden: jax.typing.ArrayLike,
    weight: jax.typing.ArrayLike,
    labels: jax.typing.ArrayLike,
    *,
    bias: jax.typing.ArrayLike | None = None,
    where: jax.typing.ArrayLike | None = None,
    block_size: int | None = None,
    label_smoothing: float | jax.typing.ArrayLike = 0.0,
    weights: jax.typing.ArrayLike | None = None,
    ignore_index: int | None = None,
    z_loss: float | jax.typing.ArrayLike = 0.0,
    soft_cap: float | jax.typing.ArrayLike | None = None,
    reduction: str = "none",
    return_stats: bool = False,
    clip_norm: float | jax.typing.ArrayLike | None = None,
    segment_ids: jax.typing.ArrayLike | None = None,
) -> Any:
    """Softmax cross-entropy of the logits ``hidden @ weight + bias``, without storing the logits.

    .. math::
      \\ell_n = \\operatorname{logsumexp}_j (h_n W + b)_j - (h_n W + b)_{l_n},
      \\qquad \\frac{\\partial \\ell}{\\partial z} = \\operatorname{softmax}(z) - \\operatorname{onehot}(l)

    Equal to ``softmax_cross_entropy_with_integer_labels(hidden @ weight + bias, labels)``, but
    the logits are computed a block at a time and never stored: memory is O(block + D·V)
    instead of O(N·V).

    * ``reduction="none"`` (the default): per-example losses, exact for any cotangent. The
      forward pass keeps O(N) statistics per row (an online logsumexp over blocks of
      ``block_size`` classes); the backward pass recomputes each block and forms the seed there:
      four matrix products.
    * ``reduction="mean"`` or ``"sum"``: a scalar, whose cotangent is one number, so on the CPU
      the forward pass forms the gradients as it goes, a block of rows at a time, and the
      backward pass only scales them: three matrix products, the unfused cost's count. On an
      accelerator the blocks are planned for its memory (:func:`plan_blocks`): one block of
      rows where the logits fit, otherwise the per-example rule in a few large blocks of
      classes, which keeps no float32 copy of the weight's gradient. ``"mean"`` divides by the
      weight of the examples that count, torch's ``reduction="mean"``: their number, or with
      ``weights`` the sum of their labels' weights; it is 0 when nothing counts. It equals
      ``jaxloss.mean(losses, where=counted, weights=weights[labels])``.

    The products take the inputs' dtype (bfloat16 stays bfloat16) and accumulate in float32;
    the logsumexp, the softmax, the seed and the weight gradient's accumulator are float32; the
    gradients come back in the inputs' dtypes.

    Args:
      hidden: floating hidden states, shape ``(..., D)``.
      weight: floating output weight, shape ``(D, V)``.
      labels: integer class ids with the batch shape ``hidden.shape[:-1]``.
      bias: optional floating bias of shape ``(V,)``.
      where: optional boolean mask with the batch shape: dropped examples cost 0 and get a zero
        gradient.
      block_size: classes per block, on every platform; with a reduction, a block of rows holds
        as many logits. By default the blocks are planned for the platform the program is
        compiled for (:func:`plan_blocks`): on the CPU about 4 MiB of float32 logits, a
        multiple of 128 (with a reduction 256 rows, at most 32 MiB); on an accelerator the
        fewest even blocks within 2 GiB (3 GiB with a reduction) and 1/16 of its memory.
      label_smoothing, weights, ignore_index, z_loss, soft_cap: the options of
        ``softmax_cross_entropy_with_integer_labels``; ``weights`` has shape ``(V,)``.
      reduction: ``"none"``, ``"mean"`` or ``"sum"``.
      return_stats: also return a :class:`TokenStats` of per-example log-sum-exp,
        correctness and gradient norm, computed from the same statistics (the logits are still
        never stored). The norms cost no matrix product more with the rows rule, and one (a
        recomputation of the logits, block by block) with the vocabulary rule.
      clip_norm: ``C > 0``, with ``reduction="mean"`` or ``"sum"``: the loss becomes
        :math:`\\sum_n c_n \\ell_n` (over the same denominator), with
        :math:`c_n = \\min(1, C/\\lVert \\nabla_n \\rVert)` for the norm of example n's gradient
        with respect to (weight, bias) (``TokenStats.grad_norm``), held constant: its gradient
        is the sum of the per-example gradients clipped to norm C, DP-SGD's clipping, formed
        without per-example gradients. It clips the output layer only: differential privacy
        needs every trained layer clipped and noise added, which this does not do (head-only
        private fine-tuning trains this layer alone). The gradient for ``hidden`` is that of
        the same weighted loss.
      segment_ids: optional integer ids with the batch shape, for the norms and ``clip_norm``:
        the tokens of one sequence (the last batch axis, length T) that share an id are one
        example, whose gradient is the sum of theirs; ids in different sequences are different
        examples. Its norm is :math:`\\lVert \\sum_t h_t g_t^\\top \\rVert_F` (and the bias's
        :math:`\\lVert \\sum_t g_t \\rVert`), from
        :math:`\\sum_{t,u} (h_t \\cdot h_u + [b])(g_t \\cdot g_u)` with the seeds' dot products
        formed block by block over the vocabulary: a T x T product per sequence and block,
        O(N T V) multiply-adds more against the step's O(N D V) (8% at T=128, D=512). Every
        token of an example holds its norm in ``TokenStats.grad_norm`` and is clipped by its
        factor; tokens that do not count (``where``, ``ignore_index``) add nothing. The sum
        may cancel: its rounding is relative to :math:`\\sum_{t,u} |h_t \\cdot h_u + [b]|\\,|g_t \\cdot g_u|`.
        ``"mean"`` still divides by the tokens' weight.

    Returns:
      The loss of each example with the batch shape (``reduction="none"``), or a scalar; in
      float32 (float64 for float64 inputs). With ``return_stats``, ``(loss, TokenStats)``.

    Examples:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> hidden, weight = jnp.ones((2, 3)), jnp.zeros((3, 4))
      >>> print(jaxloss.linear_cross_entropy(hidden, weight, jnp.array([0, 3])))  # log 4 each
      [1.3862944 1.3862944]
      >>> loss, stats = jaxloss.linear_cross_entropy(
      ...     hidden, weight, jnp.array([0, 3]), reduction="mean", return_stats=True)
      >>> print(loss, stats.lse, stats.correct)  # every class ties for the arg-max
      1.3862944 [1.3862944 1.3862944] [ True  True]
    """
    if reduction not in REDUCTIONS:
        raise ValueError(f"`reduction` must be one of {REDUCTIONS}, got {reduction!r}.")
    if not isinstance(return_stats, bool):
        raise TypeError(f"`return_stats` must be a bool, got {return_stats!r}.")
    if clip_norm is not None and reduction == "none":
        raise ValueError('`clip_norm` clips the summed gradient: it needs reduction="mean" or "sum".')
    h, w, classes, b, mask = validate(hidden, weight, labels, bias, where, block_size)
    compute = compute_dtype(h, w)
    clip = jnp.ones((), compute) if clip_norm is None else clip_value(clip_norm, compute)
    norms = return_stats or clip_norm is not None
    segments = segment_array(segment_ids, h.shape[:-1], norms)
    vocab = w.shape[1]
    options = class_options(
        compute, vocab, label_smoothing=label_smoothing, weights=weights, z_loss=z_loss, soft_cap=soft_cap
    )
    batch = h.shape[:-1]
    rows = math.prod(batch)
    counts, classes = counted_rows(classes, mask, ignore_index)
    flat_h = h.reshape(rows, h.shape[-1])
    flat_labels, flat_counts = classes.reshape(rows), counts.reshape(rows)
    denominator = jnp.ones((), compute)
    if reduction == "mean":
        denominator = example_weight(flat_labels, flat_counts, options, compute)
    plan = functools.partial(
        plan_blocks,
        rows,
        h.shape[-1],
        vocab,
        operand=product_dtype(h, w),
        compute=compute,
        reduction=reduction,
        block_size=block_size,
        length=1 if segments is None else segments.shape[1],
    )

    def blocked(operands: tuple[Any, ...], blocks: BlockPlan) -> tuple[jax.Array, ...]:
        hidden_, weight_, bias_, labels_, counts_, options_, segments_, denominator_, clip_ = operands
        if blocks.rule == "rows":
            dtypes = (h.dtype, w.dtype, None if b is None else b.dtype)
            steps = Plan(blocks.height, blocks.width, *dtypes, norms, clip_norm is not None)
            return reduced(hidden_, weight_, bias_, labels_, counts_, options_, segments_, denominator_, clip_, steps)
        losses, lse, correct, norm = fused(
            hidden_, weight_, bias_, labels_, counts_, options_, segments_, blocks, norms
        )
        if norms and segments_ is None:
            norm = example_norms(jax.lax.stop_gradient(norm), jax.lax.stop_gradient(hidden_), bias_ is not None)
        if clip_norm is not None:
            losses = jax.lax.stop_gradient(clip_factors(norm, clip_)) * losses
        if reduction == "none":
            return losses, lse, correct, norm
        return over(jnp.sum(losses), denominator_), lse, correct, norm

    operands = (flat_h, w, b, flat_labels, flat_counts, options, segments, denominator, clip)
    loss, lse, correct, norm = planned(blocked, operands, plan)
    if reduction == "none":
        loss = loss.reshape(batch)
    return with_stats(loss, lse, correct, batch, return_stats, norm if norms else None)


def segment_array(segment_ids: jax.typing.ArrayLike | None, batch: tuple[int, ...], norms: bool) -> jax.Array | None:
    """``segment_ids`` checked and broadcast to the batch shape, as (sequences, T) int32; or None."""
    if segment_ids is None:
        return None
    if not norms:
        raise ValueError("`segment_ids` groups tokens for the gradient norms: it needs return_stats=True or clip_norm.")
    if isinstance(segment_ids, (np.ndarray, np.generic, list, tuple)):
        host = np.asarray(segment_ids)
        if host.dtype.kind in "iu":  # only equality matters: 64-bit ids renumbered, never wrapped into each other
            segment_ids = np.unique(host, return_inverse=True)[1].reshape(host.shape).astype(np.int32)
    ids = _checks.as_array(segment_ids, "segment_ids")
    _checks.require_integer(ids, "segment_ids")
    if not batch:
        raise ValueError("`segment_ids` needs a batch axis of tokens: `hidden` has shape (D,).")
    try:
        ids = jnp.broadcast_to(ids, batch)
    except ValueError:
        raise ValueError(f"`segment_ids` with shape {ids.shape} must broadcast to the batch shape {batch}.") from None
    return ids.reshape(-1, batch[-1])


def clip_value(clip_norm: Any, compute: Any) -> jax.Array:
    """``clip_norm`` as a real scalar of the compute dtype: a concrete one must be positive, and a
    traced one that is not makes the loss NaN (the options' convention)."""
    value = _checks.as_array(clip_norm, "clip_norm")
    _checks.require_real(value, "clip_norm")
    if value.ndim:
        raise ValueError(f"`clip_norm` must be a scalar, got shape {value.shape}.")
    value = value.astype(compute)
    try:
        positive = bool(np.asarray(value > 0))
    except jax.errors.TracerArrayConversionError:
        return jnp.where(value > 0, value, jnp.nan)
    if not positive:
        raise ValueError(f"`clip_norm` must be positive, got {clip_norm!r}.")
    return value


def with_stats(
    loss: jax.Array,
    lse: jax.Array,
    correct: jax.Array,
    batch: tuple[int, ...],
    wanted: bool,
    grad_norm: jax.Array | None = None,
) -> Any:
    """``loss``, or ``(loss, TokenStats)`` with the rows' statistics in the batch shape, behind ``stop_gradient``."""
    if not wanted:
        return loss
    norm = None if grad_norm is None else jax.lax.stop_gradient(grad_norm).reshape(batch)
    return loss, TokenStats(
        jax.lax.stop_gradient(lse).reshape(batch), (jax.lax.stop_gradient(correct) > 0).reshape(batch), norm
    )


def over(value: jax.Array, denominator: jax.Array) -> jax.Array:
    """``value / denominator``, one rounding, and 0 where the denominator is 0 (``jaxloss.mean``'s empty mean)."""
    empty = denominator == 0
    return jnp.where(empty, 0.0, value / jnp.where(empty, 1.0, denominator))


def example_weight(
    labels: jax.Array, counts: jax.Array, options: _options.SoftmaxOptions | None, compute: Any
) -> jax.Array:
    """The denominator of ``reduction="mean"``: the number of counted examples, or the sum of their labels' weights."""
    if options is None or options.weights is None:
        return jnp.sum(counts, dtype=compute)
    label_weights = jnp.take(options.weights[0], labels)
    return jnp.sum(jnp.where(counts, label_weights, 0.0))
