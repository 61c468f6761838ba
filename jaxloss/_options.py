"""The training options of the logit-space costs: validation, the two option sets, and what each does to the inputs.

Options are keyword-only and off by default; a cost called without any takes its plain path.
Each option set is a pytree of arrays in the compute dtype (``None`` for an option that is
off), handed to the rules with the inputs, so one compiled rule serves every value. Options are
not differentiated: the rules return no cotangent for them.

What an option does to the logits and labels is here (:func:`soft_cap`, the smoothings); the
losses they enter are in the family modules and their seeds in ``seeds``.
"""

from __future__ import annotations

import numbers
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxloss import _checks
from jaxloss._checks import Axes


class SigmoidOptions(NamedTuple):
    """Options of the sigmoid costs, each broadcast to the logits' shape or a scalar."""

    smoothing: jax.Array | None  # epsilon: labels (1 - eps) y + eps / 2
    weights: jax.Array | None  # per-element weights
    pos_weight: jax.Array | None  # the weight of the positive term
    cap: jax.Array | None  # logits c tanh(z / c)


class SoftmaxOptions(NamedTuple):
    """Options of the softmax costs; ``weights`` broadcasts against the logits (size 1 off the class axes)."""

    smoothing: jax.Array | None  # epsilon: labels (1 - eps) y + eps / C
    weights: jax.Array | None  # per-class weights
    z_loss: jax.Array | None  # alpha: + alpha lse(z)^2
    cap: jax.Array | None  # logits c tanh(z / c)


def _scalar(
    value: float | jax.typing.ArrayLike,
    name: str,
    dtype: jnp.dtype,
    low: float,
    high: float,
    *,
    open_low: bool = False,
    open_high: bool = False,
) -> jax.Array:
    """A scalar option in the compute dtype, which must lie between ``low`` and ``high``.

    A concrete value (a Python or NumPy number, or a concrete JAX array) outside the interval
    raises ``ValueError``. A traced value cannot be checked at trace time: outside the interval
    it becomes NaN, so the loss is NaN, the convention of integer labels out of range.
    """
    array = _checks.as_array(value, name)
    if array.ndim != 0:
        raise ValueError(f"`{name}` must be a scalar, got shape {array.shape}.")
    _checks.require_real(array, name)
    interval = f"{'(' if open_low else '['}{low}, {high}{')' if open_high else ']'}"
    try:
        number: float | None = float(array)
    except jax.errors.ConcretizationTypeError:
        number = None
    option = array.astype(dtype)
    above = (lambda x: x > low) if open_low else (lambda x: x >= low)
    below = (lambda x: x < high) if open_high else (lambda x: x <= high)
    if number is None:
        return jnp.where(above(option) & below(option), option, jnp.nan)
    if not (above(number) and below(number)):
        raise ValueError(f"`{name}` must lie in {interval}, got {number}.")
    return option


def positive_cap(value: float | jax.typing.ArrayLike | None, dtype: jnp.dtype) -> jax.Array | None:
    """The soft cap ``c``, finite and positive (None: no cap)."""
    if value is None:
        return None
    return _scalar(value, "soft_cap", dtype, 0.0, np.inf, open_low=True, open_high=True)


def nonnegative_scalar(value: float | jax.typing.ArrayLike, name: str, dtype: jnp.dtype) -> jax.Array:
    """A scalar option that must be at least 0 and finite, in the compute dtype."""
    return _scalar(value, name, dtype, 0.0, np.inf, open_high=True)


def _to_logits_shape(array: jax.Array, name: str, shape: tuple[int, ...]) -> jax.Array:
    """``array`` broadcast to the logits' ``shape``, or a ``ValueError`` naming the option and both shapes."""
    try:
        broadcast = np.broadcast_shapes(array.shape, shape)
    except ValueError:
        broadcast = None
    if broadcast != shape:
        raise ValueError(f"`{name}` with shape {array.shape} must broadcast to the shape {shape} of `logits`.")
    return jnp.broadcast_to(array, shape)


