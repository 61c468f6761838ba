"""Vocabulary-parallel costs, for use inside ``jax.shard_map`` with the classes split over a mesh axis.

Each device holds a contiguous shard of the vocabulary: logits of shape ``(..., V/k)`` (or a
weight of shape ``(D, V/k)``), shard ``i`` holding classes ``[i V/k, (i + 1) V/k)``. Labels
are global class ids, the same on every device. Per token, the forward pass communicates
O(1) numbers and never the logits:

1. ``pmax`` of the local maximum :math:`m_i`, giving :math:`M`;
2. one ``psum`` of two numbers: the local :math:`R_i e^{m_i - M}` (the sum of exponentials,
   the label left out) and the label's logit (0 on the shards that do not hold it). Whether the
   label is a class at all is known from the global label on every device.

Three floats per token, Megatron-LM's count. The training options add only what they need to
the same ``psum``: the label's weight (``weights``); the count of classes in play and
:math:`Q = \\sum_j w_j (M - z_j)` (``label_smoothing``, exact over the whole vocabulary; with
``weights``, also :math:`\\sum_j w_j`). ``z_loss``, ``soft_cap`` and ``ignore_index`` add nothing.

From these the loss is formed as on one device, :math:`(M - z_l) + \\log1p(T)`, with the same
exactness (``_stats``). The backward pass needs no communication for the logits:
each device forms the seed :math:`e^{z - M}/S - \\text{onehot}` of its own classes. In
``linear_cross_entropy`` the gradient of the (replicated) hidden states is a sum over the
shards, one ``psum`` of an ``(N, D)`` array, as in Megatron-LM.

Losses come back on every device of the axis, identical. The engine is JAX's own:
``jax.lax.pmax``, ``psum`` and ``axis_index``.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import jax
import jax.numpy as jnp

from jaxloss import _checks, _linear, _mesh, _norms, _options, _plan, _rows, _seeds, _stats, _vocabulary

__all__ = ["linear_cross_entropy", "softmax_cross_entropy_with_integer_labels"]


def _combine(stats: _stats.LabelStats, in_range: jax.Array, axis_name: Any) -> _stats.LabelStats:
    """The statistics of the whole vocabulary from each shard's: one ``pmax``, then one ``psum`` of the rest.

    Per row, the ``psum`` carries :math:`R_i e^{m_i - M}` and the label's logit (0 on the
    shards that do not hold it), plus what the options need: the label's weight (``weights``),
    and the count of classes in play and :math:`Q` (``label_smoothing``; with ``weights``, also
    their sum). Whether the label is a class at all is known on every device from the global
    label (``in_range``), so it is not sent; without class weights the weight in play is the
    count in play, so it is not sent twice.
    """
    row_max = jax.lax.pmax(stats.max, axis_name)
    unweighted = stats.label_weight is None
    local = _stats.sums(_stats.relative_to(stats, row_max))._replace(has_label=None)
    if unweighted:
        local = local._replace(weight_in_play=None)
    leaves, tree = jax.tree.flatten(local)
    summed = jax.tree.unflatten(tree, list(jax.lax.psum(jnp.stack(leaves), axis_name)))
    summed = summed._replace(max=row_max, has_label=in_range.astype(row_max.dtype))
    if unweighted:
        summed = summed._replace(weight_in_play=summed.in_play)
    return summed


def _shard_offset(local_classes: int, axis_name: Any) -> jax.Array:
    return jax.lax.axis_index(axis_name) * local_classes


def _local_labels(labels: jax.Array, local_classes: int, axis_name: Any) -> tuple[jax.Array, jax.Array]:
    """The labels counted from this shard's first class, shape (rows, 1), and whether each is a class at all."""
    in_range = (labels >= 0) & (labels < local_classes * jax.lax.axis_size(axis_name))
    return (labels - _shard_offset(local_classes, axis_name))[:, None], in_range[:, None]


def _smoothing(options: _options.SoftmaxOptions | None) -> bool:
    return options is not None and options.smoothing is not None


def _cap(options: _options.SoftmaxOptions | None) -> jax.Array | None:
    return None if options is None else options.cap


def _class_weights(options: _options.SoftmaxOptions | None) -> jax.Array | None:
    return None if options is None else options.weights


# --- logits split over the vocabulary ------------------------------------------------------------


