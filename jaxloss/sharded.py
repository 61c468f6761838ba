"""Vocabulary-parallel costs, for use inside ``jax.shard_map`` with the classes split over a mesh axis.

Each device holds a contiguous shard of the vocabulary: logits of shape ``(..., V/k)`` (or a
weight of shape ``(D, V/k)``), shard ``i`` holding classes ``[i V/k, (i + 1) V/k)``. Labels
are global class ids, the same on every device. Per token, the forward pass communicates
O(1) numbers and never the logits:

1. ``pmax`` of the local maximum :math:`m_i`, giving :math:`M`;
2. one ``psum`` of three numbers: the local :math:`R_i e^{m_i - M}` (the sum of exponentials,
   the label left out), the label's logit (0 on the shards that do not hold it), and a count of
   the shards that hold it.

From these the loss is formed as on one device, :math:`(M - z_l) + \\log1p(T)`, with the same
exactness (``_stats``). The backward pass needs no communication for the logits:
each device forms the seed :math:`e^{z - M}/S - \\text{onehot}` of its own classes. In
``linear_cross_entropy`` the gradient of the (replicated) hidden states is a sum over the
shards, one ``psum`` of an ``(N, D)`` array, as in Megatron-LM.

Losses come back on every device of the axis, identical. The engine is JAX's own:
``jax.lax.pmax``, ``psum`` and ``axis_index``.
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp

from jaxloss import _checks, _linear, _seeds, _stats

__all__ = ["linear_cross_entropy", "softmax_cross_entropy_with_integer_labels"]


def split_along(array: jax.Array, axis: int) -> bool:
    """Whether ``array``'s type says that ``axis`` is split over mesh axes (explicit sharding).

    The full-logit integer-label cost then reads the label's logit as a masked sum, which each
    device reduces locally, instead of a gather, which would collect the logits first.
    """
    spec = getattr(getattr(jax.typeof(array), "sharding", None), "spec", None)
    return spec is not None and len(spec) > axis and spec[axis] is not None


def _combine(stats: _stats.LabelStats, axis_name: Any) -> _stats.LabelStats:
    """The statistics of the whole vocabulary from each shard's: one ``pmax``, then one ``psum`` of the rest."""
    row_max = jax.lax.pmax(stats.max, axis_name)
    local = _stats.sums(_stats.relative_to(stats, row_max))
    leaves, tree = jax.tree.flatten(local)
    summed = jax.lax.psum(jnp.stack(leaves), axis_name)
    return jax.tree.unflatten(tree, list(summed))._replace(max=row_max)


def _shard_offset(local_classes: int, axis_name: Any) -> jax.Array:
    return jax.lax.axis_index(axis_name) * local_classes


# --- logits split over the vocabulary ------------------------------------------------------------


def _integer_forward(logits: jax.Array, labels: jax.Array, counts: jax.Array, axis_name: Any) -> tuple[jax.Array, Any]:
    local = (labels - _shard_offset(logits.shape[1], axis_name))[:, None]
    stats = _combine(_stats.label_stats(logits, local, 1, whole_row=False), axis_name)
    loss, totals = _stats.label_loss(stats, None)
    return jnp.where(counts, loss[:, 0], 0.0), (logits, local, counts, totals)


def _integer_primal(logits: jax.Array, labels: jax.Array, counts: jax.Array, axis_name: Any) -> jax.Array:
    return _integer_forward(logits, labels, counts, axis_name)[0]


_integer = jax.custom_vjp(_integer_primal, nondiff_argnums=(3,))


def _integer_bwd(axis_name: Any, residuals: Any, cotangent: jax.Array) -> tuple[Any, None, None]:
    del axis_name  # no communication: each device's classes only
    logits, local, counts, totals = residuals
    grad = _seeds.softmax_cross_entropy_with_integer_labels_grad_from_totals(logits, logits, local, totals, None, 1)
    row_cotangent = jnp.where(counts, cotangent, 0.0)
    return row_cotangent[:, None] * grad, None, None


_integer.defvjp(_integer_forward, _integer_bwd)


def softmax_cross_entropy_with_integer_labels(
    logits: jax.typing.ArrayLike,
    labels: jax.typing.ArrayLike,
    *,
    axis_name: Any,
    where: jax.typing.ArrayLike | None = None,
) -> jax.Array:
    """Softmax cross-entropy with integer labels, the classes split over the mesh axis ``axis_name``.

    Call it inside ``shard_map`` with this device's shard of the logits, shape ``(..., V/k)`` on
    the last axis, and the global labels. It equals the single-device
    ``jaxloss.softmax_cross_entropy_with_integer_labels`` of the gathered logits, in value and
    gradient, without gathering them: per token, one ``pmax`` and one ``psum`` of three numbers.

    Args:
      logits: this device's floating logits, classes on the last axis.
      labels: global integer class ids with the batch shape, the same on every device.
      axis_name: the mesh axis the vocabulary is split over.
      where: optional boolean mask with the batch shape: dropped examples cost 0 and get a
        zero gradient.

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
    """
    z = _checks.as_array(logits, "logits")
    _checks.require_floating(z, "logits")
    classes = _checks.class_ids(labels)
    batch = z.shape[:-1]
    if classes.shape != batch:
        raise ValueError(f"`labels` must have the batch shape {batch} of `logits` {z.shape}, got {classes.shape}.")
    counts = jnp.ones(batch, bool)
    if where is not None:
        mask = _checks.boolean_mask(where)
        if mask.shape != batch:
            raise ValueError(f"`where` must have the batch shape {batch} of `logits` {z.shape}, got {mask.shape}.")
        counts = mask
    rows = math.prod(batch)
    z = z.astype(_checks.compute_dtype(z)).reshape(rows, z.shape[-1])
    loss = _integer(z, classes.reshape(rows), counts.reshape(rows), axis_name)
    return loss.reshape(batch)


