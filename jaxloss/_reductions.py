"""Reducing per-example losses to the training objective."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxloss import _checks


def mean(
    losses: jax.typing.ArrayLike,
    where: jax.typing.ArrayLike | None = None,
    weights: jax.typing.ArrayLike | None = None,
) -> jax.Array:
    """The mean of the kept losses over the weight of the kept examples: torch's ``reduction="mean"``.

    .. math::
      \\bar\\ell = \\frac{\\sum_i [\\text{kept}_i]\\, \\ell_i}{\\sum_i [\\text{kept}_i]\\, w_i}

    The losses already carry their weights (``weights=`` of a cost); the weights here only count
    the examples, as torch's weighted cross-entropy does: pass ``weights=class_weights[labels]``
    with integer labels. Without ``weights`` each example counts 1, which makes this the mean
    over the kept examples (ignored labels, padding). When nothing is kept, or every kept weight
    is 0, the mean is 0, not NaN, and so is its gradient. Dropped losses are never read, so
    a NaN there does not leak.

    Weights count examples, so they must be non-negative: a concrete negative weight raises
    ``ValueError`` (weights that cancel, such as ``[1, -1]``, would otherwise report two kept
    examples as none), and a traced one makes the mean NaN, the options' convention. torch
    accepts negative class weights and divides by their sum; this does not.

    Args:
      losses: floating per-example losses, any shape.
      where: optional boolean mask, broadcastable with ``losses``: which examples count.
      weights: optional non-negative per-example weights, broadcastable with ``losses``: how
        much each counts.

    Raises:
      ValueError: a concrete negative weight.

    Returns:
      A scalar, in the dtype of ``losses``.

    Examples:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> float(jaxloss.mean(jnp.array([1.0, 2.0, 9.0]), where=jnp.array([True, True, False])))
      1.5
      >>> float(jaxloss.mean(jnp.array([3.0, 1.0]), weights=jnp.array([3.0, 1.0])))
      1.0
      >>> float(jaxloss.mean(jnp.array([1.0, 2.0]), where=jnp.array([False, False])))
      0.0

    References:
      torch's ``nn.CrossEntropyLoss`` (``reduction="mean"`` with class weights divides by the
      weights of the targets); ``optax.losses`` leave the reduction to the caller.
    """
    values = _checks.as_array(losses, "losses")
    _checks.require_floating(values, "losses")
    shape = values.shape
    kept = jnp.ones(shape, bool)
    if where is not None:
        mask = _checks.boolean_mask(where)
        shape = _checks.broadcast_shape(values, mask, ("losses", "where"))
        kept = jnp.broadcast_to(mask, shape)
    scale = jnp.ones((), values.dtype)
    if weights is not None:
        scale = _checks.as_array(weights, "weights")
        _checks.require_real(scale, "weights")
        shape = _checks.broadcast_shape(np.broadcast_to(np.empty((), bool), shape), scale, ("losses", "weights"))
        scale = scale.astype(values.dtype)
        negative = jnp.any(scale < 0)
        try:
            concrete = bool(np.asarray(negative))
        except jax.errors.TracerArrayConversionError:
            scale = jnp.where(negative, jnp.nan, scale)  # traced: NaN, the options' convention
        else:
            if concrete:
                raise ValueError(f"`weights` must be non-negative: they count the examples, got {weights!r}.")
    values, kept, scale = (jnp.broadcast_to(a, shape) for a in (values, kept, scale))
    total_weight = jnp.sum(jnp.where(kept, scale, 0.0))
    total = jnp.sum(jnp.where(kept, values, 0.0))
    empty = total_weight == 0
    return jnp.where(empty, 0.0, total / jnp.where(empty, 1.0, total_weight)).astype(values.dtype)
