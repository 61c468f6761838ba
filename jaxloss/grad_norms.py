"""Per-example gradient norms in closed form: :math:`\\lVert \\partial\\ell_i/\\partial z_i \\rVert_2` for each cost.

Each function has its cost's name, arguments, options, checks and errors, and returns, in
place of the loss of each example, the Euclidean norm of that loss's gradient with respect to
the cost's first argument, over the axes the cost reduces (element-wise costs: the magnitude
:math:`|\\partial\\ell/\\partial z|` of each element). It is the norm of the closed-form seed of
:mod:`jaxloss.seeds`, formed from the cost's own row statistics in two more passes over the
classes: the largest magnitude, then the sum of squares scaled by its power
of two. No per-example gradient is stored, no square underflows or overflows, and at the label
the seed is :math:`-R/S` (the other classes' share), not :math:`p_l - 1`, so a confident row
keeps its digits: for integer labels without options,

.. math::
  \\lVert \\operatorname{softmax}(z) - e_l \\rVert_2
  = \\sqrt{\\textstyle (R/S)^2 + \\sum_{j \\ne l} p_j^2},

where :math:`\\sum_j p_j^2 - 2 p_l + 1` would lose every digit. Masked examples (``where``,
``ignore_index``) give 0, and NaN in gives NaN out.

Uses: the EL2N score of "Deep Learning on a Data Diet" is
``softmax_cross_entropy_with_integer_labels`` here without options; the norm of a linear output
layer's per-example gradient is this norm times :math:`\\sqrt{\\lVert h_i \\rVert^2 + 1}` (with a bias).

Examples:
  >>> import jax.numpy as jnp
  >>> from jaxloss import grad_norms
  >>> logits = jnp.array([[30.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
  >>> print(grad_norms.softmax_cross_entropy_with_integer_labels(logits, jnp.array([0, 2])))
  [2.2921403e-13 8.1649661e-01]

References:
  M. Paul, S. Ganguli and G. K. Dziugaite, "Deep Learning on a Data Diet: Finding Important
  Examples Early in Training" (2021): EL2N and GraNd. J. Lalin, "Feedforward Neural Networks in
  Depth, Part 3: Cost Functions" (2021): the seeds.
"""

from __future__ import annotations

import jax

from jaxloss import _divergence, _rules, _sigmoid, _softmax

__all__ = [
    "kl_divergence",
    "kl_divergence_with_log_targets",
    "poly_loss_cross_entropy",
    "sigmoid_binary_cross_entropy",
    "sigmoid_focal_loss",
    "sigmoid_multilabel_cross_entropy",
    "softmax_cross_entropy",
    "softmax_cross_entropy_with_integer_labels",
]

Axis = int | tuple[int, ...] | None


def softmax_cross_entropy_with_integer_labels(
    logits: jax.typing.ArrayLike,
    labels: jax.typing.ArrayLike,
    axis: Axis = -1,
    where: jax.typing.ArrayLike | None = None,
    *,
    label_smoothing: float | jax.typing.ArrayLike = 0.0,
    weights: jax.typing.ArrayLike | None = None,
    ignore_index: int | None = None,
    z_loss: float | jax.typing.ArrayLike = 0.0,
    soft_cap: float | jax.typing.ArrayLike | None = None,
) -> jax.Array:
    """The norm of the gradient of :func:`jaxloss.softmax_cross_entropy_with_integer_labels`, per example.

    .. math::
      \\lVert p - e_l \\rVert_2 = \\sqrt{(R/S)^2 + \\textstyle\\sum_{j \\ne l} p_j^2}

    without options (the EL2N score), with :math:`R/S = 1 - p_l` from the row statistics; with
    them, the norm of that cost's seed with its options (label smoothing, class weights, z-loss,
    and the soft cap's chain factor).

    Args:
      logits: floating logits, shape ``[..., num_classes]`` (classes along ``axis``).
      labels: integer class ids with the batch shape.
      axis, where, label_smoothing, weights, ignore_index, z_loss, soft_cap: as for the cost.

    Returns:
      The norm of each example's gradient with the batch shape (``labels.shape``); 0 for an
      ignored or fully masked example; float32 for 16-bit logits.

    Examples:
      >>> import jax.numpy as jnp
      >>> from jaxloss import grad_norms
      >>> print(grad_norms.softmax_cross_entropy_with_integer_labels(jnp.zeros((1, 4)), jnp.array([1])))
      [0.8660254]

    References:
      Paul et al. (2021), the EL2N score; :func:`jaxloss.seeds.softmax_cross_entropy_with_integer_labels_grad`.
    """
    with _rules.way(_rules.NORM):
        return _softmax.softmax_cross_entropy_with_integer_labels(
            logits,
            labels,
            axis,
            where,
            label_smoothing=label_smoothing,
            weights=weights,
            ignore_index=ignore_index,
            z_loss=z_loss,
            soft_cap=soft_cap,
        )