def _integer_forward(
    logits: jax.Array,
    labels: jax.Array,
    counts: jax.Array,
    options: _options.SoftmaxOptions | None,
    axis_name: Any,
) -> tuple[jax.Array, Any]:
    local, in_range = _local_labels(labels, logits.shape[1], axis_name)
    capped = _options.soft_cap_classes(logits, _cap(options))
    stats = _stats.label_stats(
        capped, local, 1, class_weights=_class_weights(options), smoothing=_smoothing(options), whole_row=False
    )
    loss, totals = _stats.label_loss(_combine(stats, in_range, axis_name), options)
    return jnp.where(counts, loss[:, 0], 0.0), (logits, local, counts, options, totals)


def _integer_primal(
    logits: jax.Array,
    labels: jax.Array,
    counts: jax.Array,
    options: _options.SoftmaxOptions | None,
    axis_name: Any,
) -> jax.Array:
    return _integer_forward(logits, labels, counts, options, axis_name)[0]


_integer = jax.custom_vjp(_integer_primal, nondiff_argnums=(4,))


def _integer_bwd(axis_name: Any, residuals: Any, cotangent: jax.Array) -> tuple[Any, None, None, None]:
    del axis_name  # no communication: each device's classes only
    logits, local, counts, options, totals = residuals
    capped = _options.soft_cap_classes(logits, _cap(options))
    grad = _seeds.softmax_cross_entropy_with_integer_labels_grad_from_totals(
        logits, capped, local, totals, options, 1, class_weights=_class_weights(options)
    )
    row_cotangent = jnp.where(counts, cotangent, 0.0)
    return row_cotangent[:, None] * grad, None, None, None


_integer.defvjp(_integer_forward, _integer_bwd)


def softmax_cross_entropy_with_integer_labels(
    logits: jax.typing.ArrayLike,
    labels: jax.typing.ArrayLike,
    *,
    axis_name: Any,
    where: jax.typing.ArrayLike | None = None,
    label_smoothing: float | jax.typing.ArrayLike = 0.0,
    weights: jax.typing.ArrayLike | None = None,
    ignore_index: int | None = None,
    z_loss: float | jax.typing.ArrayLike = 0.0,
    soft_cap: float | jax.typing.ArrayLike | None = None,
) -> jax.Array:
    """Softmax cross-entropy with integer labels, the classes split over the mesh axis ``axis_name``.

    .. math::
      \\ell = \\log \\sum_{k} S_k e^{M_k - M} - (z_l - M), \\qquad M = \\max_k M_k,
      \\qquad \\frac{\\partial \\ell}{\\partial z^{(k)}}
      = \\operatorname{softmax}(z)^{(k)} - \\operatorname{onehot}(l)^{(k)}

    where device :math:`k` holds the logits :math:`z^{(k)}`, their maximum :math:`M_k` and
    :math:`S_k = \\sum_{j \\in k} e^{z_j - M_k}` (the label's term is kept apart, as in the
    single-device cost, so a confident row keeps its digits).

    Call it inside ``shard_map`` with this device's shard of the logits, shape ``(..., V/k)`` on
    the last axis, and the global labels. It equals the single-device
    ``jaxloss.softmax_cross_entropy_with_integer_labels`` of the gathered logits, with the same
    options, in value and gradient, without gathering them: per token, one ``pmax`` and one
    ``psum`` of two numbers (more with options: see the table in the docs' "Beyond one device" page).

    Args:
      logits: this device's floating logits, classes on the last axis.
      labels: global integer class ids with the batch shape, the same on every device.
      axis_name: the mesh axis the vocabulary is split over.
      where: optional boolean mask with the batch shape: dropped examples cost 0 and get a
        zero gradient.
      label_smoothing, weights, ignore_index, z_loss, soft_cap: the options of
        ``jaxloss.softmax_cross_entropy_with_integer_labels``, with the same meaning over the
        whole vocabulary (label smoothing spreads over every class of every shard). ``weights``
        is this device's shard of the class weights, shape ``(V/k,)``.

    Returns:
      The loss of each example, identical on every device of the axis.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from jax.sharding import NamedSharding, PartitionSpec as P
      >>> import jaxloss
      >>> mesh = jax.make_mesh((1,), ("vocab",))
      >>> logits = jax.device_put(jnp.zeros((2, 4)), NamedSharding(mesh, P(None, "vocab")))
      >>> cost = jax.jit(jax.shard_map(
      ...     lambda z, y: jaxloss.sharded.softmax_cross_entropy_with_integer_labels(z, y, axis_name="vocab"),
      ...     mesh=mesh, in_specs=(P(None, "vocab"), P()), out_specs=P()))
      >>> print(cost(logits, jnp.array([0, 3])))
      [1.3862944 1.3862944]

    No forward mode: a ``custom_vjp`` rule (whose backward pass sends nothing), so ``jax.jvp``
    and ``jax.jacfwd`` raise.

    References:
      M. Shoeybi et al., "Megatron-LM: Training Multi-Billion Parameter Language Models Using
      Model Parallelism" (2019): the cross-entropy of a vocabulary split across devices, from
      each device's maximum and sum. J. Lalin, "Feedforward Neural Networks in Depth, Part 3:
      Cost Functions" (2021): dJ/dZ = A - Y.
    """
    z = _checks.as_array(logits, "logits")
    _checks.require_floating(z, "logits")
    classes = _checks.class_ids(labels)
    batch = z.shape[:-1]
    if classes.shape != batch:
        raise ValueError(f"`labels` must have the batch shape {batch} of `logits` {z.shape}, got {classes.shape}.")
    mask = None
    if where is not None:
        mask = _checks.boolean_mask(where)
        if mask.shape != batch:
            raise ValueError(f"`where` must have the batch shape {batch} of `logits` {z.shape}, got {mask.shape}.")
    compute = _checks.compute_dtype(z)
    options = _linear.class_options(
        compute, z.shape[-1], label_smoothing=label_smoothing, weights=weights, z_loss=z_loss, soft_cap=soft_cap
    )
    counts, classes = _linear.counted_rows(classes, mask, ignore_index)
    rows = math.prod(batch)
    z = z.astype(compute).reshape(rows, z.shape[-1])
    loss = _integer(z, classes.reshape(rows), counts.reshape(rows), options, axis_name)
    return loss.reshape(batch)


