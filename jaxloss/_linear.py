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
float64 inputs), and each block of :math:`\\bar W` is one product over all N rows, never a running sum in low precision.

With the training options (``_options``) the statistics and the seed are those of the full
logits with the same options.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from jaxloss import _checks, _options, _seeds, _stats

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


def backward_blocks(
    hidden: jax.Array,
    weight: jax.Array,
    bias: jax.Array | None,
    labels: jax.Array,
    options: _options.SoftmaxOptions | None,
    totals: _stats.LabelTotals,
    cotangent: jax.Array,
    width: int,
) -> tuple[jax.Array, jax.Array, jax.Array | None]:
    """Gradients for ``hidden`` (in the compute dtype), ``weight`` and ``bias`` (in their dtypes).

    ``cotangent`` is the per-row cotangent, shape (rows, 1), 0 for rows that do not count;
    ``labels`` (rows, 1) count from the first column of ``weight``; ``totals`` are over the
    whole vocabulary.
    """
    rows, vocab = hidden.shape[0], weight.shape[1]
    compute = compute_dtype(hidden, weight)
    hidden_c = hidden.astype(compute)
    cap = None if options is None else options.cap

    def body(carry: Any, start: Any, size: int) -> Any:
        d_hidden, d_weight, d_bias = carry
        raw = _logits_block(hidden, weight, bias, start, size)
        grad = _seeds.softmax_cross_entropy_with_integer_labels_grad_from_totals(
            raw,
            _options.soft_cap_classes(raw, cap),
            labels - start,
            totals,
            options,
            1,
            class_weights=_block_weights(options, start, size),
        )
        grad = cotangent * grad
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
    options: _options.SoftmaxOptions | None,
    width: int,
) -> tuple[jax.Array, Any]:
    stats = local_stats(hidden, weight, bias, labels[:, None], options, width)
    loss, totals = _stats.label_loss(stats, options)
    return jnp.where(counts, loss[:, 0], 0.0), (hidden, weight, bias, labels, counts, options, totals)


def _primal(
    hidden: jax.Array,
    weight: jax.Array,
    bias: jax.Array | None,
    labels: jax.Array,
    counts: jax.Array,
    options: _options.SoftmaxOptions | None,
    width: int,
) -> jax.Array:
    """Per-row losses of ``hidden @ weight + bias``; ``width`` classes per block (static)."""
    return _forward(hidden, weight, bias, labels, counts, options, width)[0]


fused = jax.custom_vjp(_primal, nondiff_argnums=(6,))


def _fused_bwd(width: int, residuals: Any, cotangent: jax.Array) -> tuple[Any, ...]:
    hidden, weight, bias, labels, counts, options, totals = residuals
    row_cotangent = jnp.where(counts, cotangent, 0.0).astype(totals.max.dtype)[:, None]
    d_hidden, d_weight, d_bias = backward_blocks(
        hidden, weight, bias, labels[:, None], options, totals, row_cotangent, width
    )
    return (
        summed_like(d_hidden.astype(hidden.dtype), hidden),
        summed_like(d_weight, weight),
        None if bias is None or d_bias is None else summed_like(d_bias, bias),
        None,
        None,
        None,
    )


fused.defvjp(_forward, _fused_bwd)


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
) -> jax.Array:
    """Softmax cross-entropy of the logits ``hidden @ weight + bias``, without storing the logits.

    .. math::
      \\ell_n = \\operatorname{logsumexp}_j (h_n W + b)_j - (h_n W + b)_{l_n},
      \\qquad \\frac{\\partial \\ell}{\\partial z} = \\operatorname{softmax}(z) - \\operatorname{onehot}(l)

    Equal to ``softmax_cross_entropy_with_integer_labels(hidden @ weight + bias, labels)``, but
    the logits are computed ``block_size`` classes at a time: the forward pass keeps O(N)
    statistics per row (an online logsumexp), and the backward pass recomputes each block and
    forms the closed-form seed there, so memory is O(N·B + D·V) instead of O(N·V). Gradients
    are given for ``hidden``, ``weight`` and ``bias`` and honour the cotangent of each loss, so
    the losses may be reduced in any way. float16 and bfloat16 inputs are multiplied with
    float32 accumulation, and the logsumexp, the softmax and every gradient are float32; the
    gradients come back in the inputs' dtypes.

    Args:
      hidden: floating hidden states, shape ``(..., D)``.
      weight: floating output weight, shape ``(D, V)``.
      labels: integer class ids with the batch shape ``hidden.shape[:-1]``.
      bias: optional floating bias of shape ``(V,)``.
      where: optional boolean mask with the batch shape: dropped examples cost 0 and get a zero
        gradient.
      block_size: classes per block; by default about 4 MiB of float32 logits, a multiple of 128.
      label_smoothing, weights, ignore_index, z_loss, soft_cap: the options of
        ``softmax_cross_entropy_with_integer_labels``; ``weights`` has shape ``(V,)``.

    Returns:
      The loss of each example, with the batch shape, in float32 (float64 for float64 inputs).

    Examples:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> hidden, weight = jnp.ones((2, 3)), jnp.zeros((3, 4))
      >>> print(jaxloss.linear_cross_entropy(hidden, weight, jnp.array([0, 3])))  # log 4 each
      [1.3862944 1.3862944]
    """
    h, w, classes, b, mask = validate(hidden, weight, labels, bias, where, block_size)
    compute = compute_dtype(h, w)
    vocab = w.shape[1]
    options = class_options(
        compute, vocab, label_smoothing=label_smoothing, weights=weights, z_loss=z_loss, soft_cap=soft_cap
    )
    batch = h.shape[:-1]
    rows = math.prod(batch)
    counts, classes = counted_rows(classes, mask, ignore_index)
    flat_h = h.reshape(rows, h.shape[-1])
    width = block_columns(rows, vocab, jnp.dtype(compute).itemsize, block_size)
    loss = fused(flat_h, w, b, classes.reshape(rows), counts.reshape(rows), options, width)
    return loss.reshape(batch)