def softmax_cross_entropy(
    logits: jax.typing.ArrayLike,
    labels: jax.typing.ArrayLike,
    axis: Axis = -1,
    where: jax.typing.ArrayLike | None = None,
    *,
    label_smoothing: float | jax.typing.ArrayLike = 0.0,
    weights: jax.typing.ArrayLike | None = None,
    z_loss: float | jax.typing.ArrayLike = 0.0,
    soft_cap: float | jax.typing.ArrayLike | None = None,
) -> jax.Array:
    """:math:`\\lVert \\partial\\ell/\\partial z \\rVert_2` of :func:`jaxloss.softmax_cross_entropy`, per example.

    .. math::
      \\Bigl\\lVert p \\textstyle\\sum_k y_k - y \\Bigr\\rVert_2

    (:math:`\\lVert p - y \\rVert_2` for labels that sum to one), with the cost's options.

    Args:
      logits: floating logits, shape ``[..., num_classes]``.
      labels: soft labels, broadcastable with ``logits``.
      axis, where, label_smoothing, weights, z_loss, soft_cap: as for the cost.

    Returns:
      The norm of each example's gradient, with the batch shape; float32 for 16-bit logits.

    Examples:
      >>> import jax.numpy as jnp
      >>> from jaxloss import grad_norms
      >>> print(grad_norms.softmax_cross_entropy(jnp.zeros(2), jnp.array([1.0, 0.0])))
      0.70710677

    References:
      :func:`jaxloss.seeds.softmax_cross_entropy_grad`.
    """
    with _rules.way(_rules.NORM):
        return _softmax.softmax_cross_entropy(
            logits,
            labels,
            axis,
            where,
            label_smoothing=label_smoothing,
            weights=weights,
            z_loss=z_loss,
            soft_cap=soft_cap,
        )


def poly_loss_cross_entropy(
    logits: jax.typing.ArrayLike,
    labels: jax.typing.ArrayLike,
    *,
    epsilon: float | jax.typing.ArrayLike = 2.0,
    axis: Axis = -1,
    where: jax.typing.ArrayLike | None = None,
) -> jax.Array:
    """:math:`\\lVert \\partial\\ell/\\partial z \\rVert_2` of :func:`jaxloss.poly_loss_cross_entropy`, per example.

    .. math::
      \\Bigl\\lVert p \\textstyle\\sum_j y_j c_j - y \\odot c \\Bigr\\rVert_2, \\qquad c_j = 1 + \\epsilon p_j

    Args:
      logits: floating logits, shape ``[..., num_classes]``.
      labels: soft labels, broadcastable with ``logits``.
      epsilon, axis, where: as for the cost.

    Returns:
      The norm of each example's gradient, with the batch shape; float32 for 16-bit logits.

    Examples:
      >>> import jax.numpy as jnp
      >>> from jaxloss import grad_norms
      >>> print(grad_norms.poly_loss_cross_entropy(jnp.zeros(2), jnp.array([1.0, 0.0]), epsilon=0.0))
      0.70710677

    References:
      Z. Leng et al., "PolyLoss" (2022); :func:`jaxloss.seeds.poly_loss_cross_entropy_grad`.
    """
    with _rules.way(_rules.NORM):
        return _softmax.poly_loss_cross_entropy(logits, labels, epsilon=epsilon, axis=axis, where=where)


def sigmoid_multilabel_cross_entropy(
    logits: jax.typing.ArrayLike,
    labels: jax.typing.ArrayLike,
    axis: Axis = -1,
    where: jax.typing.ArrayLike | None = None,
    *,
    label_smoothing: float | jax.typing.ArrayLike = 0.0,
    weights: jax.typing.ArrayLike | None = None,
    pos_weight: jax.typing.ArrayLike | None = None,
    soft_cap: float | jax.typing.ArrayLike | None = None,
) -> jax.Array:
    """The norm of the gradient of :func:`jaxloss.sigmoid_multilabel_cross_entropy`, per example.

    .. math::
      \\lVert \\sigma(z) - y \\rVert_2

    over the labels that ``where`` keeps, with the cost's options; :math:`\\sigma(z) - y` is the
    seed :math:`-y\\,\\sigma(-z) + (1 - y)\\,\\sigma(z)`, exact on both tails.

    Args:
      logits: floating logits, shape ``[..., num_labels]``.
      labels: targets in [0, 1], broadcastable with ``logits``.
      axis, where, label_smoothing, weights, pos_weight, soft_cap: as for the cost.

    Returns:
      The norm of each example's gradient, with the batch shape; float32 for 16-bit logits.

    Examples:
      >>> import jax.numpy as jnp
      >>> from jaxloss import grad_norms
      >>> print(grad_norms.sigmoid_multilabel_cross_entropy(jnp.zeros((1, 4)), jnp.ones((1, 4))))
      [1.]

    References:
      :func:`jaxloss.seeds.sigmoid_multilabel_cross_entropy_grad`.
    """
    with _rules.way(_rules.NORM):
        return _sigmoid.sigmoid_multilabel_cross_entropy(
            logits,
            labels,
            axis,
            where,
            label_smoothing=label_smoothing,
            weights=weights,
            pos_weight=pos_weight,
            soft_cap=soft_cap,
        )


