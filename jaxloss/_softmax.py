"""The softmax costs in logit space: cross-entropy with soft labels and with integer labels."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxloss import _article, _backend, _checks, _compensated, _mesh, _options, _seeds, _stats
from jaxloss._rules import Axes, rule, stored, stored_pair, widen

# --- soft labels: the forward formula --------------------------------------------------------------


def _soft_loss(logits: jax.Array, labels: jax.Array, axes: Axes) -> tuple[jax.Array, _stats.SoftmaxStats]:
    """:math:`\\sum_j y_j (-\\log p_j) = 2 \\sum_j y_j (\\log S / 2 + (M - z_j)/2)`; ``0 log 0 = 0``.

    Each term is non-negative for labels in [0, 1]; the halves keep :math:`M - z_j` from
    overflowing for finite logits such as 3e38 and -3e38. The terms are arithmetic only
    (``_backend``, rule 1), so the sum is one fused reduction. A term is infinite at a ``-inf``
    logit, where :math:`(M - z)/2` is ``+inf``, and at every finite logit of a row whose maximum
    is ``+inf``: there the shift is the largest float, which leaves :math:`(M - z)/2` at least
    :math:`2^{103}` and 0 at the ``+inf`` logits, and a per-row factor of the largest float sends
    the former to ``+inf``; ``times_infinity`` takes ``inf * 0`` as 0.
    """
    stats = _stats.softmax_stats(logits, axes)
    half_gap = _stats.half_gap(logits, stats.max)  # (M - z)/2: +inf at a -inf logit
    half_loss = 0.5 * _stats.log_total(stats) + half_gap  # -log(p)/2, +inf where p = 0
    loss = 2.0 * jnp.sum(_backend.times_infinity(half_loss, labels), axis=axes, keepdims=True)
    loss = jnp.where(_stats.live_rows(stats.max), loss, 0.0)
    return jnp.squeeze(loss, axes), stats


def _soft_loss_with_options(
    capped: jax.Array, labels: jax.Array, options: _options.SoftmaxOptions, axes: Axes
) -> tuple[jax.Array, _stats.SoftmaxStats]:
    """:math:`-\\sum_j y'_j \\log \\operatorname{softmax}(z')_j + \\alpha \\operatorname{lse}(z')^2`, capped logits."""
    loss, stats = _soft_loss(capped, _options.option_labels(capped, labels, options, axes), axes)
    if options.z_loss is not None:
        penalty = options.z_loss * jnp.square(jnp.squeeze(_stats.log_sum_exp(stats), axes))
        loss = loss + jnp.where(jnp.squeeze(_stats.live_rows(stats.max), axes), penalty, 0.0)
    return loss, stats


@rule(reference=_article.softmax_cross_entropy)
def _soft_labels(x: jax.Array, y: jax.Array, options: Any, axes: Axes) -> tuple[jax.Array, Any]:
    logits, labels = widen(x), widen(y)
    if options is None:
        loss, stats = _soft_loss(logits, labels, axes)
    else:
        loss, stats = _soft_loss_with_options(_options.soft_cap_classes(logits, options.cap), labels, options, axes)
    return loss, (x, y, options, stats)


@_soft_labels.defseed
def _soft_seed(residuals: Any, axes: Axes) -> tuple[jax.Array, jax.Array]:
    x, y, options, stats = residuals
    logits, labels = widen(x), widen(y)
    if options is None:
        return (
            _seeds.softmax_cross_entropy_grad_from_stats(logits, labels, stats, axes),
            _seeds.softmax_cross_entropy_labels_grad_from_stats(logits, stats),
        )
    capped = _options.soft_cap_classes(logits, options.cap)
    return _seeds.softmax_options_grads_from_stats(logits, capped, labels, options, stats, axes)


# --- poly-1: the cross-entropy plus epsilon (1 - p_t) ----------------------------------------------


# The residual barrier on accelerators only (``_backend.accelerator_barrier``). XLA-CPU shares
# the forward pass's work with the seed faster (rule 4): at 1024x4096 float32, value_and_grad
# of the mean took 142 ms and 64 MiB of temporaries with a barrier, 106 ms and 32 MiB without;
# optax's 99 ms and 32 MiB (one run, interleaved). XLA-GPU shares the loss's probabilities with
# the seed's row sum through a float32 array (rule 8; 8192x32768 bfloat16, H200: 2.01
# logits-sized arrays with the seed's barrier alone).
@rule(reference=_article.poly_loss_cross_entropy, guard=_backend.accelerator_barrier)
def _poly(x: jax.Array, y: jax.Array, epsilon: jax.Array, axes: Axes) -> tuple[jax.Array, Any]:
    """:math:`2 \\sum_j y_j (\\phi_j / 2)`, with :math:`\\phi_j = -\\log p_j + \\epsilon(1 - p_j)` the label seed.

    :math:`T` is summed from ``_compensated.exp_rounded``: at :math:`\\epsilon = -1` the loss of a
    confident row is about :math:`T^2/2`, which doubles the error of every exponential.
    """
    logits, labels = widen(x), widen(y)
    stats = _stats.softmax_stats(logits, axes, exp=_compensated.exp_rounded)
    half, masked = _seeds.poly_loss_cross_entropy_half_terms_from_stats(logits, stats, epsilon)
    # Where p = 0 (a -inf logit, or a finite one beside +inf) the term is +inf: a zero label
    # adds 0 and a positive one +inf (times_infinity); elsewhere the halves cannot overflow.
    largest = jnp.finfo(logits.dtype).max
    terms = labels * jnp.minimum(half, largest) + _backend.times_infinity(masked, labels)
    loss = 2.0 * jnp.sum(terms, axis=axes, keepdims=True)
    loss = jnp.where(_stats.live_rows(stats.max), loss, 0.0)
    return jnp.squeeze(loss, axes), (x, y, epsilon, stats)


@_poly.defseed
def _poly_seed(residuals: Any, axes: Axes) -> tuple[jax.Array, jax.Array]:
    """The seed in two passes, the row sum :math:`\\sum_j y_j c_j` and then the gradient, each from the stored inputs.

    Both passes need the probabilities. Between them the inputs and the row sum pass through
    ``_backend.accelerator_barrier``, so that on an accelerator the gradient's pass recomputes
    them from the bfloat16 inputs: without it XLA-GPU wrote them in float32 from the row sum's
    reduction and read them back (8192x32768 bfloat16 on the H200, jax 0.10.2: 2.00
    logits-sized arrays with the rule's barrier alone, none with both; ``_backend``, rule 8).
    XLA-CPU shares them, as it did before (rule 4).
    """
    x, y, epsilon, stats = residuals
    row = _seeds.poly_loss_cross_entropy_row_from_stats(widen(x), widen(y), stats, epsilon, axes)
    x, y, row = _backend.accelerator_barrier((x, y, row))
    logits, labels = widen(x), widen(y)
    return (
        _seeds.poly_loss_cross_entropy_grad_from_row(logits, labels, stats, epsilon, row),
        _seeds.poly_loss_cross_entropy_labels_grad_from_stats(logits, stats, epsilon),
    )


# --- integer labels: the forward formula -----------------------------------------------------------


class IntegerAux(NamedTuple):
    """What the integer-label rule takes beside the logits and labels (not differentiated)."""

    where: jax.Array | None  # the classes the normaliser keeps, the logits' shape
    options: _options.SoftmaxOptions | None


# Without the residual barrier (``_backend``, rule 4): XLA then fuses the seed's exponentials
# with the forward pass's row statistics and writes no logits-sized temporary.
@rule(reference=_article.softmax_cross_entropy_with_integer_labels, guard=None)
def _integer_labels(x: jax.Array, labels: jax.Array, aux: IntegerAux, axes: Axes) -> tuple[jax.Array, Any]:
    """:math:`\\operatorname{lse}(z) - z_l = (M - z_l) + \\log1p(T)`, from the label statistics of ``_stats``.

    Without a soft cap the label's logit is gathered from the logits as stored (``stored``), not
    from their float32 copy: XLA-TPU does not fuse the widening into the gather and wrote the
    copy out (bfloat16 on the v5e, jax 0.10.2: 2.00 logits-sized arrays at 8192x32768 and at
    8192x128256, optax's none; none so).
    """
    (axis,) = axes
    options = aux.options
    logits = widen(x)
    capped = logits if options is None else _options.soft_cap_classes(logits, options.cap)
    index = jnp.expand_dims(labels, axis)
    stats = _stats.label_stats(
        capped,
        index,
        axis,
        stored=x if options is None or options.cap is None else None,
        where=aux.where,
        class_weights=None if options is None else options.weights,
        smoothing=options is not None and options.smoothing is not None,
        whole_row=not _mesh.split_along(logits, axis),
    )
    loss, totals = _stats.label_loss(stats, options)
    return jnp.squeeze(loss, axis), (x, labels, aux, totals)


@_integer_labels.defseed
def _integer_seed(residuals: Any, axes: Axes) -> tuple[jax.Array, None]:
    x, labels, aux, totals = residuals
    (axis,) = axes
    options = aux.options
    logits = widen(x)
    capped = logits if options is None else _options.soft_cap_classes(logits, options.cap)
    grad = _seeds.softmax_cross_entropy_with_integer_labels_grad_from_totals(
        logits,
        capped,
        jnp.expand_dims(labels, axis),
        totals,
        options,
        axis,
        where=aux.where,
        class_weights=None if options is None else options.weights,
    )
    return grad, None


def _flatten_class_axes(array: jax.Array, axes: Axes) -> jax.Array:
    batch = [d for d in range(array.ndim) if d not in axes]
    moved = jnp.transpose(array, batch + list(axes))
    return moved.reshape((*moved.shape[: len(batch)], -1))


# --- the public costs ----------------------------------------------------------------------------


def softmax_cross_entropy(
    logits: jax.typing.ArrayLike,
    labels: jax.typing.ArrayLike,
    axis: int | tuple[int, ...] | None = -1,
    where: jax.typing.ArrayLike | None = None,
    *,
    label_smoothing: float | jax.typing.ArrayLike = 0.0,
    weights: jax.typing.ArrayLike | None = None,
    z_loss: float | jax.typing.ArrayLike = 0.0,
    soft_cap: float | jax.typing.ArrayLike | None = None,
) -> jax.Array:
    """Softmax cross-entropy of logits and (soft) labels.

    .. math::
      \\ell(z, y) = -\\sum_j y_j \\log \\operatorname{softmax}(z)_j,
      \\qquad \\frac{\\partial \\ell}{\\partial z} = a \\sum_p y_p - y

    The article's multiclass cost with its softmax output. The seed is the general form: it is
    :math:`a - y` only when the labels sum to one. ``0 log 0 = 0``, so a ``-inf`` logit with a
    zero label is a masked class. The loss is within 4 ulp (a sum of rounded terms over the
    classes), the gradient within 4 ulp of :math:`\\epsilon \\max(|a \\sum y|, |y|)`, allowing the
    rounding of :math:`z - \\max z`; a confident row's :math:`p_l - 1` keeps its digits.

    Forward mode needs the twin: the seed is a ``custom_vjp`` rule, so ``jax.grad``, ``jax.vjp``,
    ``jax.vmap`` and ``jax.hessian`` (forward over reverse) work, but ``jax.jvp`` and ``jax.jacfwd``
    raise; use ``jaxloss.forward.softmax_cross_entropy`` (the same seed as a ``custom_jvp`` rule)
    for those.

    Args:
      logits: floating logits with classes along ``axis``.
      labels: per-class target weights, broadcastable with ``logits``.
      axis: the class axis or axes (``None``: every axis, as in optax); the article's
        classes-by-examples layout is ``axis=0``.
      where: optional boolean mask, optax's meaning: with the shape of the logits it drops
        classes (they get zero probability and a zero gradient); with the batch shape it drops
        examples. A row with nothing kept costs 0.
      label_smoothing: ε in [0, 1]: the labels become (1 - ε) y + ε/C, as in torch, where C
        counts the classes in play (not ``-inf``, not dropped by ``where``).
      weights: per-class weights with the shape of the class axes, ``(C,)``: the loss is
        -Σ_j w_j y_j log p_j, as in torch.
      z_loss: α ≥ 0: adds α logsumexp(z)² per example, as in PaLM.
      soft_cap: c > 0: the logits pass through c tanh(z/c) first, as in Gemma 2; a ``-inf``
        logit (a masked class) stays ``-inf``.

    Returns:
      The loss of each example: the broadcast shape without ``axis``.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> import jaxloss
      >>> logits = jnp.array([[30.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
      >>> labels = jnp.array([[1.0, 0.0, 0.0], [0.5, 0.5, 0.0]])
      >>> print(jaxloss.softmax_cross_entropy(logits, labels))
      [1.8715246e-13 1.0986123e+00]
      >>> print(jax.grad(lambda z: jaxloss.softmax_cross_entropy(z, labels).sum())(logits)[0])
      [-1.8715246e-13  9.3576229e-14  9.3576229e-14]

    References:
      J. Lalin, "Feedforward Neural Networks in Depth, Part 3: Cost Functions" (2021), the
      multiclass cost and dJ/dZ. ``optax.losses.softmax_cross_entropy``; torch's
      ``cross_entropy`` (weights, label smoothing); PaLM (z-loss); Gemma 2 (soft cap).
    """
    z, y, dtype = stored_pair(logits, labels, "logits")
    axes = _checks.canonical_axes(axis, z.ndim, "logits")
    _checks.require_classes(z, axes, "logits")
    computed = jax.ShapeDtypeStruct(z.shape, dtype)
    options = _options.softmax_options(
        computed, axes, label_smoothing=label_smoothing, weights=weights, z_loss=z_loss, soft_cap=soft_cap
    )
    mask = _checks.canonical_where(where, z.shape, axes)
    if mask is not None:
        z = jnp.where(mask, z, -jnp.inf)
        y = jnp.where(mask, y, 0.0)
    return _soft_labels(z, y, options, axes)


def safe_softmax_cross_entropy(logits: jax.typing.ArrayLike, labels: jax.typing.ArrayLike) -> jax.Array:
    """Softmax cross-entropy over the last axis, with ``0 log 0 = 0``.

    .. math::
      \\ell(z, y) = -\\sum_j y_j \\log \\operatorname{softmax}(z)_j,
      \\qquad y_j = 0 \\text{ and } z_j = -\\infty \\;\\Rightarrow\\; y_j \\log p_j = 0,
      \\qquad \\frac{\\partial \\ell}{\\partial z} = \\Big(\\sum_j y_j\\Big) a - y

    optax's name for a softmax cross-entropy that treats ``-inf`` logits with zero labels as
    contributing 0 (a masked class). Every jaxloss softmax cost already does, so this equals
    ``softmax_cross_entropy(logits, labels)`` with its accuracy (4 ulp for the sum over the
    classes); it takes no options.

    Forward mode needs the twin: the seed is a ``custom_vjp`` rule, so ``jax.grad``, ``jax.vjp``,
    ``jax.vmap`` and ``jax.hessian`` (forward over reverse) work, but ``jax.jvp`` and ``jax.jacfwd``
    raise; use ``jaxloss.forward.safe_softmax_cross_entropy`` (the same seed as a ``custom_jvp``
    rule) for those.

    Args:
      logits: floating logits, ``[..., num_classes]``.
      labels: per-class target weights, ``[..., num_classes]`` or broadcastable to the logits'
        shape.

    Returns:
      The loss of each example, ``[...]`` (the logits' shape without the class axis).

    Examples:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> print(jaxloss.safe_softmax_cross_entropy(jnp.array([0.0, -jnp.inf]), jnp.array([1.0, 0.0])))
      0.0

    References:
      ``optax.losses.safe_softmax_cross_entropy``.
    """
    z, y, _ = stored_pair(logits, labels, "logits")
    axes = _checks.canonical_axes(-1, z.ndim, "logits")
    _checks.require_classes(z, axes, "logits")
    return _soft_labels(z, y, None, axes)


def softmax_cross_entropy_with_integer_labels(
    logits: jax.typing.ArrayLike,
    labels: jax.typing.ArrayLike,
    axis: int | tuple[int, ...] | None = -1,
    where: jax.typing.ArrayLike | None = None,
    *,
    label_smoothing: float | jax.typing.ArrayLike = 0.0,
    weights: jax.typing.ArrayLike | None = None,
    ignore_index: int | None = None,
    z_loss: float | jax.typing.ArrayLike = 0.0,
    soft_cap: float | jax.typing.ArrayLike | None = None,
) -> jax.Array:
    """Softmax cross-entropy of logits and integer class labels.

    .. math::
      \\ell(z, l) = \\operatorname{logsumexp}(z) - z_l,
      \\qquad \\frac{\\partial \\ell}{\\partial z} = a - \\operatorname{onehot}(l)

    Computed as :math:`(\\max z - z_l) + \\log1p(T)`, with :math:`R = \\sum_{j \\ne l} e^{z_j - \\max z}`
    summed without the label and :math:`T = R` when the label is an arg-max, and the true-class
    seed :math:`a_l - 1` as :math:`-R/S`: confident predictions keep their digits. The loss is
    within 2 ulp and the gradient within 4 ulp, allowing the rounding of :math:`z - \\max z`.
    Labels outside ``[0, C)`` give NaN. As in optax, ``where`` restricts the normaliser: a label
    whose class is dropped still reads its logit (with or without options).

    Forward mode needs the twin: the seed is a ``custom_vjp`` rule, so ``jax.grad``, ``jax.vjp``,
    ``jax.vmap`` and ``jax.hessian`` (forward over reverse) work, but ``jax.jvp`` and ``jax.jacfwd``
    raise; use ``jaxloss.forward.softmax_cross_entropy_with_integer_labels`` (the same seed as a
    ``custom_jvp`` rule) for those.

    Args:
      logits: floating logits with classes along ``axis``.
      labels: integer class ids of any integer dtype (uint8 with 259 classes is fine), with the
        batch shape (``logits``' shape without ``axis``). With a tuple ``axis``, a label is a
        flat index into the classes' slice, in C order.
      axis: the class axis, or a tuple of axes (``None``: every axis).
      where: optional boolean mask, optax's meaning: with the shape of the logits it drops
        classes from the normaliser; with the batch shape it drops examples. A row with nothing
        kept costs 0.
      label_smoothing: ε in [0, 1]: the labels become (1 - ε) onehot(l) + ε/C, as in torch,
        where C counts the classes in play (not ``-inf``, not dropped by ``where``).
      weights: per-class weights with the shape of the class axes, ``(C,)`` (flattened with a
        tuple ``axis``): the loss is -Σ_j w_j y_j log p_j, as in torch.
      ignore_index: a label value (an int, such as torch's -100) whose examples cost 0 and get a
        zero gradient, as if ``where`` dropped them.
      z_loss: α ≥ 0: adds α logsumexp(z)² per example, as in PaLM.
      soft_cap: c > 0: the logits pass through c tanh(z/c) first, as in Gemma 2; a ``-inf``
        logit (a masked class) stays ``-inf``.

    Returns:
      The loss of each example, with the batch shape.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> import jaxloss
      >>> logits, labels = jnp.array([[30.0, 0.0, 0.0], [0.0, 0.0, 0.0]]), jnp.array([0, 2])
      >>> print(jaxloss.softmax_cross_entropy_with_integer_labels(logits, labels))
      [1.8715246e-13 1.0986123e+00]
      >>> grad = jax.grad(lambda z: jaxloss.softmax_cross_entropy_with_integer_labels(z, labels).sum())(logits)
      >>> print(grad[0])
      [-1.8715246e-13  9.3576229e-14  9.3576229e-14]

    References:
      J. Lalin, "Feedforward Neural Networks in Depth, Part 3: Cost Functions" (2021), the
      multiclass cost with one-hot Y. ``optax.losses.softmax_cross_entropy_with_integer_labels``;
      torch's ``cross_entropy`` (weights, label smoothing, ``ignore_index``); PaLM (z-loss);
      Gemma 2 (soft cap).
    """
    z = _checks.as_array(logits, "logits")
    _checks.require_floating(z, "logits")
    classes = _checks.class_ids(labels)
    axes = _checks.canonical_axes(axis, z.ndim, "logits")
    _checks.require_classes(z, axes, "logits")
    mask = _checks.canonical_where(where, z.shape, axes)
    batch_shape = tuple(n for d, n in enumerate(z.shape) if d not in axes)
    try:
        ok = tuple(np.broadcast_shapes(classes.shape, batch_shape)) == batch_shape
    except ValueError:
        ok = False
    if not ok:
        raise ValueError(
            f"`labels` with shape {classes.shape} must broadcast to the batch shape {batch_shape} "
            f"of `logits` with shape {z.shape} and axis {axis!r}."
        )
    if len(axes) > 1:
        z = _flatten_class_axes(z, axes)
        mask = None if mask is None else _flatten_class_axes(mask, axes)
        axes = (z.ndim - 1,)
    dtype = _checks.compute_dtype(z)
    z = stored(z, dtype, z.shape)
    classes = jnp.broadcast_to(classes, batch_shape)
    computed = jax.ShapeDtypeStruct(z.shape, dtype)
    options = _options.softmax_options(
        computed, axes, label_smoothing=label_smoothing, weights=weights, z_loss=z_loss, soft_cap=soft_cap
    )
    if ignore_index is not None:
        _checks.require_label_value(ignore_index, classes, "ignore_index")
        counts = jnp.expand_dims(classes != ignore_index, axes)
        mask = counts if mask is None else mask & counts
        classes = jnp.where(classes != ignore_index, classes, 0)  # a dead row: its label must only be valid
    if mask is not None:
        mask = jnp.broadcast_to(mask, z.shape)
    return _integer_labels(z, classes, IntegerAux(mask, options), axes)


def poly_loss_cross_entropy(
    logits: jax.typing.ArrayLike,
    labels: jax.typing.ArrayLike,
    *,
    epsilon: float | jax.typing.ArrayLike = 2.0,
    axis: int | tuple[int, ...] | None = -1,
    where: jax.typing.ArrayLike | None = None,
) -> jax.Array:
    """Poly-1 loss: the softmax cross-entropy plus ε times the first term of its Taylor series.

    .. math::
      \\ell(z, y) = \\sum_j y_j \\left[-\\log p_j + \\epsilon (1 - p_j)\\right],
      \\qquad \\frac{\\partial \\ell}{\\partial z_k} = p_k \\sum_j y_j c_j - y_k c_k,
      \\quad c_j = 1 + \\epsilon p_j

    with :math:`p = \\operatorname{softmax}(z)`; for one-hot labels it is
    :math:`-\\log p_t + \\epsilon (1 - p_t)`. :math:`1 - p_t` of a confident row is read from the
    row statistics, not subtracted, and for ε = -1 the loss :math:`-\\log p_t - (1 - p_t)
    \\approx (1 - p_t)^2/2` is summed without cancellation. ``0 log 0 = 0``: a ``-inf`` logit with
    a zero label is a masked class.

    Forward mode needs the twin: the seed is a ``custom_vjp`` rule, so ``jax.grad``, ``jax.vjp``,
    ``jax.vmap`` and ``jax.hessian`` (forward over reverse) work, but ``jax.jvp`` and ``jax.jacfwd``
    raise; use ``jaxloss.forward.poly_loss_cross_entropy`` (the same seed as a ``custom_jvp`` rule)
    for those.

    Args:
      logits: floating logits with classes along ``axis``.
      labels: per-class target weights, broadcastable with ``logits``.
      epsilon: the coefficient ε of the first polynomial term, a real scalar (2 for ImageNet,
        -1 for detection, in the paper).
      axis: the class axis or axes (``None``: every axis).
      where: optional boolean mask, optax's meaning (as in :func:`softmax_cross_entropy`).

    Returns:
      The loss of each example: the broadcast shape without ``axis``.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> import jaxloss
      >>> logits = jnp.array([[8.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
      >>> labels = jnp.array([[1.0, 0.0, 0.0], [0.5, 0.5, 0.0]])
      >>> print(jaxloss.poly_loss_cross_entropy(logits, labels, epsilon=-1.0))
      [2.2486915e-07 4.3194562e-01]

    References:
      Z. Leng et al., "PolyLoss: A Polynomial Expansion Perspective of Classification Loss
      Functions" (2022). ``optax.losses.poly_loss_cross_entropy``.
    """
    z, y, dtype = stored_pair(logits, labels, "logits")
    axes = _checks.canonical_axes(axis, z.ndim, "logits")
    _checks.require_classes(z, axes, "logits")
    eps = _options.real_scalar(epsilon, "epsilon", dtype)
    mask = _checks.canonical_where(where, z.shape, axes)
    if mask is not None:
        z = jnp.where(mask, z, -jnp.inf)
        y = jnp.where(mask, y, 0.0)
    return _poly(z, y, eps, axes)
