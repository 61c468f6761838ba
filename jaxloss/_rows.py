"""The fused output layer's reduced rule: blocks of rows over all classes, the gradients formed in the forward pass.

With ``reduction="mean"`` or ``"sum"`` the loss's cotangent is one number, so each block of
rows forms its statistics, loss and seed over every class and adds its gradients at once into
a float32 :math:`\\bar W`: three matrix products, the unfused cost's count. Chosen by
``_plan.plan_blocks``.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jaxloss import _backend, _checks, _norms, _options, _seeds, _stats
from jaxloss._plan import BlockPlan
from jaxloss._vocabulary import (
    _for_blocks,
    _primal,
    clip_factors,
    example_norms,
    grouped_norms,
    product_dtype,
    token_stats,
)


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
    compute = _checks.compute_dtype(hidden, weight)
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


def over(value: jax.Array, denominator: jax.Array) -> jax.Array:
    """``value / denominator``, one rounding, and 0 where the denominator is 0 (``jaxloss.mean``'s empty mean)."""
    empty = denominator == 0
    return jnp.where(empty, 0.0, value / jnp.where(empty, 1.0, denominator))