# --- the output layer split over the vocabulary --------------------------------------------------


def _linear_forward(
    hidden: jax.Array,
    weight: jax.Array,
    labels: jax.Array,
    counts: jax.Array,
    options: _options.SoftmaxOptions | None,
    segments: jax.Array | None,
    axis_name: Any,
    blocks: _plan.BlockPlan,
    norms: bool,
) -> tuple[tuple[jax.Array, ...], Any]:
    local, in_range = _local_labels(labels, weight.shape[1], axis_name)
    stats = _combine(_vocabulary.local_stats(hidden, weight, None, local, options, blocks.width), in_range, axis_name)
    loss, totals = _stats.label_loss(stats, options)
    norm = jnp.zeros_like(totals.lse[:, 0])
    if norms and segments is None:  # one pmax and one psum of a number per row more
        squares = _vocabulary.seed_squares(hidden, weight, None, local, counts, options, totals, blocks.width)
        norm = _norms.finished(_norms.joined(squares, axis_name))
    elif norms and segments is not None:  # and a psum of T x T numbers per sequence
        length = segments.shape[1]
        grams = _vocabulary.seed_grams(hidden, weight, None, local, counts, options, totals, blocks.width, length)
        norm = _vocabulary.grouped_norms(_norms.joined_grams(grams, axis_name), hidden, False, segments, counts)
    outputs = (jnp.where(counts, loss[:, 0], 0.0), *_vocabulary.token_stats(stats, totals, counts), norm)
    return outputs, (hidden, weight, local, counts, options, totals)


def _linear_primal(
    hidden: jax.Array,
    weight: jax.Array,
    labels: jax.Array,
    counts: jax.Array,
    options: _options.SoftmaxOptions | None,
    segments: jax.Array | None,
    axis_name: Any,
    blocks: _plan.BlockPlan,
    norms: bool,
) -> tuple[jax.Array, ...]:
    return _linear_forward(hidden, weight, labels, counts, options, segments, axis_name, blocks, norms)[0]


_linear_rule = jax.custom_vjp(_linear_primal, nondiff_argnums=(6, 7, 8))