def bounded_array(
    value: jax.typing.ArrayLike, name: str, like: jax.Array | jax.ShapeDtypeStruct, low: float, high: float
) -> jax.Array:
    """A scalar or an array broadcastable to ``like``, in ``[low, high]`` (``[low, inf)`` for an infinite ``high``).

    Concrete values outside the interval raise ``ValueError``; traced ones become NaN there, the
    convention of :func:`_scalar`. Returned in ``like``'s dtype, with its shape or as a scalar.
    """
    array = _array_option(value, name, like.dtype)
    if array.ndim:
        array = _to_logits_shape(array, name, like.shape)
    inside = (array >= low) & ((array <= high) if np.isfinite(high) else (array < high))
    try:
        concrete = np.asarray(inside)
    except jax.errors.TracerArrayConversionError:
        return jnp.where(inside, array, jnp.nan)
    if not concrete.all():
        interval = f"[{low}, {high}]" if np.isfinite(high) else f"[{low}, inf)"
        bad = np.asarray(array)[~concrete].ravel()[0] if concrete.ndim else float(array)
        raise ValueError(f"`{name}` must lie in {interval}, got {bad}.")
    return array


def real_scalar(value: float | jax.typing.ArrayLike, name: str, dtype: jnp.dtype) -> jax.Array:
    """A finite real scalar option, of either sign, in the compute dtype."""
    return _scalar(value, name, dtype, -np.inf, np.inf, open_low=True, open_high=True)


def _is_off(value: float | jax.typing.ArrayLike) -> bool:
    return isinstance(value, numbers.Real) and float(value) == 0.0


def _array_option(value: jax.typing.ArrayLike, name: str, dtype: jnp.dtype) -> jax.Array:
    array = _checks.as_array(value, name)
    _checks.require_real(array, name)
    return array.astype(dtype)


def sigmoid_options(
    logits: jax.Array | jax.ShapeDtypeStruct,
    *,
    label_smoothing: float | jax.typing.ArrayLike = 0.0,
    weights: jax.typing.ArrayLike | None = None,
    pos_weight: jax.typing.ArrayLike | None = None,
    soft_cap: float | jax.typing.ArrayLike | None = None,
) -> SigmoidOptions | None:
    """Validates the sigmoid options against ``logits`` (in the compute dtype); None if all are off.

    ``logits`` may be their shape and the compute dtype alone (a ``jax.ShapeDtypeStruct``): the
    costs keep bfloat16 logits as stored until their rule widens them (``_rules.stored_pair``).
    """
    dtype = logits.dtype
    smoothing = None if _is_off(label_smoothing) else _scalar(label_smoothing, "label_smoothing", dtype, 0.0, 1.0)
    arrays: dict[str, jax.Array | None] = {}
    for name, value in (("weights", weights), ("pos_weight", pos_weight)):
        if value is None:
            arrays[name] = None
            continue
        arrays[name] = _to_logits_shape(_array_option(value, name, dtype), name, logits.shape)
    options = SigmoidOptions(smoothing, arrays["weights"], arrays["pos_weight"], positive_cap(soft_cap, dtype))
    return None if all(o is None for o in options) else options


