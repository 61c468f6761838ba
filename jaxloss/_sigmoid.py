"""The sigmoid costs in logit space: binary cross-entropy, element-wise, and its sum over labels (multi-label)."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxloss import _article, _backend, _checks, _compensated, _focal, _options, _seeds
from jaxloss._rules import NORM, Axes, Rule, current_way, rule, stored_pair, widen

# --- the forward formulas ------------------------------------------------------------------------


def _loss(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """Element-wise :math:`\\max(z, 0)(1-y) + \\max(-z, 0)\\,y + \\log1p(e^{-|z|})`, non-negative terms.

    That is :math:`z(1-y) + \\log1p(e^{-z})` for z > 0 and :math:`-zy + \\log1p(e^{z})` otherwise:
    nothing cancels. An infinite logit with the matching hard label costs 0, not ``inf * 0``.
    Arithmetic only (``_backend``, rule 1), so that a mean of it is one fused reduction.
    """
    largest = jnp.finfo(logits.dtype).max
    magnitude = jnp.abs(logits)
    finite = jnp.sign(logits) * jnp.minimum(magnitude, largest)  # +-inf -> +-largest
    positive, negative = _backend.nonnegative_part(finite), _backend.nonnegative_part(-finite)
    other = _backend.complement(labels)  # 1 - y
    linear = _times_label(positive, logits, other) + _times_label(negative, -logits, labels)
    return linear + _compensated.log1p(jnp.exp(-magnitude))


def _times_label(part: jax.Array, signed_logits: jax.Array, label: jax.Array) -> jax.Array:
    """``max(z, 0) * w``, given ``part = max(z, 0)`` with ``+inf`` clamped to the largest float.

    The excess (``_backend.infinite_excess``) is ``+inf`` only for ``z = +inf``, where
    ``+inf * w`` takes its limit ``sign(w) * inf``, or 0 for ``w = 0``.
    """
    excess = _backend.infinite_excess(signed_logits)
    return part * label + _backend.times_infinity(excess, label)


def _pos_weighted_loss(logits: jax.Array, labels: jax.Array, pos_weight: jax.Array) -> jax.Array:
    """:math:`w_+ y\\,\\mathrm{sp}(-z) + (1 - y)\\,\\mathrm{sp}(z)`, torch's ``pos_weight``, non-negative terms.

    Each term is exactly 0 where its label factor is 0, so infinite logits with the matching hard
    label cost 0; but a NaN (or infinite) ``pos_weight`` gives NaN there too, as the literal
    formula (``jaxloss.reference``) and torch do: NaN in, NaN out, for every element it weighs.
    """
    positive = jnp.where(labels == 0, 0.0 * pos_weight, pos_weight * labels * _compensated.softplus(-logits))
    negative = jnp.where(labels == 1, 0.0, (1.0 - labels) * _compensated.softplus(logits))
    return positive + negative


def _loss_with_options(logits: jax.Array, labels: jax.Array, options: _options.SigmoidOptions) -> jax.Array:
    """:math:`w\\,\\ell(c \\tanh(z/c), (1 - \\epsilon) y + \\epsilon/2)`, with ``pos_weight`` if given."""
    capped = _options.soft_cap(logits, options.cap)
    smoothed = _options.smooth_binary_labels(labels, options.smoothing)
    if options.pos_weight is None:
        loss = _loss(capped, smoothed)
    else:
        loss = _pos_weighted_loss(capped, smoothed, options.pos_weight)
    return loss if options.weights is None else options.weights * loss


# --- the rules: each formula with its seed -------------------------------------------------------


# The residual barrier on every backend (``_backend.barrier``): XLA-CPU recomputes the exponentials
# faster than it shares them (rule 4), and XLA-GPU shares them through a float32 array
# (rule 8; 8192x32768 bfloat16 on the H200: 2.00 logits-sized arrays without, none with it).
@rule(reference=_article.sigmoid_binary_cross_entropy, guard=_backend.barrier)
def _sigmoid_cross_entropy(x: jax.Array, y: jax.Array, options: Any, axes: Axes) -> tuple[jax.Array, Any]:
    del axes
    logits, labels = widen(x), widen(y)
    if options is None:
        return _loss(logits, labels), (x, y, options)
    return _loss_with_options(logits, labels, options), (x, y, options)


@_sigmoid_cross_entropy.defseed
def _seed(residuals: Any, axes: Axes) -> tuple[jax.Array, jax.Array]:
    del axes
    x, y, options = residuals
    logits, labels = widen(x), widen(y)
    if options is None:
        return (
            _seeds.sigmoid_binary_cross_entropy_grad_from_inputs(logits, labels),
            _seeds.sigmoid_binary_cross_entropy_labels_grad_from_inputs(logits, labels),
        )
    return _seeds.sigmoid_options_grads_from_inputs(logits, labels, options)


class FocalAux(NamedTuple):
    """The focal loss's hyperparameters (not differentiated), broadcast to the logits or scalars."""

    alpha: jax.Array | None
    gamma: jax.Array