def kl_divergence(
    log_predictions: jax.typing.ArrayLike,
    targets: jax.typing.ArrayLike,
    axis: Axis = -1,
    where: jax.typing.ArrayLike | None = None,
) -> jax.Array:
    """The norm of the gradient of :func:`jaxloss.kl_divergence`, per example: :math:`\\lVert t \\rVert_2`.

    The gradient with respect to the log-predictions is :math:`-t`, whatever they are.

    Args:
      log_predictions: floating log-probabilities, shape ``[..., num_classes]``.
      targets: probabilities, broadcastable with ``log_predictions``.
      axis, where: as for the cost.

    Returns:
      The norm of each example's gradient, with the batch shape.

    Examples:
      >>> import jax.numpy as jnp
      >>> from jaxloss import grad_norms
      >>> print(grad_norms.kl_divergence(jnp.log(jnp.array([0.5, 0.5])), jnp.array([0.6, 0.8])))
      1.0

    References:
      :func:`jaxloss.seeds.kl_divergence_grad`.
    """
    with _rules.way(_rules.NORM):
        return _divergence.kl_divergence(log_predictions, targets, axis, where)


def kl_divergence_with_log_targets(
    log_predictions: jax.typing.ArrayLike,
    log_targets: jax.typing.ArrayLike,
    axis: Axis = -1,
    where: jax.typing.ArrayLike | None = None,
) -> jax.Array:
    """:math:`\\lVert e^{\\log t} \\rVert_2` of :func:`jaxloss.kl_divergence_with_log_targets`, per example.

    The gradient with respect to the log-predictions is :math:`-e^{\\log t}`.

    Args:
      log_predictions: floating log-probabilities, shape ``[..., num_classes]``.
      log_targets: log-probabilities, broadcastable with ``log_predictions``.
      axis, where: as for the cost.

    Returns:
      The norm of each example's gradient, with the batch shape.

    Examples:
      >>> import jax.numpy as jnp
      >>> from jaxloss import grad_norms
      >>> print(grad_norms.kl_divergence_with_log_targets(jnp.zeros(2), jnp.log(jnp.array([0.6, 0.8]))))
      1.0

    References:
      :func:`jaxloss.seeds.kl_divergence_with_log_targets_grad`.
    """
    with _rules.way(_rules.NORM):
        return _divergence.kl_divergence_with_log_targets(log_predictions, log_targets, axis, where)


def sigmoid_binary_cross_entropy(
    logits: jax.typing.ArrayLike,
    labels: jax.typing.ArrayLike,
    *,
    label_smoothing: float | jax.typing.ArrayLike = 0.0,
    weights: jax.typing.ArrayLike | None = None,
    pos_weight: jax.typing.ArrayLike | None = None,
    soft_cap: float | jax.typing.ArrayLike | None = None,
) -> jax.Array:
    """:math:`|\\partial\\ell/\\partial z|` of :func:`jaxloss.sigmoid_binary_cross_entropy`, element-wise.

    :math:`|\\sigma(z) - y|`, and with the cost's options the magnitude of its seed.

    Args:
      logits: floating logits, any shape.
      labels: targets in [0, 1], broadcastable with ``logits``.
      label_smoothing, weights, pos_weight, soft_cap: as for the cost.

    Returns:
      The magnitude of each element's gradient, with the broadcast shape.

    Examples:
      >>> import jax.numpy as jnp
      >>> from jaxloss import grad_norms
      >>> print(grad_norms.sigmoid_binary_cross_entropy(jnp.array([0.0, 30.0]), jnp.array([1.0, 1.0])))
      [5.000000e-01 9.357623e-14]

    References:
      :func:`jaxloss.seeds.sigmoid_binary_cross_entropy_grad`.
    """
    with _rules.way(_rules.NORM):
        return _sigmoid.sigmoid_binary_cross_entropy(
            logits, labels, label_smoothing=label_smoothing, weights=weights, pos_weight=pos_weight, soft_cap=soft_cap
        )


def sigmoid_focal_loss(
    logits: jax.typing.ArrayLike,
    labels: jax.typing.ArrayLike,
    *,
    alpha: jax.typing.ArrayLike | None = None,
    gamma: jax.typing.ArrayLike = 2.0,
) -> jax.Array:
    """:math:`|\\partial\\ell/\\partial z|` of :func:`jaxloss.sigmoid_focal_loss`, element-wise.

    Args:
      logits: floating logits, any shape.
      labels: targets in [0, 1], broadcastable with ``logits``.
      alpha, gamma: as for the cost.

    Returns:
      The magnitude of each element's gradient, with the broadcast shape.

    Examples:
      >>> import jax.numpy as jnp
      >>> from jaxloss import grad_norms
      >>> print(grad_norms.sigmoid_focal_loss(jnp.array([0.0]), jnp.array([1.0]), gamma=0.0))
      [0.5]

    References:
      T.-Y. Lin et al., "Focal Loss for Dense Object Detection" (2017);
      :func:`jaxloss.seeds.sigmoid_focal_loss_grad`.
    """
    with _rules.way(_rules.NORM):
        return _sigmoid.sigmoid_focal_loss(logits, labels, alpha=alpha, gamma=gamma)