def softmax_options(
    logits: jax.Array | jax.ShapeDtypeStruct,
    axes: Axes,
    *,
    label_smoothing: float | jax.typing.ArrayLike = 0.0,
    weights: jax.typing.ArrayLike | None = None,
    z_loss: float | jax.typing.ArrayLike = 0.0,
    soft_cap: float | jax.typing.ArrayLike | None = None,
) -> SoftmaxOptions | None:
    """Validates the softmax options against ``logits`` and its class ``axes``; None if all are off.

    ``weights`` has the shape of the class axes, ``(C,)`` for one class axis, as in torch.
    ``logits`` may be their shape and the compute dtype alone, as for :func:`sigmoid_options`.
    """
    dtype = logits.dtype
    smoothing = None if _is_off(label_smoothing) else _scalar(label_smoothing, "label_smoothing", dtype, 0.0, 1.0)
    alpha = None if _is_off(z_loss) else nonnegative_scalar(z_loss, "z_loss", dtype)
    class_weights = None
    if weights is not None:
        array = _array_option(weights, "weights", dtype)
        class_shape = tuple(logits.shape[a] for a in axes)
        if array.shape != class_shape:
            raise ValueError(
                f"`weights` must have the shape {class_shape} of the class axes {axes} of `logits` "
                f"with shape {logits.shape}, got {array.shape}."
            )
        # Lay the class axes out where they sit in the logits, then broadcast.
        order = sorted(range(len(axes)), key=lambda i: axes[i])
        laid_out = jnp.transpose(array, order) if len(axes) > 1 else array
        class_weights = jnp.expand_dims(laid_out, [d for d in range(logits.ndim) if d not in axes])
    options = SoftmaxOptions(smoothing, class_weights, alpha, positive_cap(soft_cap, dtype))
    return None if all(o is None for o in options) else options


# --- what the options do to the inputs ---------------------------------------------------------


def soft_cap(logits: jax.Array, cap: jax.Array | None) -> jax.Array:
    """:math:`c \\tanh(z / c)`, the logit soft-capping of Gemma 2 (the logits when ``cap`` is None).

    ``±inf`` go to their limits ``±c``: right for a sigmoid, whose infinite logits are limits.
    """
    return logits if cap is None else cap * jnp.tanh(logits / cap)


def soft_cap_classes(logits: jax.Array, cap: jax.Array | None) -> jax.Array:
    """:func:`soft_cap` for the classes of a softmax: a ``-inf`` logit is a masked class, and stays ``-inf``.

    A plain select. The arithmetic form ``c tanh(z/c) + (min(z, -largest) + largest)`` was
    measured against it (value_and_grad, ``soft_cap=30``, float32, one run): soft labels at
    2048x8192 146 ms and 64 MB of temporaries with the select, 162 ms and 128 MB with the
    arithmetic; integer labels 102 ms and 105 ms, 64 MB both.
    """
    return logits if cap is None else jnp.where(logits == -jnp.inf, -jnp.inf, soft_cap(logits, cap))


def smooth_binary_labels(labels: jax.Array, smoothing: jax.Array | None) -> jax.Array:
    """:math:`(1 - \\epsilon) y + \\epsilon / 2`, Keras's label smoothing for sigmoid costs."""
    return labels if smoothing is None else (1.0 - smoothing) * labels + 0.5 * smoothing


def smooth_labels(logits: jax.Array, labels: jax.Array, smoothing: jax.Array | None, axes: Axes) -> jax.Array:
    """:math:`(1 - \\epsilon) y + \\epsilon / C`, torch's label smoothing for softmax costs.

    ``C`` counts the classes in play: a ``-inf`` logit (a masked class, or one that ``where``
    drops) gets no share, so smoothing never puts weight on a class of zero probability. With
    no masked class this is torch's ``ε / C``.
    """
    if smoothing is None:
        return labels
    in_play = logits != -jnp.inf
    count = jnp.sum(in_play, axis=axes, keepdims=True).astype(labels.dtype)
    share = jnp.where(in_play, smoothing / jnp.maximum(count, 1.0), 0.0)
    return (1.0 - smoothing) * labels + share


def option_labels(logits: jax.Array, labels: jax.Array, options: SoftmaxOptions, axes: Axes) -> jax.Array:
    """The effective labels of a softmax cost: :math:`w \\odot ((1 - \\epsilon) y + \\epsilon / C)`.

    ``logits`` are the capped logits, whose ``-inf`` entries get no share. Class weights act on
    the labels, :math:`-\\sum_j w_j y_j \\log p_j`, as in torch.
    """
    smoothed = smooth_labels(logits, labels, options.smoothing, axes)
    return smoothed if options.weights is None else options.weights * smoothed