def _focal_limits(logits: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Where the logits are infinite, and the logits with those replaced by ±(largest float)/8.

    The focal formulas are read at that large finite logit, and their limits taken from there.
    """
    infinite = jnp.isinf(logits)
    return infinite, jnp.where(infinite, jnp.sign(logits) * (jnp.finfo(logits.dtype).max / 8.0), logits)


# The residual barrier on accelerators only (``_backend.accelerator_barrier``). Without it
# XLA-CPU shares the compensated exponentials and logarithms of the forward pass with the seed
# (rule 4). At 1024x1024 float32, value_and_grad of the mean: 224 ms and 136 MiB of temporaries
# with the barrier, 86 ms and 40 MiB without; optax's 87 ms and 32 MiB (one run, interleaved).
# XLA-GPU shares them through float32 arrays (rule 8): at 8192x32768 on the H200, 11.5
# logits-sized arrays in bfloat16 and 7.0 in float32 without it (optax's 10.0 and 9.0), none
# with it.
@rule(reference=_article.sigmoid_focal_loss, guard=_backend.accelerator_barrier)
def _focal_cost(x: jax.Array, y: jax.Array, aux: FocalAux, axes: Axes) -> tuple[jax.Array, Any]:
    """:math:`a_t q^\\gamma \\mathrm{ce}` from the parts of ``_focal``, the weight times a two-term factor."""
    del axes
    logits, labels = widen(x), widen(y)
    infinite, finite = _focal_limits(logits)
    parts = _focal.parts(finite, labels, aux.gamma)  # the seed's parts too: XLA-CPU shares them
    factor, factor_low = parts.factor, parts.factor_low
    if aux.alpha is not None:
        weight, weight_low = _focal.class_weight(aux.alpha, labels)
        product, product_error = _compensated.two_product(weight, factor)
        factor, factor_low = product, product_error + (weight * factor_low + weight_low * factor)
    # factor is 0 only where ce is finite (q^gamma underflows on the right side of a hard label);
    # the low part multiplies a finite ce, so an infinite one (at an infinite logit) stays +inf.
    largest = jnp.finfo(logits.dtype).max
    low = factor * parts.ce_low + factor_low * jnp.minimum(parts.ce + parts.ce_low, largest)
    loss = (factor * parts.ce + low) * parts.scale
    # At an infinite logit the loss is 0 on the agreeing side and +inf otherwise.
    return jnp.where(infinite & (loss != 0), jnp.inf, loss), (x, y, aux)


@_focal_cost.defseed
def _focal_seed(residuals: Any, axes: Axes) -> tuple[jax.Array, jax.Array]:
    del axes
    x, y, aux = residuals
    logits, labels = widen(x), widen(y)
    # At an infinite logit the seeds are their limits: the logit gradient is read at a large
    # finite logit, and the label gradient, infinite there, takes the sign it has at that logit.
    infinite, finite = _focal_limits(logits)
    parts = _focal.parts(finite, labels, aux.gamma)
    grad, labels_grad = _seeds.sigmoid_focal_loss_grads_from_parts(finite, labels, parts, aux.alpha, aux.gamma)
    limit = jnp.where(labels_grad == 0, 0.0, jnp.sign(labels_grad) * jnp.inf)
    return grad, jnp.where(infinite, limit, labels_grad)


def _prepare(logits: Any, labels: Any, options: dict[str, Any]) -> tuple[jax.Array, jax.Array, Any]:
    z, y, dtype = stored_pair(logits, labels, "logits")
    return z, y, _options.sigmoid_options(jax.ShapeDtypeStruct(z.shape, dtype), **options)


# --- the public costs ----------------------------------------------------------------------------


def sigmoid_binary_cross_entropy(
    logits: jax.typing.ArrayLike,
    labels: jax.typing.ArrayLike,
    *,
    label_smoothing: float | jax.typing.ArrayLike = 0.0,
    weights: jax.typing.ArrayLike | None = None,
    pos_weight: jax.typing.ArrayLike | None = None,
    soft_cap: float | jax.typing.ArrayLike | None = None,
) -> jax.Array:
    """Element-wise sigmoid cross-entropy of logits and labels.

    .. math::
      \\ell(z, y) = -[y \\log \\sigma(z) + (1 - y) \\log(1 - \\sigma(z))],
      \\qquad \\frac{\\partial \\ell}{\\partial z} = \\sigma(z) - y

    The article's binary cost with its sigmoid output; the seed is its dJ/dZ = (A - Y)/m, per
    example. Computed as :math:`z(1-y) + \\log1p(e^{-z})` for z > 0 (and its mirror), a sum of
    non-negative terms: within 2 ulp of the exact loss, and the gradient within 4 ulp, for any
    finite logit. Infinite logits take their limits.

    Forward mode needs the twin: the seed is a ``custom_vjp`` rule, so ``jax.grad``, ``jax.vjp``,
    ``jax.vmap`` and ``jax.hessian`` (forward over reverse) work, but ``jax.jvp`` and ``jax.jacfwd``
    raise; use ``jaxloss.forward.sigmoid_binary_cross_entropy`` (the same seed as a ``custom_jvp``
    rule) for those.

    Args:
      logits: floating logits, any shape.
      labels: labels in [0, 1], hard or soft, broadcastable with ``logits``.
      label_smoothing: ε in [0, 1]: the labels become (1 - ε) y + ε/2, as in Keras.
      weights: per-element weights, broadcastable to the logits: the loss is w times the loss.
      pos_weight: the weight of the positive term, broadcastable to the logits:
        -[w₊ y log σ(z) + (1 - y) log(1 - σ(z))], torch's ``pos_weight``. A NaN weight gives a
        NaN loss and gradient for every element it weighs, whatever its label.
      soft_cap: c > 0: the logits pass through c tanh(z/c) first, as in Gemma 2.

    Returns:
      The loss of each element, with the broadcast shape; float32 for float16 and bfloat16 input.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> import jaxloss
      >>> logits, labels = jnp.array([0.0, 30.0, -30.0]), jnp.array([1.0, 1.0, 1.0])
      >>> print(jaxloss.sigmoid_binary_cross_entropy(logits, labels))
      [6.931472e-01 9.357623e-14 3.000000e+01]
      >>> print(jax.grad(lambda z: jaxloss.sigmoid_binary_cross_entropy(z, labels).sum())(logits))
      [-5.000000e-01 -9.357623e-14 -1.000000e+00]

    References:
      J. Lalin, "Feedforward Neural Networks in Depth, Part 3: Cost Functions" (2021), the
      binary cost and dJ/dZ = (A - Y)/m. ``optax.losses.sigmoid_binary_cross_entropy``;
      torch's ``BCEWithLogitsLoss`` (``pos_weight``); Keras (label smoothing); Gemma 2 (soft cap).
    """
    options = {"label_smoothing": label_smoothing, "weights": weights, "pos_weight": pos_weight, "soft_cap": soft_cap}
    z, y, aux = _prepare(logits, labels, options)
    return _sigmoid_cross_entropy(z, y, aux, ())


def sigmoid_multilabel_cross_entropy(
    logits: jax.typing.ArrayLike,
    labels: jax.typing.ArrayLike,
    axis: int | tuple[int, ...] | None = -1,
    where: jax.typing.ArrayLike | None = None,
    *,
    label_smoothing: float | jax.typing.ArrayLike = 0.0,
    weights: jax.typing.ArrayLike | None = None,
    pos_weight: jax.typing.ArrayLike | None = None,
    soft_cap: float | jax.typing.ArrayLike | None = None,
) -> jax.Array:
    """Multi-label cross-entropy: a sigmoid per label, summed over ``axis``.

    .. math::
      \\ell(z, y) = \\sum_j -[y_j \\log \\sigma(z_j) + (1 - y_j) \\log(1 - \\sigma(z_j))],
      \\qquad \\frac{\\partial \\ell}{\\partial z_j} = \\sigma(z_j) - y_j

    The article's multi-label cost: each label's term is the binary cost (and its seed the
    binary seed); the sum and the mask are left to autodiff. Within 4 ulp for soft labels (a
    sum of rounded terms), 2 ulp for hard ones; the gradient within 4 ulp.

    Forward mode needs the twin: the seed is a ``custom_vjp`` rule, so ``jax.grad``, ``jax.vjp``,
    ``jax.vmap`` and ``jax.hessian`` (forward over reverse) work, but ``jax.jvp`` and ``jax.jacfwd``
    raise; use ``jaxloss.forward.sigmoid_multilabel_cross_entropy`` (the same seed as a
    ``custom_jvp`` rule) for those.

    Args:
      logits: floating logits with labels along ``axis``.
      labels: labels in [0, 1], broadcastable with ``logits``.
      axis: the label axis or axes (``None``: every axis); the article's layout is ``axis=0``.
      where: optional boolean mask of the labels (the shape of ``logits``) or of the examples
        (the batch shape); dropped labels cost 0 and get a zero gradient.
      label_smoothing: ε in [0, 1]: the labels become (1 - ε) y + ε/2, as in Keras.
      weights: per-element weights, broadcastable to the logits.
      pos_weight: the weight of the positive terms, broadcastable to the logits (torch).
      soft_cap: c > 0: the logits pass through c tanh(z/c) first, as in Gemma 2.

    Returns:
      The loss of each example: the broadcast shape without ``axis``.

    Examples:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> logits = jnp.array([[0.0, 0.0], [20.0, -20.0]])
      >>> labels = jnp.array([[1.0, 0.0], [1.0, 0.0]])
      >>> print(jaxloss.sigmoid_multilabel_cross_entropy(logits, labels))
      [1.3862944e+00 4.1223074e-09]

    References:
      J. Lalin, "Feedforward Neural Networks in Depth, Part 3: Cost Functions" (2021), the
      multi-label cost. ``optax.losses.sigmoid_binary_cross_entropy(...).sum(axis)``.
    """
    options = {"label_smoothing": label_smoothing, "weights": weights, "pos_weight": pos_weight, "soft_cap": soft_cap}
    z, y, aux = _prepare(logits, labels, options)
    return summed_over(_sigmoid_cross_entropy, z, y, aux, axis, where, "logits", 0.0)


def summed_over(
    rule: Rule,
    x: jax.Array,
    y: jax.Array,
    aux: Any,
    axis: int | tuple[int, ...] | None,
    where: jax.typing.ArrayLike | None,
    input_name: str,
    neutral: float,
) -> jax.Array:
    """The element-wise cost ``rule`` summed over ``axis``, the elements that ``where`` drops left out.

    Dropped elements get a finite stand-in (``neutral``) first, so that a NaN there cannot leak
    into the gradients.
    """
    axes = _checks.canonical_axes(axis, x.ndim, input_name)
    mask = _checks.canonical_where(where, x.shape, axes)
    if mask is not None:
        x = jnp.where(mask, x, neutral)
        y = jnp.where(mask, y, 0.0)
        mask = jnp.broadcast_to(mask, x.shape)
    if current_way() == NORM:  # jaxloss.grad_norms: the norm of the element-wise seeds over axis
        return rule.grad_norm(x, y, aux, (), over=axes, where=mask)
    if mask is None:
        return jnp.sum(rule(x, y, aux, ()), axis=axes)
    return jnp.sum(jnp.where(mask, rule(x, y, aux, ()), 0.0), axis=axes)


def sigmoid_focal_loss(
    logits: jax.typing.ArrayLike,
    labels: jax.typing.ArrayLike,
    *,
    alpha: jax.typing.ArrayLike | None = None,
    gamma: jax.typing.ArrayLike = 2.0,
) -> jax.Array:
    """Element-wise sigmoid focal loss: the cross-entropy scaled down where the prediction is right.

    .. math::
      \\ell(z, y) = a_t\\, (1 - p_t)^\\gamma\\, \\mathrm{ce}(z, y), \\qquad
      1 - p_t = (1 - y)\\,\\sigma(z) + y\\,\\sigma(-z), \\qquad
      a_t = \\alpha y + (1 - \\alpha)(1 - y)

    with :math:`\\mathrm{ce}` the sigmoid cross-entropy (:func:`sigmoid_binary_cross_entropy`).
    :math:`(1 - p_t)^\\gamma` is formed in log space with the exact part of its exponent carried
    separately, so confident rows keep their digits; the seeds never form
    :math:`(1 - p_t)^{\\gamma - 1}`, so they are finite for :math:`\\gamma < 1` and at any
    finite logit. Infinite logits take their limits.

    Forward mode needs the twin: the seed is a ``custom_vjp`` rule, so ``jax.grad``, ``jax.vjp``,
    ``jax.vmap`` and ``jax.hessian`` (forward over reverse) work, but ``jax.jvp`` and ``jax.jacfwd``
    raise; use ``jaxloss.forward.sigmoid_focal_loss`` (the same seed as a ``custom_jvp`` rule) for
    those.

    Args:
      logits: floating logits, any shape.
      labels: labels in [0, 1], hard or soft, broadcastable with ``logits``.
      alpha: the weight of the positive class, in [0, 1], a scalar or broadcastable to the
        logits; ``None`` (the default) weighs both classes 1.
      gamma: the focusing exponent γ ≥ 0, a scalar or broadcastable to the logits; γ = 0 is
        the cross-entropy.

    Returns:
      The loss of each element, with the broadcast shape; float32 for float16 and bfloat16 input.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> import jaxloss
      >>> logits, labels = jnp.array([0.0, 20.0, -20.0]), jnp.array([1.0, 1.0, 1.0])
      >>> print(jaxloss.sigmoid_focal_loss(logits, labels))
      [1.732868e-01 8.756511e-27 2.000000e+01]
      >>> print(jax.grad(lambda z: jaxloss.sigmoid_focal_loss(z, labels, gamma=0.5).sum())(logits))
      [-4.7608566e-01 -1.4036435e-13 -1.0000000e+00]

    References:
      T.-Y. Lin et al., "Focal Loss for Dense Object Detection" (2017).
      ``optax.losses.sigmoid_focal_loss``; torchvision's ``sigmoid_focal_loss``.
    """
    z, y, dtype = stored_pair(logits, labels, "logits")
    computed = jax.ShapeDtypeStruct(z.shape, dtype)
    gamma_array = _options.bounded_array(gamma, "gamma", computed, 0.0, np.inf)
    alpha_array = None if alpha is None else _options.bounded_array(alpha, "alpha", computed, 0.0, 1.0)
    return _focal_cost(z, y, FocalAux(alpha_array, gamma_array), ())