# --- the output layer split over the vocabulary --------------------------------------------------


def _linear_forward(
    hidden: jax.Array, weight: jax.Array, labels: jax.Array, counts: jax.Array, axis_name: Any, width: int
) -> tuple[jax.Array, Any]:
    local = (labels - _shard_offset(weight.shape[1], axis_name))[:, None]
    stats = _combine(_linear.local_stats(hidden, weight, None, local, None, width), axis_name)
    loss, totals = _stats.label_loss(stats, None)
    return jnp.where(counts, loss[:, 0], 0.0), (hidden, weight, local, counts, totals)


def _linear_primal(
    hidden: jax.Array, weight: jax.Array, labels: jax.Array, counts: jax.Array, axis_name: Any, width: int
) -> jax.Array:
    return _linear_forward(hidden, weight, labels, counts, axis_name, width)[0]


_linear_rule = jax.custom_vjp(_linear_primal, nondiff_argnums=(4, 5))


def _linear_bwd(axis_name: Any, width: int, residuals: Any, cotangent: jax.Array) -> tuple[Any, Any, None, None]:
    hidden, weight, local, counts, totals = residuals
    row_cotangent = jnp.where(counts, cotangent, 0.0).astype(totals.max.dtype)[:, None]
    d_hidden, d_weight, _ = _linear.backward_blocks(hidden, weight, None, local, None, totals, row_cotangent, width)
    # The hidden states feed every shard of the vocabulary: their gradient is one psum over the
    # axis (and over any other axis they are replicated on, as the weight is over a data axis).
    d_hidden = _linear.summed_like(d_hidden.astype(hidden.dtype), hidden)
    return d_hidden, _linear.summed_like(d_weight, weight), None, None


_linear_rule.defvjp(_linear_forward, _linear_bwd)


def linear_cross_entropy(
    hidden: jax.typing.ArrayLike,
    weight: jax.typing.ArrayLike,
    labels: jax.typing.ArrayLike,
    *,
    axis_name: Any,
    where: jax.typing.ArrayLike | None = None,
    block_size: int | None = None,
) -> jax.Array:
    """``jaxloss.linear_cross_entropy`` with the weight's columns split over the mesh axis ``axis_name``.

    Call it inside ``shard_map`` with the full hidden states ``(..., D)`` (replicated over the
    axis), this device's shard of the weight ``(D, V/k)`` and the global labels. The logits are
    computed block by block on each device and never stored or communicated: per token, one
    ``pmax`` and one ``psum`` of three numbers forward, and one ``psum`` of the hidden states'
    gradient, an ``(N, D)`` array, backward.

    Args:
      hidden: floating hidden states ``(..., D)``, the same on every device of the axis.
      weight: this device's floating weight shard ``(D, V/k)``.
      labels: global integer class ids with the batch shape.
      axis_name: the mesh axis the vocabulary is split over.
      where: optional boolean mask with the batch shape.
      block_size: classes per block on each device (default: about 4 MiB of logits).

    Returns:
      The loss of each example, identical on every device of the axis.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from jax.sharding import NamedSharding, PartitionSpec as P
      >>> import jaxloss
      >>> mesh = jax.make_mesh((1,), ("vocab",))
      >>> weight = jax.device_put(jnp.zeros((3, 4)), NamedSharding(mesh, P(None, "vocab")))
      >>> cost = jax.jit(jax.shard_map(
      ...     lambda h, w, y: jaxloss.sharded.linear_cross_entropy(h, w, y, axis_name="vocab"),
      ...     mesh=mesh, in_specs=(P(), P(None, "vocab"), P()), out_specs=P()))
      >>> print(cost(jnp.ones((2, 3)), weight, jnp.array([0, 3])))
      [1.3862944 1.3862944]
    """
    h, w, classes, _, mask = _linear.validate(hidden, weight, labels, None, where, block_size)
    batch = h.shape[:-1]
    rows = math.prod(batch)
    counts = jnp.ones(batch, bool) if mask is None else mask
    compute = _linear.compute_dtype(h, w)
    width = _linear.block_columns(rows, w.shape[1], jnp.dtype(compute).itemsize, block_size)
    loss = _linear_rule(h.reshape(rows, h.shape[-1]), w, classes.reshape(rows), counts.reshape(rows), axis_name, width)
    return loss.reshape(batch)
