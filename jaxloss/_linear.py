"""``linear_cross_entropy``: the output layer and the softmax cross-entropy, fused; the logits are never stored.

For hidden states :math:`h` (N, D), a weight :math:`W` (D, V), a bias :math:`b` and integer
labels :math:`l`, the logits :math:`z = hW + b` are computed block by block and never stored.
This module is the public function: its checks, options and outputs. The work is split by job:

* ``_plan``: which rule and which blocks, per platform (``plan_blocks``, ``planned``);
* ``_vocabulary``: the per-example rule, blocks of classes over all rows (the statistics, the
  seed, the norms and the backward blocks, which :mod:`jaxloss.sharded` shares);
* ``_rows``: the reduced rule, blocks of rows over all classes, the gradients formed in the
  forward pass;
* ``_mesh``: what a value's type says of the mesh inside ``shard_map``.

With the training options (``_options``) the statistics and the seed are those of the full
logits with the same options.
"""

from __future__ import annotations

import functools
import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxloss import _checks, _options
from jaxloss._plan import BlockPlan, plan_blocks, planned
from jaxloss._rows import Plan, over, reduced
from jaxloss._vocabulary import clip_factors, example_norms, fused, product_dtype


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

    Examples:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> hidden, weight = jnp.array([[3.0, 4.0]]), jnp.zeros((2, 4))
      >>> _, stats = jaxloss.linear_cross_entropy(hidden, weight, jnp.array([1]), return_stats=True)
      >>> print(stats.lse, stats.correct)  # log 4; every class ties
      [1.3862944] [ True]
      >>> print(stats.grad_norm)  # |softmax - onehot| |h| = sqrt(3/4) * 5
      [4.330127]

    References:
      A. Chowdhery et al., "PaLM" (2022): the z-loss on the log-sum-exp. M. Paul et al., "Deep
      Learning on a Data Diet" (2021): per-example gradient norms (GraNd). X. Li et al., "Large
      Language Models Can Be Strong Differentially Private Learners" (2022): a sequence's
      norm from Gram matrices.
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
      accelerator the blocks are planned for its memory: one block of
      rows where the logits fit, otherwise the per-example rule in a few large blocks of
      classes, which keeps no float32 copy of the weight's gradient. ``"mean"`` divides by the
      weight of the examples that count, torch's ``reduction="mean"``: their number, or with
      ``weights`` the sum of their labels' weights; it is 0 when nothing counts. It equals
      ``jaxloss.mean(losses, where=counted, weights=weights[labels])``.

    The products take the inputs' dtype (bfloat16 stays bfloat16) and accumulate in float32;
    the logsumexp, the softmax, the seed and the weight gradient's accumulator are float32; the
    gradients come back in the inputs' dtypes.

    Forward mode needs the unfused twin: the rule is a ``custom_vjp``, so ``jax.grad``, ``jax.vjp``,
    ``jax.vmap`` and ``jax.hessian`` (forward over reverse) work, but ``jax.jvp`` and ``jax.jacfwd``
    raise. There is no fused forward-mode twin (it would store the logits' tangents): for those,
    form the logits and use ``jaxloss.forward.softmax_cross_entropy_with_integer_labels``.

    Args:
      hidden: floating hidden states, shape ``(..., D)``.
      weight: floating output weight, shape ``(D, V)``.
      labels: integer class ids with the batch shape ``hidden.shape[:-1]``.
      bias: optional floating bias of shape ``(V,)``.
      where: optional boolean mask with the batch shape: dropped examples cost 0 and get a zero
        gradient.
      block_size: classes per block, on every platform; with a reduction, a block of rows holds
        as many logits. By default the blocks are planned for the platform the program is
        compiled for: on the CPU about 4 MiB of float32 logits, a
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

    References:
      E. Wijmans et al., "Cut Your Losses in Large-Vocabulary Language Models" (2024): the
      logits a block at a time, never stored. M. Milakov and N. Gimelshein, "Online normalizer
      calculation for softmax" (2018): the streaming log-sum-exp. M. Abadi et al., "Deep
      Learning with Differential Privacy" (2016): per-example clipping. X. Li et al., "Large
      Language Models Can Be Strong Differentially Private Learners" (2022): ghost clipping,
      the norm of a sequence's gradient from Gram matrices. M. Paul et al., "Deep Learning on
      a Data Diet" (2021): the GraNd score. torch's ``cross_entropy`` (options and
      ``reduction="mean"``); PaLM (z-loss); Gemma 2 (soft cap).
    """
    if reduction not in REDUCTIONS:
        raise ValueError(f"`reduction` must be one of {REDUCTIONS}, got {reduction!r}.")
    if not isinstance(return_stats, bool):
        raise TypeError(f"`return_stats` must be a bool, got {return_stats!r}.")
    if clip_norm is not None and reduction == "none":
        raise ValueError('`clip_norm` clips the summed gradient: it needs reduction="mean" or "sum".')
    h, w, classes, b, mask = validate(hidden, weight, labels, bias, where, block_size)
    compute = _checks.compute_dtype(h, w)
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


def example_weight(
    labels: jax.Array, counts: jax.Array, options: _options.SoftmaxOptions | None, compute: Any
) -> jax.Array:
    """The denominator of ``reduction="mean"``: the number of counted examples, or the sum of their labels' weights."""
    if options is None or options.weights is None:
        return jnp.sum(counts, dtype=compute)
    label_weights = jnp.take(options.weights[0], labels)
    return jnp.sum(jnp.where(counts, label_weights, 0.0))
