"""``linear_cross_entropy``: the output layer and the softmax cross-entropy, fused.

The math and the rule are in ``_linear``; this module validates the arguments and wires them.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from jaxloss import _checks, _linear, _options


def block_options(options: _options.SoftmaxOptions | None) -> _linear.BlockOptions:
    """The softmax options, with per-class weights as a (V,) vector, as the blocks use them."""
    if options is None:
        return _linear.BlockOptions(None, None, None, None)
    weights = None if options.weights is None else options.weights.reshape(-1, options.weights.shape[-1])[0]
    return _linear.BlockOptions(options.smoothing, weights, options.z_loss, options.cap)


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
    classes = _checks.as_array(labels, "labels")
    _checks.require_integer(classes, "labels")
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
        mask = _checks.as_array(where, "where")
        if mask.dtype != jnp.bool_:
            raise TypeError(f"`where` must be a boolean mask, got {mask.dtype} with shape {mask.shape}.")
        try:
            mask = jnp.broadcast_to(mask, batch)
        except ValueError:
            raise ValueError(f"`where` with shape {mask.shape} must broadcast to the batch shape {batch}.") from None
    if block_size is not None:
        _checks.require_python_int(block_size, "block_size")
        if block_size < 1:
            raise ValueError(f"`block_size` must be positive, got {block_size}.")
    return h, w, classes, b, mask


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
    """
    h, w, classes, b, mask = validate(hidden, weight, labels, bias, where, block_size)
    compute = _linear.compute_dtype(h, w)
    vocab = w.shape[1]
    probe = jnp.zeros((1, vocab), compute)  # the options are checked against one row of logits
    options = _options.softmax_options(
        probe, (1,), label_smoothing=label_smoothing, weights=weights, z_loss=z_loss, soft_cap=soft_cap
    )
    batch = h.shape[:-1]
    rows = math.prod(batch)
    counts = jnp.ones(batch, bool) if mask is None else mask
    if ignore_index is not None:
        _checks.require_python_int(ignore_index, "ignore_index")
        counts = counts & (classes != ignore_index)
    flat_h = h.reshape(rows, h.shape[-1])
    flat_labels = jnp.where(counts, classes, 0).reshape(rows)
    width = _linear.block_columns(rows, vocab, jnp.dtype(compute).itemsize, block_size)
    loss = _linear.fused(flat_h, w, b, flat_labels, counts.reshape(rows), block_options(options), width)
    return loss.reshape(batch)
