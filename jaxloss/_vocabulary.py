"""The fused output layer's per-example rule: blocks of classes over all rows, four matrix products.

Forward, one pass over the blocks: each block's label statistics (``_stats.label_stats``: per
row :math:`M`, :math:`R = \\sum_{j \\ne l} e^{z_j - M}` with the label left out by its index,
and :math:`z_l`) are joined to the running ones by ``_stats.merge`` (an online maximum), and the
loss is formed from them by ``_stats.label_loss``, as for the full logits.

Backward, per block: the closed-form seed :math:`g = p - \\text{onehot}` (``_seeds``, the same
function as for the full logits; :math:`p_l - 1 = -R/S`, no cancellation), then
:math:`\\bar h \\mathrel{+}= g W_B^\\top`, :math:`\\bar W_B = h^\\top g` and :math:`\\bar b_B = \\sum_n g`.
The residuals are the inputs and O(N) statistics. Products accumulate in float32 (float64 for
float64 inputs), and each block of :math:`\\bar W` is one product over all N rows, never a
running sum in low precision, rounded once to the weight's dtype.

The block functions here (statistics, seeds, norms, the backward blocks) also serve
:mod:`jaxloss.sharded`, over each device's classes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from jaxloss import _backend, _checks, _mesh, _norms, _options, _seeds, _stats
from jaxloss._mesh import summed_like
from jaxloss._plan import BlockPlan


def _logits_block(hidden: jax.Array, weight: jax.Array, bias: jax.Array | None, start: Any, width: int) -> jax.Array:
    """:math:`h W_B + b_B`, the operands in ``product_dtype``, accumulated in the compute dtype.

    ``hidden`` is already in the operands' dtype; the weight's columns are cast a block at a time.
    """
    compute = _checks.compute_dtype(hidden, weight)
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
    if full and any(_mesh.varying_axes(a) for a in operands):
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
    compute = _checks.compute_dtype(hidden, weight)
    operand = product_dtype(hidden, weight)
    hidden_p = hidden.astype(operand)

    # Each block of the weight's gradient is complete (one float32 product over all rows), so it
    # is rounded once, to the weight's dtype, as it is written: no (D, V) float32 array is kept.
    # Inside ``shard_map``, a weight replicated over an axis the rows are split over gets its
    # gradient summed over that axis afterwards (``summed_like``): those blocks stay float32.
    summed = _mesh.varying_axes(hidden) | _mesh.varying_axes(labels) | _mesh.varying_axes(cotangent)
    accumulate = compute if summed - _mesh.varying_axes(weight) or not blocks.rounded else weight.dtype

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


def product_dtype(hidden: jax.Array, weight: jax.Array) -> Any:
    """The dtype of the matrix products' operands: the inputs' common dtype (bfloat16 stays bfloat16).

    Products accumulate in float32 whatever the operands; XLA-CPU multiplies float32 copies
    (``_backend.dot``).
    """
    return jnp.promote_types(hidden.dtype, weight.dtype)