def _linear_bwd(
    axis_name: Any, blocks: _plan.BlockPlan, norms: bool, residuals: Any, cotangents: Any
) -> tuple[Any, ...]:
    # The lse, correctness and norm outputs reach the caller behind stop_gradient: their cotangents are 0.
    del norms
    hidden, weight, local, counts, options, totals = residuals
    row_cotangent = jnp.where(counts, cotangents[0], 0.0).astype(totals.max.dtype)[:, None]
    d_hidden, d_weight, _ = _vocabulary.backward_blocks(
        hidden, weight, None, local, options, totals, row_cotangent, blocks
    )
    # The hidden states feed every shard of the vocabulary: their gradient is one psum over the
    # axis (and over any other axis they are replicated on, as the weight is over a data axis).
    d_hidden = _mesh.summed_like(d_hidden.astype(hidden.dtype), hidden)
    return d_hidden, _mesh.summed_like(d_weight, weight).astype(weight.dtype), None, None, None, None


_linear_rule.defvjp(_linear_forward, _linear_bwd)


def linear_cross_entropy(
    hidden: jax.typing.ArrayLike,
    weight: jax.typing.ArrayLike,
    labels: jax.typing.ArrayLike,
    *,
    axis_name: Any,
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
    """``jaxloss.linear_cross_entropy`` with the weight's columns split over the mesh axis ``axis_name``.

    Call it inside ``shard_map`` with the full hidden states ``(..., D)`` (replicated over the
    axis), this device's shard of the weight ``(D, V/k)`` and the global labels. The logits are
    computed block by block on each device and never stored or communicated: per token, one
    ``pmax`` and one ``psum`` of two numbers forward (more with options: see the table in the
    docs' "Beyond one device" page), and one ``psum`` of the hidden states' gradient, an ``(N, D)`` array, backward.

    Args:
      hidden: floating hidden states ``(..., D)``, the same on every device of the axis.
      weight: this device's floating weight shard ``(D, V/k)``.
      labels: global integer class ids with the batch shape.
      axis_name: the mesh axis the vocabulary is split over.
      where: optional boolean mask with the batch shape.
      block_size: classes per block on each device (default: planned for the platform, as for
        the per-example rule of ``jaxloss.linear_cross_entropy``).
      label_smoothing, weights, ignore_index, z_loss, soft_cap: the options of
        ``jaxloss.linear_cross_entropy``, with the same meaning over the whole vocabulary.
        ``weights`` is this device's shard of the class weights, shape ``(V/k,)``.
      reduction: ``"none"``, ``"mean"`` or ``"sum"``, as for ``jaxloss.linear_cross_entropy``:
        ``"mean"`` divides by the weight of the examples that count (their number, or with
        ``weights`` the sum of their labels' weights, one ``psum`` of N numbers more), 0 when
        nothing counts. Each device runs the per-example rule, then reduces.
      return_stats: also return a ``jaxloss.TokenStats`` of per-example log-sum-exp,
        correctness and gradient norm over the whole vocabulary, from the joined statistics.
        The norm (as ``jaxloss.linear_cross_entropy``'s, for this layer's whole weight) takes
        one more pass over each device's blocks and one ``pmax`` and one ``psum`` of a number
        per token; the lse and correctness send nothing more.
      clip_norm: as for ``jaxloss.linear_cross_entropy``: each example's loss weighted by
        :math:`\\min(1, C/\\lVert \\nabla_n \\rVert)`, the norm over the whole weight, so that
        the gradient is the clipped sum (the same communication as the norms).
      segment_ids: as for ``jaxloss.linear_cross_entropy``: tokens of one sequence with the
        same id are one example. Each device forms the seeds' T x T Gram matrices over its
        classes; joining them takes a ``pmax`` of a number per token and a ``psum`` of
        :math:`T^2` numbers per sequence (N T numbers in all), instead of N for the tokens' norms.

    Returns:
      The loss of each example (``reduction="none"``), or a scalar, identical on every device
      of the axis; with ``return_stats``, ``(loss, TokenStats)``.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from jax.sharding import NamedSharding, PartitionSpec as P
      >>> import jaxloss
      >>> mesh = jax.make_mesh((1,), ("vocab",))
      >>> weight = jax.device_put(jnp.zeros((3, 4)), NamedSharding(mesh, P(None, "vocab")))
      >>> cost = jax.jit(jax.shard_map(
      ...     lambda h, w, y: jaxloss.sharded.linear_cross_entropy(h, w, y, axis_name="vocab", z_loss=1e-4),
      ...     mesh=mesh, in_specs=(P(), P(None, "vocab"), P()), out_specs=P()))
      >>> print(cost(jnp.ones((2, 3)), weight, jnp.array([0, 3])))  # log 4 + 1e-4 (log 4)^2
      [1.3864865 1.3864865]

    No forward mode, as for ``jaxloss.linear_cross_entropy``: ``jax.jvp`` and ``jax.jacfwd``
    raise.

    References:
      M. Shoeybi et al., "Megatron-LM" (2019): the vocabulary split across devices. E. Wijmans
      et al., "Cut Your Losses in Large-Vocabulary Language Models" (2024): the logits a block
      at a time, never stored. X. Li et al., "Large Language Models Can Be Strong
      Differentially Private Learners" (2022): a sequence's gradient norm from Gram matrices.
    """
    if reduction not in _linear.REDUCTIONS:
        raise ValueError(f"`reduction` must be one of {_linear.REDUCTIONS}, got {reduction!r}.")
    if not isinstance(return_stats, bool):
        raise TypeError(f"`return_stats` must be a bool, got {return_stats!r}.")
    if clip_norm is not None and reduction == "none":
        raise ValueError('`clip_norm` clips the summed gradient: it needs reduction="mean" or "sum".')
    h, w, classes, _, mask = _linear.validate(hidden, weight, labels, None, where, block_size)
    batch = h.shape[:-1]
    rows = math.prod(batch)
    compute = _checks.compute_dtype(h, w)
    clip = None if clip_norm is None else _linear.clip_value(clip_norm, compute)
    norms = return_stats or clip is not None
    segments = _linear.segment_array(segment_ids, batch, norms)
    options = _linear.class_options(
        compute, w.shape[1], label_smoothing=label_smoothing, weights=weights, z_loss=z_loss, soft_cap=soft_cap
    )
    counts, classes = _linear.counted_rows(classes, mask, ignore_index)
    flat_classes, flat_counts = classes.reshape(rows), counts.reshape(rows)
    # The per-example rule on every platform: the blocks of its vocabulary from the plan.
    plan = functools.partial(
        _plan.plan_blocks,
        rows,
        h.shape[-1],
        w.shape[1],
        operand=_vocabulary.product_dtype(h, w),
        compute=compute,
        reduction="none",
        block_size=block_size,
    )

    def blocked(operands: tuple[Any, ...], blocks: _plan.BlockPlan) -> tuple[jax.Array, ...]:
        return _linear_rule(*operands, axis_name, blocks, norms)

    flat_h = h.reshape(rows, h.shape[-1])
    operands = (flat_h, w, flat_classes, flat_counts, options, segments)
    loss, lse, correct, norm = _plan.planned(blocked, operands, plan)
    if norms and segments is None:
        norm = _vocabulary.example_norms(jax.lax.stop_gradient(norm), jax.lax.stop_gradient(flat_h), False)
    if clip is not None:
        loss = jax.lax.stop_gradient(_vocabulary.clip_factors(norm, clip)) * loss
    if reduction == "none":
        loss = loss.reshape(batch)
    else:
        denominator = jnp.ones((), compute)
        if reduction == "mean":
            denominator = _example_weight(flat_classes, flat_counts, options, compute, w.shape[1], axis_name)
        loss = _rows.over(jnp.sum(loss), denominator)
    return _linear.with_stats(loss, lse, correct, batch, return_stats, norm if norms else None)


def _example_weight(
    labels: jax.Array,
    counts: jax.Array,
    options: _options.SoftmaxOptions | None,
    compute: Any,
    local_classes: int,
    axis_name: Any,
) -> jax.Array:
    """The denominator of ``reduction="mean"`` over the whole vocabulary: ``_linear.example_weight``'s.

    With class weights, each label's weight lives on the device that holds its class: one
    ``psum`` of the rows' weights (0 elsewhere) gathers them, and they are summed in the same
    order as on one device.
    """
    if options is None or options.weights is None:
        return jnp.sum(counts, dtype=compute)
    local, in_range = _local_labels(labels, local_classes, axis_name)
    mine = in_range[:, 0] & (local[:, 0] >= 0) & (local[:, 0] < local_classes)
    weight = jnp.take(options.weights[0], jnp.clip(local[:, 0], 0, local_classes - 1))
    label_weights = jax.lax.psum(jnp.where(mine, weight, 0.0), axis_name)
    return jnp.sum(jnp.where(counts, label_weights, 0.0))
