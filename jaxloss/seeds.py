"""The closed-form seeds of every cost, as public functions: dJ/dZ and dJ/dA per example.

Each ``*_grad`` function returns the gradient of the **per-example** cost with respect to its
first argument, and each ``*_labels_grad`` function the gradient with respect to the labels.
The article's cost ``J`` is the mean over the ``m`` examples, so its seeds are these divided by
``m``.

================================  ============================================  ===========================
cost                              seed, per example                             article
================================  ============================================  ===========================
sigmoid, logit space              :math:`\\sigma(z) - y`                         dJ/dZ = (A - Y)/m
softmax, logit space              :math:`a \\sum_p y_p - y`                      dJ/dZ = (a sum(y) - y)/m
sigmoid, probability space        :math:`(a - y) / (a (1 - a))`                 dJ/dA
softmax, probability space        :math:`-y / a`                                dJ/dA = -(1/m) y/a
focal (sigmoid)                   :math:`a_t q^\\gamma [(\\sigma(z) - y) + ...]`  beyond the article
poly-1 (softmax)                  :math:`p \\sum_j y_j c_j - y c`                beyond the article
KL, log-predictions               :math:`-t`                                    beyond the article
================================  ============================================  ===========================

The math of each seed is written once, and each cost's rule declares it beside the cost's
forward formula (the docs' "Where things live" page names the files). These functions evaluate
exactly that seed through the cost's rule (the cotangent of every example is 1), so they take
the same arguments, options, masks and checks as the cost, and raise the same errors. Gradients
come back in the dtype of the argument they are taken for.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from jaxloss import _checks, _divergence, _options, _probability, _seeds, _sigmoid, _softmax, _stats

__all__ = [
    "binary_cross_entropy_grad",
    "binary_cross_entropy_labels_grad",
    "categorical_cross_entropy_grad",
    "categorical_cross_entropy_labels_grad",
    "kl_divergence_grad",
    "kl_divergence_labels_grad",
    "kl_divergence_with_log_targets_grad",
    "kl_divergence_with_log_targets_labels_grad",
    "multilabel_cross_entropy_grad",
    "poly_loss_cross_entropy_grad",
    "poly_loss_cross_entropy_labels_grad",
    "sigmoid_binary_cross_entropy_grad",
    "sigmoid_binary_cross_entropy_labels_grad",
    "sigmoid_focal_loss_grad",
    "sigmoid_focal_loss_labels_grad",
    "sigmoid_multilabel_cross_entropy_grad",
    "soft_cap_grad",
    "softmax_cross_entropy_grad",
    "softmax_cross_entropy_labels_grad",
    "softmax_cross_entropy_with_integer_labels_grad",
    "z_loss_grad",
]


def _seed_of(cost: Callable[..., jax.Array], argnum: int, args: tuple[Any, ...], kwargs: dict[str, Any]) -> jax.Array:
    """The seed of ``cost`` for argument ``argnum``: the vector-Jacobian product with a cotangent of ones."""
    names = list(inspect.signature(cost).parameters)  # the cost's own names, for the messages
    inputs = list(args)
    inputs[argnum] = _checks.as_array(inputs[argnum], names[argnum])
    if argnum == 1 and not jnp.issubdtype(inputs[1].dtype, jnp.floating):
        _checks.require_real(inputs[1], names[1])
        inputs[1] = inputs[1].astype(_checks.compute_dtype(_checks.as_array(inputs[0], names[0])))

    def of(value: jax.Array) -> jax.Array:
        return cost(*inputs[:argnum], value, *inputs[argnum + 1 :], **kwargs)

    loss, pullback = jax.vjp(of, inputs[argnum])
    return pullback(jnp.ones_like(loss))[0]


def sigmoid_binary_cross_entropy_grad(
    logits: jax.typing.ArrayLike,
    labels: jax.typing.ArrayLike,
    *,
    label_smoothing: float | jax.typing.ArrayLike = 0.0,
    weights: jax.typing.ArrayLike | None = None,
    pos_weight: jax.typing.ArrayLike | None = None,
    soft_cap: float | jax.typing.ArrayLike | None = None,
) -> jax.Array:
    """dJ/dZ of :func:`jaxloss.sigmoid_binary_cross_entropy`, per element: :math:`\\sigma(z) - y`.

    .. math::
      \\frac{\\partial \\ell}{\\partial z} = \\sigma(z) - y

    The gradient of the summed per-element loss with respect to the logits: the article's
    dJ/dZ = (A - Y)/m is this divided by the number of examples m. With the options it is

    .. math::
      \\frac{\\partial \\ell}{\\partial z}
      = w \\left[(1 - y')\\, \\sigma(z') - w_+ y'\\, \\sigma(-z')\\right] \\left(1 - \\tanh^2(z / c)\\right),
      \\qquad y' = (1 - \\epsilon)\\, y + \\epsilon / 2, \\quad z' = c \\tanh(z / c)

    with :math:`w` the weights, :math:`w_+` the positive weight, :math:`\\epsilon` the label
    smoothing and :math:`c` the soft cap (an option that is off drops its factor). The seed is
    evaluated through the cost's own rule, so it takes the cost's arguments, checks and errors.

    Args:
      logits: floating logits, shape ``[...]``.
      labels: labels in [0, 1], hard or soft, broadcastable to ``[...]``.
      label_smoothing: ε in [0, 1]: the labels become (1 - ε) y + ε/2, as in Keras.
      weights: per-element weights :math:`w`, broadcastable to ``[...]``.
      pos_weight: the weight :math:`w_+` of the positive term, broadcastable to ``[...]``
        (torch's ``pos_weight``).
      soft_cap: c > 0: the logits pass through c tanh(z/c) first, as in Gemma 2.

    Returns:
      dJ/dZ with the shape and dtype of ``logits`` (computed in float32 for 16-bit logits, then
      rounded), summed over any axes along which ``labels`` broadcasts ``logits``.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> import jaxloss
      >>> from jaxloss import seeds
      >>> grad = seeds.sigmoid_binary_cross_entropy_grad(jnp.array([0.0, 20.0]), jnp.array([1.0, 1.0]))
      >>> print([f"{g:.6e}" for g in grad.tolist()])
      ['-5.000000e-01', '-2.061154e-09']
      >>> z, y = jnp.array([-1.0, 0.5, 3.0]), jnp.array([0.0, 1.0, 1.0])
      >>> options = dict(label_smoothing=0.1, pos_weight=2.0, soft_cap=5.0)
      >>> grad = seeds.sigmoid_binary_cross_entropy_grad(z, y, **options)
      >>> print(grad)
      [ 0.17789479 -0.680141   -0.05301715]
      >>> want = jax.grad(lambda v: jaxloss.sigmoid_binary_cross_entropy(v, y, **options).sum())(z)
      >>> bool(jnp.allclose(grad, want))
      True

    References:
      J. Lalin, "Feedforward Neural Networks in Depth, Part 3: Cost Functions" (2021), the binary
      cost and dJ/dZ = (A - Y)/m. C. Szegedy et al., "Rethinking the Inception Architecture for
      Computer Vision" (2016), label smoothing. Gemma Team, "Gemma 2: Improving Open Language
      Models at a Practical Size" (2024), the soft cap.
    """
    options = {"label_smoothing": label_smoothing, "weights": weights, "pos_weight": pos_weight, "soft_cap": soft_cap}
    return _seed_of(_sigmoid.sigmoid_binary_cross_entropy, 0, (logits, labels), options)


def sigmoid_binary_cross_entropy_labels_grad(
    logits: jax.typing.ArrayLike,
    labels: jax.typing.ArrayLike,
    *,
    label_smoothing: float | jax.typing.ArrayLike = 0.0,
    weights: jax.typing.ArrayLike | None = None,
    pos_weight: jax.typing.ArrayLike | None = None,
    soft_cap: float | jax.typing.ArrayLike | None = None,
) -> jax.Array:
    """dJ/dY of :func:`jaxloss.sigmoid_binary_cross_entropy`, per element: :math:`-z`.

    .. math::
      \\frac{\\partial \\ell}{\\partial y} = \\log \\sigma(-z) - \\log \\sigma(z) = -z

    The gradient of the summed per-element loss with respect to the labels (for soft labels
    produced by a model, as in distillation). With the options it is

    .. math::
      \\frac{\\partial \\ell}{\\partial y}
      = (1 - \\epsilon)\\, w \\left[\\log \\sigma(-z') - w_+ \\log \\sigma(z')\\right],
      \\qquad z' = c \\tanh(z / c)

    with the notation of :func:`sigmoid_binary_cross_entropy_grad`. Integer or boolean labels
    are taken as floats: their gradient comes back in the dtype the cost computes in.

    Args:
      logits: floating logits, shape ``[...]``.
      labels: labels in [0, 1], hard or soft, broadcastable to ``[...]``.
      label_smoothing: ε in [0, 1]: the labels become (1 - ε) y + ε/2, as in Keras.
      weights: per-element weights :math:`w`, broadcastable to ``[...]``.
      pos_weight: the weight :math:`w_+` of the positive term, broadcastable to ``[...]``.
      soft_cap: c > 0: the logits pass through c tanh(z/c) first, as in Gemma 2.

    Returns:
      dJ/dY with the shape of ``labels``: their dtype when they are floating, otherwise the
      widest floating dtype of the inputs and at least float32.

    Examples:
      >>> import jax.numpy as jnp
      >>> from jaxloss import seeds
      >>> print(seeds.sigmoid_binary_cross_entropy_labels_grad(jnp.array([2.0, -1.0]), jnp.array([1.0, 0.0])))
      [-2.  1.]
      >>> z, y = jnp.array([2.0, -1.0]), jnp.array([1.0, 0.0])
      >>> print(seeds.sigmoid_binary_cross_entropy_labels_grad(z, y, weights=jnp.array([1.0, 0.5])))
      [-2.   0.5]

    References:
      J. Lalin, "Feedforward Neural Networks in Depth, Part 3: Cost Functions" (2021), the binary
      cost (its gradient with respect to the labels is beyond the article). C. Szegedy et al.,
      "Rethinking the Inception Architecture for Computer Vision" (2016), label smoothing. Gemma
      Team, "Gemma 2: Improving Open Language Models at a Practical Size" (2024), the soft cap.
    """
    options = {"label_smoothing": label_smoothing, "weights": weights, "pos_weight": pos_weight, "soft_cap": soft_cap}
    return _seed_of(_sigmoid.sigmoid_binary_cross_entropy, 1, (logits, labels), options)


def sigmoid_multilabel_cross_entropy_grad(
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
    """dJ/dZ of :func:`jaxloss.sigmoid_multilabel_cross_entropy`: label by label, :math:`\\sigma(z) - y`.

    .. math::
      \\frac{\\partial \\ell}{\\partial z_j} = \\sigma(z_j) - y_j

    The gradient of the summed per-example loss with respect to the logits; the article's
    dJ/dZ is this divided by the number of examples m. Each label's seed is the binary seed (with
    the options, the formula of :func:`sigmoid_binary_cross_entropy_grad`), and 0 where
    ``where`` drops the label or the example. There is no labels' seed for this cost: take
    ``jax.grad`` of the cost's sum with respect to the labels.

    Args:
      logits: floating logits, shape ``[..., num_labels]`` (the labels along ``axis``).
      labels: labels in [0, 1], broadcastable to ``[..., num_labels]``.
      axis: the label axis or axes (``None``: every axis); the article's layout is ``axis=0``.
      where: optional boolean mask of the labels (shape ``[..., num_labels]``) or of the
        examples (the batch shape ``[...]``).
      label_smoothing: ε in [0, 1]: the labels become (1 - ε) y + ε/2, as in Keras.
      weights: per-element weights, broadcastable to ``[..., num_labels]``.
      pos_weight: the weight of the positive terms, broadcastable to ``[..., num_labels]``.
      soft_cap: c > 0: the logits pass through c tanh(z/c) first, as in Gemma 2.

    Returns:
      dJ/dZ with the shape and dtype of ``logits`` (computed in float32 for 16-bit logits).

    Examples:
      >>> import jax.numpy as jnp
      >>> from jaxloss import seeds
      >>> print(seeds.sigmoid_multilabel_cross_entropy_grad(jnp.array([[0.0, 0.0]]), jnp.array([[1.0, 0.0]])))
      [[-0.5  0.5]]
      >>> z, y = jnp.array([[0.0, 0.0]]), jnp.array([[1.0, 0.0]])
      >>> print(seeds.sigmoid_multilabel_cross_entropy_grad(z, y, pos_weight=3.0))
      [[-1.5  0.5]]

    References:
      J. Lalin, "Feedforward Neural Networks in Depth, Part 3: Cost Functions" (2021), the
      multi-label cost and dJ/dZ = (A - Y)/m. C. Szegedy et al., "Rethinking the Inception
      Architecture for Computer Vision" (2016), label smoothing. Gemma Team, "Gemma 2: Improving
      Open Language Models at a Practical Size" (2024), the soft cap.
    """
    options = {"label_smoothing": label_smoothing, "weights": weights, "pos_weight": pos_weight, "soft_cap": soft_cap}
    return _seed_of(_sigmoid.sigmoid_multilabel_cross_entropy, 0, (logits, labels, axis, where), options)


def softmax_cross_entropy_grad(
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
    """dJ/dZ of :func:`jaxloss.softmax_cross_entropy`, per example: :math:`a \\sum_p y_p - y`.

    .. math::
      \\frac{\\partial \\ell}{\\partial z} = a \\sum_p y_p - y, \\qquad a = \\operatorname{softmax}(z)

    The gradient of the summed per-example loss with respect to the logits; the article's
    dJ/dZ is this divided by the number of examples m. It is :math:`a - y` only when the labels
    sum to one. With the options it is

    .. math::
      \\frac{\\partial \\ell}{\\partial z}
      = \\left(a \\sum_p y'_p - y' + 2 \\alpha \\operatorname{lse}(z')\\, a\\right) \\left(1 - \\tanh^2(z / c)\\right)

    with :math:`y' = w \\odot ((1 - \\epsilon) y + \\epsilon / C)`, :math:`z' = c \\tanh(z/c)`,
    :math:`a = \\operatorname{softmax}(z')` and :math:`\\alpha` the z-loss. A class dropped by
    ``where`` or with a ``-inf`` logit gets 0.

    Args:
      logits: floating logits, shape ``[..., num_classes]`` (the classes along ``axis``).
      labels: per-class target weights, broadcastable to ``[..., num_classes]``.
      axis: the class axis or axes (``None``: every axis); the article's layout is ``axis=0``.
      where: optional boolean mask, optax's meaning: shape ``[..., num_classes]`` drops classes,
        the batch shape ``[...]`` drops examples.
      label_smoothing: ε in [0, 1]: the labels become (1 - ε) y + ε/C, with C the classes in play.
      weights: per-class weights :math:`w`, shape ``[num_classes]``.
      z_loss: α ≥ 0: the loss gains α logsumexp(z)² per example, as in PaLM.
      soft_cap: c > 0: the logits pass through c tanh(z/c) first, as in Gemma 2.

    Returns:
      dJ/dZ with the shape and dtype of ``logits`` (computed in float32 for 16-bit logits).

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> import jaxloss
      >>> from jaxloss import seeds
      >>> print(seeds.softmax_cross_entropy_grad(jnp.zeros(4), jnp.array([0.5, 0.5, 0.0, 0.0])))
      [-0.25 -0.25  0.25  0.25]
      >>> z, y = jnp.array([[2.0, 0.0, -1.0]]), jnp.array([[1.0, 0.0, 0.0]])
      >>> options = dict(label_smoothing=0.1, z_loss=1e-4, soft_cap=30.0)
      >>> grad = seeds.softmax_cross_entropy_grad(z, y, **options)
      >>> want = jax.grad(lambda v: jaxloss.softmax_cross_entropy(v, y, **options).sum())(z)
      >>> bool(jnp.allclose(grad, want))
      True

    References:
      J. Lalin, "Feedforward Neural Networks in Depth, Part 3: Cost Functions" (2021), the
      multiclass cost and dJ/dZ. C. Szegedy et al., "Rethinking the Inception Architecture for
      Computer Vision" (2016), label smoothing. A. Chowdhery et al., "PaLM: Scaling Language
      Modeling with Pathways" (2022), the z-loss. Gemma Team, "Gemma 2: Improving Open Language
      Models at a Practical Size" (2024), the soft cap.
    """
    options = {"label_smoothing": label_smoothing, "weights": weights, "z_loss": z_loss, "soft_cap": soft_cap}
    return _seed_of(_softmax.softmax_cross_entropy, 0, (logits, labels, axis, where), options)


def softmax_cross_entropy_labels_grad(
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
    """dJ/dY of :func:`jaxloss.softmax_cross_entropy`, per example: :math:`-\\log a`.

    .. math::
      \\frac{\\partial \\ell}{\\partial y} = -\\log \\operatorname{softmax}(z)

    The gradient of the summed per-example loss with respect to the labels (for soft labels
    produced by a model, as in distillation). With the options it is
    :math:`-(1 - \\epsilon)\\, w \\odot \\log \\operatorname{softmax}(z')`, :math:`z' = c \\tanh(z/c)`;
    the z-loss does not depend on the labels. A class with a ``-inf`` logit (a masked class) or
    dropped by ``where`` gets 0, not :math:`+\\infty`. Integer or boolean labels are taken as
    floats: their gradient comes back in the dtype the cost computes in.

    Args:
      logits: floating logits, shape ``[..., num_classes]`` (the classes along ``axis``).
      labels: per-class target weights, broadcastable to ``[..., num_classes]``.
      axis: the class axis or axes (``None``: every axis).
      where: optional boolean mask, optax's meaning: shape ``[..., num_classes]`` drops classes,
        the batch shape ``[...]`` drops examples.
      label_smoothing: ε in [0, 1]: the labels become (1 - ε) y + ε/C, with C the classes in play.
      weights: per-class weights :math:`w`, shape ``[num_classes]``.
      z_loss: α ≥ 0: the loss gains α logsumexp(z)² per example (no term in this seed).
      soft_cap: c > 0: the logits pass through c tanh(z/c) first, as in Gemma 2.

    Returns:
      dJ/dY with the shape of ``labels``: their dtype when they are floating, otherwise the
      widest floating dtype of the inputs and at least float32.

    Examples:
      >>> import jax.numpy as jnp
      >>> from jaxloss import seeds
      >>> print(seeds.softmax_cross_entropy_labels_grad(jnp.zeros(2), jnp.array([1.0, 0.0])))
      [0.6931472 0.6931472]
      >>> print(seeds.softmax_cross_entropy_labels_grad(jnp.zeros(2), jnp.array([1.0, 0.0]), label_smoothing=0.1))
      [0.62383246 0.62383246]

    References:
      J. Lalin, "Feedforward Neural Networks in Depth, Part 3: Cost Functions" (2021), the
      multiclass cost (its gradient with respect to the labels is beyond the article).
      C. Szegedy et al., "Rethinking the Inception Architecture for Computer Vision" (2016), label
      smoothing. Gemma Team, "Gemma 2: Improving Open Language Models at a Practical Size" (2024),
      the soft cap.
    """
    options = {"label_smoothing": label_smoothing, "weights": weights, "z_loss": z_loss, "soft_cap": soft_cap}
    return _seed_of(_softmax.softmax_cross_entropy, 1, (logits, labels, axis, where), options)


def softmax_cross_entropy_with_integer_labels_grad(
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
    """dJ/dZ of :func:`jaxloss.softmax_cross_entropy_with_integer_labels`: :math:`a - \\operatorname{onehot}(l)`.

    .. math::
      \\frac{\\partial \\ell}{\\partial z} = a - \\operatorname{onehot}(l), \\qquad a = \\operatorname{softmax}(z)

    The gradient of the summed per-example loss with respect to the logits; the article's
    dJ/dZ is this divided by the number of examples m. At the label :math:`a_l - 1 = -R/S`, with
    :math:`R` the sum of the other classes' exponentials: a confident prediction keeps its
    digits. With the options it is the seed of :func:`softmax_cross_entropy_grad` with
    :math:`y = \\operatorname{onehot}(l)`, and 0 for the examples whose label is
    ``ignore_index``. A label outside ``[0, num_classes)`` (other than ``ignore_index``) gives
    NaN. Integer labels have no gradient, so this cost has no labels' seed.

    Args:
      logits: floating logits, shape ``[..., num_classes]`` (the classes along ``axis``).
      labels: integer class ids, shape ``[...]`` (the batch shape); with a tuple ``axis``, a
        flat index into the classes' slice, in C order.
      axis: the class axis or axes (``None``: every axis).
      where: optional boolean mask, optax's meaning: shape ``[..., num_classes]`` drops classes
        from the normaliser, the batch shape ``[...]`` drops examples.
      label_smoothing: ε in [0, 1]: the labels become (1 - ε) onehot(l) + ε/C, with C the
        classes in play.
      weights: per-class weights, shape ``[num_classes]``.
      ignore_index: a label value (such as torch's -100) whose examples get a zero gradient.
      z_loss: α ≥ 0: the loss gains α logsumexp(z)² per example, as in PaLM.
      soft_cap: c > 0: the logits pass through c tanh(z/c) first, as in Gemma 2.

    Returns:
      dJ/dZ with the shape and dtype of ``logits`` (computed in float32 for 16-bit logits).

    Examples:
      >>> import jax.numpy as jnp
      >>> from jaxloss import seeds
      >>> grad = seeds.softmax_cross_entropy_with_integer_labels_grad(jnp.array([30.0, 0.0]), jnp.array(0))
      >>> print([f"{g:.6e}" for g in grad.tolist()])
      ['-9.357623e-14', '9.357623e-14']
      >>> labels = jnp.array([0, -100])
      >>> print(seeds.softmax_cross_entropy_with_integer_labels_grad(jnp.zeros((2, 2)), labels, ignore_index=-100))
      [[-0.5  0.5]
       [ 0.   0. ]]

    References:
      J. Lalin, "Feedforward Neural Networks in Depth, Part 3: Cost Functions" (2021), the
      multiclass cost with one-hot Y and dJ/dZ. C. Szegedy et al., "Rethinking the Inception
      Architecture for Computer Vision" (2016), label smoothing. A. Chowdhery et al., "PaLM:
      Scaling Language Modeling with Pathways" (2022), the z-loss. Gemma Team, "Gemma 2:
      Improving Open Language Models at a Practical Size" (2024), the soft cap.
    """
    options = {
        "label_smoothing": label_smoothing,
        "weights": weights,
        "ignore_index": ignore_index,
        "z_loss": z_loss,
        "soft_cap": soft_cap,
    }
    return _seed_of(_softmax.softmax_cross_entropy_with_integer_labels, 0, (logits, labels, axis, where), options)


def binary_cross_entropy_grad(probs: jax.typing.ArrayLike, labels: jax.typing.ArrayLike) -> jax.Array:
    """dJ/dA of :func:`jaxloss.binary_cross_entropy`, per element: :math:`(1-y)/(1-a) - y/a`.

    .. math::
      \\frac{\\partial \\ell}{\\partial a} = \\frac{1 - y}{1 - a} - \\frac{y}{a} = \\frac{a - y}{a (1 - a)}

    The gradient of the summed per-element loss with respect to the probabilities; the
    article's dJ/dA is this divided by the number of examples m. Clamped as the cost is:
    :math:`a` is taken in [tiny, 1 - eps/2], so an exact 0 or 1 gives a large finite seed of the
    right sign instead of an infinity; probabilities outside [0, 1] give NaN.

    Args:
      probs: floating probabilities in [0, 1], shape ``[...]``.
      labels: labels in [0, 1], broadcastable to ``[...]``.

    Returns:
      dJ/dA with the shape and dtype of ``probs`` (computed in float32 for 16-bit input).

    Examples:
      >>> import jax.numpy as jnp
      >>> from jaxloss import seeds
      >>> print(seeds.binary_cross_entropy_grad(jnp.array([0.25, 0.5]), jnp.array([1.0, 0.0])))
      [-4.  2.]
      >>> print(seeds.binary_cross_entropy_grad(jnp.array([0.0, 1.0]), jnp.array([1.0, 1.0])))
      [-8.5070592e+37 -1.0000001e+00]

    References:
      J. Lalin, "Feedforward Neural Networks in Depth, Part 3: Cost Functions" (2021), the binary
      cost J(A, Y) and dJ/dA.
    """
    return _seed_of(_probability.binary_cross_entropy, 0, (probs, labels), {})


def binary_cross_entropy_labels_grad(probs: jax.typing.ArrayLike, labels: jax.typing.ArrayLike) -> jax.Array:
    """dJ/dY of :func:`jaxloss.binary_cross_entropy`, per element: :math:`\\log(1-a) - \\log a`.

    .. math::
      \\frac{\\partial \\ell}{\\partial y} = \\log(1 - a) - \\log a

    The gradient of the summed per-element loss with respect to the labels. The logarithms are
    clamped as the cost's are, so an exact 0 or 1 gives a finite value; probabilities outside
    [0, 1] give NaN. Integer or boolean labels are taken as floats.

    Args:
      probs: floating probabilities in [0, 1], shape ``[...]``.
      labels: labels in [0, 1], broadcastable to ``[...]``.

    Returns:
      dJ/dY with the shape of ``labels``: their dtype when they are floating, otherwise the
      widest floating dtype of the inputs and at least float32.

    Examples:
      >>> import jax.numpy as jnp
      >>> from jaxloss import seeds
      >>> print(seeds.binary_cross_entropy_labels_grad(jnp.array([0.25, 0.5]), jnp.array([1.0, 0.0])))
      [1.0986123 0.       ]
      >>> print(seeds.binary_cross_entropy_labels_grad(jnp.array([0.0, 1.0]), jnp.array([1.0, 1.0])))
      [ 87.33655  -16.635532]

    References:
      J. Lalin, "Feedforward Neural Networks in Depth, Part 3: Cost Functions" (2021), the binary
      cost J(A, Y) (its gradient with respect to the labels is beyond the article).
    """
    return _seed_of(_probability.binary_cross_entropy, 1, (probs, labels), {})


def multilabel_cross_entropy_grad(
    probs: jax.typing.ArrayLike,
    labels: jax.typing.ArrayLike,
    axis: int | tuple[int, ...] | None = -1,
    where: jax.typing.ArrayLike | None = None,
) -> jax.Array:
    """dJ/dA of :func:`jaxloss.multilabel_cross_entropy`: label by label, the binary seed.

    .. math::
      \\frac{\\partial \\ell}{\\partial a_j} = \\frac{a_j - y_j}{a_j (1 - a_j)}

    The gradient of the summed per-example loss with respect to the probabilities; the
    article's dJ/dA is this divided by the number of examples m. Clamped as
    :func:`binary_cross_entropy_grad` is, and 0 where ``where`` drops the label or the example.
    There is no labels' seed for this cost: take ``jax.grad`` of the cost's sum with respect to
    the labels.

    Args:
      probs: floating probabilities in [0, 1], shape ``[..., num_labels]`` (the labels along
        ``axis``).
      labels: labels in [0, 1], broadcastable to ``[..., num_labels]``.
      axis: the label axis or axes (``None``: every axis); the article's layout is ``axis=0``.
      where: optional boolean mask of the labels (shape ``[..., num_labels]``) or of the
        examples (the batch shape ``[...]``).

    Returns:
      dJ/dA with the shape and dtype of ``probs`` (computed in float32 for 16-bit input).

    Examples:
      >>> import jax.numpy as jnp
      >>> from jaxloss import seeds
      >>> print(seeds.multilabel_cross_entropy_grad(jnp.array([[0.25, 0.5]]), jnp.array([[1.0, 0.0]])))
      [[-4.  2.]]

    References:
      J. Lalin, "Feedforward Neural Networks in Depth, Part 3: Cost Functions" (2021), the
      multi-label cost J(A, Y) and dJ/dA.
    """
    return _seed_of(_probability.multilabel_cross_entropy, 0, (probs, labels, axis, where), {})


def categorical_cross_entropy_grad(
    probs: jax.typing.ArrayLike,
    labels: jax.typing.ArrayLike,
    axis: int | tuple[int, ...] | None = -1,
    where: jax.typing.ArrayLike | None = None,
) -> jax.Array:
    """dJ/dA of :func:`jaxloss.categorical_cross_entropy`, per example: :math:`-y/a`.

    .. math::
      \\frac{\\partial \\ell}{\\partial a} = -\\frac{y}{a}

    The gradient of the summed per-example loss with respect to the probabilities; the
    article's dJ/dA = -(1/m) Y/A is this divided by the number of examples m. Clamped as the
    cost is: :math:`a` is raised to the smallest normal number, so an exact 0 with a positive
    label gives a large finite negative seed; probabilities outside [0, 1] give NaN. A class
    dropped by ``where`` gets 0.

    Args:
      probs: floating probabilities in [0, 1], shape ``[..., num_classes]`` (the classes along
        ``axis``).
      labels: per-class target weights, broadcastable to ``[..., num_classes]``.
      axis: the class axis or axes (``None``: every axis); the article's layout is ``axis=0``.
      where: optional boolean mask of the classes (shape ``[..., num_classes]``) or of the
        examples (the batch shape ``[...]``).

    Returns:
      dJ/dA with the shape and dtype of ``probs`` (computed in float32 for 16-bit input).

    Examples:
      >>> import jax.numpy as jnp
      >>> from jaxloss import seeds
      >>> print(seeds.categorical_cross_entropy_grad(jnp.array([0.25, 0.75]), jnp.array([1.0, 0.0])))
      [-4. -0.]
      >>> print(seeds.categorical_cross_entropy_grad(jnp.array([1.0, 0.0]), jnp.array([0.0, 1.0])))
      [-0.000000e+00 -8.507059e+37]

    References:
      J. Lalin, "Feedforward Neural Networks in Depth, Part 3: Cost Functions" (2021), the
      multiclass cost J(A, Y) and dJ/dA = -(1/m) Y/A.
    """
    return _seed_of(_probability.categorical_cross_entropy, 0, (probs, labels, axis, where), {})


def categorical_cross_entropy_labels_grad(
    probs: jax.typing.ArrayLike,
    labels: jax.typing.ArrayLike,
    axis: int | tuple[int, ...] | None = -1,
    where: jax.typing.ArrayLike | None = None,
) -> jax.Array:
    """dJ/dY of :func:`jaxloss.categorical_cross_entropy`, per example: :math:`-\\log a`.

    .. math::
      \\frac{\\partial \\ell}{\\partial y} = -\\log a

    The gradient of the summed per-example loss with respect to the labels. :math:`a` is raised
    to the smallest normal number as in the cost, so an exact 0 gives a finite value; a class
    dropped by ``where`` gets 0. Integer or boolean labels are taken as floats.

    Args:
      probs: floating probabilities in [0, 1], shape ``[..., num_classes]`` (the classes along
        ``axis``).
      labels: per-class target weights, broadcastable to ``[..., num_classes]``.
      axis: the class axis or axes (``None``: every axis); the article's layout is ``axis=0``.
      where: optional boolean mask of the classes (shape ``[..., num_classes]``) or of the
        examples (the batch shape ``[...]``).

    Returns:
      dJ/dY with the shape of ``labels``: their dtype when they are floating, otherwise the
      widest floating dtype of the inputs and at least float32.

    Examples:
      >>> import jax.numpy as jnp
      >>> from jaxloss import seeds
      >>> print(seeds.categorical_cross_entropy_labels_grad(jnp.array([0.25, 0.75]), jnp.array([1.0, 0.0])))
      [1.3862944 0.2876821]

    References:
      J. Lalin, "Feedforward Neural Networks in Depth, Part 3: Cost Functions" (2021), the
      multiclass cost J(A, Y) (its gradient with respect to the labels is beyond the article).
    """
    return _seed_of(_probability.categorical_cross_entropy, 1, (probs, labels, axis, where), {})


def soft_cap_grad(logits: jax.typing.ArrayLike, soft_cap: float | jax.typing.ArrayLike) -> jax.Array:
    """The chain factor of logit soft-capping: :math:`d(c \\tanh(z/c))/dz = 1 - \\tanh^2(z/c)`.

    .. math::
      \\frac{\\partial}{\\partial z}\\, c \\tanh(z / c) = 1 - \\tanh^2(z / c)

    Not a cost's seed: the seed of a cost with ``soft_cap=c`` is its seed at the capped logits
    :math:`c \\tanh(z/c)` times this factor. The cap is a scalar (one per call, as in the costs);
    a ``-inf`` logit gets 0.

    Args:
      logits: floating logits, shape ``[...]``.
      soft_cap: the cap c > 0, a finite scalar.

    Returns:
      The factor with the shape of ``logits``, in the dtype the costs compute in: float32 for
      16-bit logits (not rounded back), otherwise the logits' dtype.

    Examples:
      >>> import jax.numpy as jnp
      >>> from jaxloss import seeds
      >>> print(seeds.soft_cap_grad(jnp.array([0.0, 30.0]), 30.0))
      [1.        0.4199744]

    References:
      J. Lalin, "Feedforward Neural Networks in Depth, Part 3: Cost Functions" (2021), the seeds
      and the chain rule through the output layer. Gemma Team, "Gemma 2: Improving Open Language
      Models at a Practical Size" (2024), the soft cap.
    """
    z = _checks.as_array(logits, "logits")
    _checks.require_floating(z, "logits")
    z = z.astype(_checks.compute_dtype(z))
    return _seeds.soft_cap_grad_from_inputs(z, _options.positive_cap(soft_cap, z.dtype))


def z_loss_grad(
    logits: jax.typing.ArrayLike, z_loss: float | jax.typing.ArrayLike, axis: int | tuple[int, ...] | None = -1
) -> jax.Array:
    """The seed of the z-loss :math:`\\alpha \\operatorname{lse}(z)^2`: :math:`2 \\alpha \\operatorname{lse}(z)\\, a`.

    .. math::
      \\frac{\\partial}{\\partial z}\\, \\alpha \\operatorname{lse}(z)^2
      = 2 \\alpha \\operatorname{lse}(z) \\operatorname{softmax}(z)

    The term that ``z_loss=α`` adds to the seed of :func:`softmax_cross_entropy_grad`, per
    example. It has no ``where``: every class along ``axis`` is in the log-sum-exp, and a class
    is masked only by a ``-inf`` logit (which gets 0). α is a scalar, as in the costs.

    Args:
      logits: floating logits, shape ``[..., num_classes]`` (the classes along ``axis``).
      z_loss: α ≥ 0, a finite scalar.
      axis: the class axis or axes (``None``: every axis).

    Returns:
      The seed with the shape of ``logits``, in the dtype the costs compute in: float32 for
      16-bit logits (not rounded back), otherwise the logits' dtype.

    Examples:
      >>> import jax.numpy as jnp
      >>> from jaxloss import seeds
      >>> print(seeds.z_loss_grad(jnp.zeros(2), 0.5))
      [0.3465736 0.3465736]

    References:
      J. Lalin, "Feedforward Neural Networks in Depth, Part 3: Cost Functions" (2021), the seeds
      of the multiclass cost (the z-loss is beyond the article). A. Chowdhery et al., "PaLM:
      Scaling Language Modeling with Pathways" (2022), the z-loss.
    """
    z = _checks.as_array(logits, "logits")
    _checks.require_floating(z, "logits")
    z = z.astype(_checks.compute_dtype(z))
    axes = _checks.canonical_axes(axis, z.ndim, "logits")
    alpha = _options.nonnegative_scalar(z_loss, "z_loss", z.dtype)
    return _seeds.z_loss_grad_from_stats(z, _stats.softmax_stats(z, axes), alpha)


def sigmoid_focal_loss_grad(
    logits: jax.typing.ArrayLike,
    labels: jax.typing.ArrayLike,
    *,
    alpha: jax.typing.ArrayLike | None = None,
    gamma: jax.typing.ArrayLike = 2.0,
) -> jax.Array:
    """d(loss)/dZ of :func:`jaxloss.sigmoid_focal_loss`, per element.

    .. math::
      \\frac{\\partial \\ell}{\\partial z}
      = a_t q^\\gamma \\left[(\\sigma(z) - y) + \\gamma (1 - 2y)\\, \\sigma(z)\\sigma(-z)\\, \\mathrm{ce}/q\\right],
      \\qquad q = 1 - p_t = (1 - y)\\,\\sigma(z) + y\\,\\sigma(-z)

    with :math:`\\mathrm{ce}` the sigmoid cross-entropy and
    :math:`a_t = \\alpha y + (1 - \\alpha)(1 - y)` (1 when ``alpha`` is ``None``). The gradient of
    the summed per-element loss with respect to the logits. It never forms
    :math:`q^{\\gamma - 1}`, so it is finite for :math:`\\gamma < 1` and at any finite logit.

    Args:
      logits: floating logits, shape ``[...]``.
      labels: labels in [0, 1], hard or soft, broadcastable to ``[...]``.
      alpha: the weight α of the positive class, in [0, 1], a scalar or broadcastable to
        ``[...]``; ``None`` weighs both classes 1.
      gamma: the focusing exponent γ ≥ 0, a scalar or broadcastable to ``[...]``.

    Returns:
      The gradient with the shape and dtype of ``logits`` (computed in float32 for 16-bit
      logits), summed over any axes along which ``labels`` broadcasts ``logits``.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> import jaxloss
      >>> from jaxloss import seeds
      >>> grad = seeds.sigmoid_focal_loss_grad(jnp.array([0.0, 20.0]), jnp.array([1.0, 1.0]))
      >>> print([f"{g:.6e}" for g in grad.tolist()])
      ['-2.982868e-01', '-2.626953e-26']
      >>> z, y = jnp.array([-1.0, 0.5, 3.0]), jnp.array([0.0, 1.0, 1.0])
      >>> grad = seeds.sigmoid_focal_loss_grad(z, y, alpha=0.25, gamma=0.5)
      >>> want = jax.grad(lambda v: jaxloss.sigmoid_focal_loss(v, y, alpha=0.25, gamma=0.5).sum())(z)
      >>> bool(jnp.allclose(grad, want))
      True

    References:
      T.-Y. Lin et al., "Focal Loss for Dense Object Detection" (2017). J. Lalin, "Feedforward
      Neural Networks in Depth, Part 3: Cost Functions" (2021), the sigmoid cost and its seed
      (the focal loss is beyond the article).
    """
    return _seed_of(_sigmoid.sigmoid_focal_loss, 0, (logits, labels), {"alpha": alpha, "gamma": gamma})


def sigmoid_focal_loss_labels_grad(
    logits: jax.typing.ArrayLike,
    labels: jax.typing.ArrayLike,
    *,
    alpha: jax.typing.ArrayLike | None = None,
    gamma: jax.typing.ArrayLike = 2.0,
) -> jax.Array:
    """d(loss)/dY of :func:`jaxloss.sigmoid_focal_loss`, per element.

    .. math::
      \\frac{\\partial \\ell}{\\partial y}
      = a_t q^\\gamma \\left[-z - \\gamma \\tanh(z/2)\\, \\mathrm{ce}/q\\right]
      + (2\\alpha - 1)\\, q^\\gamma \\mathrm{ce}

    with the notation of :func:`sigmoid_focal_loss_grad`; the last term is there only when
    ``alpha`` is given (with ``alpha=None``, :math:`a_t = 1` does not depend on the labels).
    Integer or boolean labels are taken as floats.

    Args:
      logits: floating logits, shape ``[...]``.
      labels: labels in [0, 1], hard or soft, broadcastable to ``[...]``.
      alpha: the weight α of the positive class, in [0, 1], a scalar or broadcastable to
        ``[...]``; ``None`` weighs both classes 1.
      gamma: the focusing exponent γ ≥ 0, a scalar or broadcastable to ``[...]``.

    Returns:
      The gradient with the shape of ``labels``: their dtype when they are floating, otherwise
      the widest floating dtype of the inputs and at least float32.

    Examples:
      >>> import jax.numpy as jnp
      >>> from jaxloss import seeds
      >>> print(seeds.sigmoid_focal_loss_labels_grad(jnp.array([1.0, -1.0]), jnp.array([1.0, 0.0])))
      [-0.15019535  0.15019535]
      >>> print(seeds.sigmoid_focal_loss_labels_grad(jnp.array([1.0, -1.0]), jnp.array([1.0, 0.0]), alpha=0.25))
      [-0.04887787  0.10131748]

    References:
      T.-Y. Lin et al., "Focal Loss for Dense Object Detection" (2017). J. Lalin, "Feedforward
      Neural Networks in Depth, Part 3: Cost Functions" (2021), the sigmoid cost (the focal loss
      is beyond the article).
    """
    return _seed_of(_sigmoid.sigmoid_focal_loss, 1, (logits, labels), {"alpha": alpha, "gamma": gamma})


def poly_loss_cross_entropy_grad(
    logits: jax.typing.ArrayLike,
    labels: jax.typing.ArrayLike,
    *,
    epsilon: float | jax.typing.ArrayLike = 2.0,
    axis: int | tuple[int, ...] | None = -1,
    where: jax.typing.ArrayLike | None = None,
) -> jax.Array:
    """d(loss)/dZ of :func:`jaxloss.poly_loss_cross_entropy`: :math:`p_k \\sum_j y_j c_j - y_k c_k`.

    .. math::
      \\frac{\\partial \\ell}{\\partial z_k} = p_k \\sum_j y_j c_j - y_k c_k,
      \\qquad c_j = 1 + \\epsilon p_j, \\quad p = \\operatorname{softmax}(z)

    The gradient of the summed per-example loss with respect to the logits. As in the cost (and
    in optax), ``axis`` and ``where`` are keyword-only here, unlike in
    :func:`softmax_cross_entropy_grad`. A class dropped by ``where`` or with a ``-inf`` logit
    gets 0.

    Args:
      logits: floating logits, shape ``[..., num_classes]`` (the classes along ``axis``).
      labels: per-class target weights, broadcastable to ``[..., num_classes]``.
      epsilon: the coefficient ε of the first polynomial term, a real scalar.
      axis: the class axis or axes (``None``: every axis).
      where: optional boolean mask, optax's meaning: shape ``[..., num_classes]`` drops classes,
        the batch shape ``[...]`` drops examples.

    Returns:
      The gradient with the shape and dtype of ``logits`` (computed in float32 for 16-bit logits).

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> import jaxloss
      >>> from jaxloss import seeds
      >>> print(seeds.poly_loss_cross_entropy_grad(jnp.zeros(2), jnp.array([1.0, 0.0])))
      [-1.  1.]
      >>> z, y = jnp.array([[2.0, 0.0, -1.0]]), jnp.array([[0.5, 0.5, 0.0]])
      >>> grad = seeds.poly_loss_cross_entropy_grad(z, y, epsilon=-1.0)
      >>> want = jax.grad(lambda v: jaxloss.poly_loss_cross_entropy(v, y, epsilon=-1.0).sum())(z)
      >>> bool(jnp.allclose(grad, want))
      True

    References:
      Z. Leng et al., "PolyLoss: A Polynomial Expansion Perspective of Classification Loss
      Functions" (2022). J. Lalin, "Feedforward Neural Networks in Depth, Part 3: Cost
      Functions" (2021), the multiclass cost and dJ/dZ (the poly-1 term is beyond the article).
    """
    options = {"epsilon": epsilon, "axis": axis, "where": where}
    return _seed_of(_softmax.poly_loss_cross_entropy, 0, (logits, labels), options)


def poly_loss_cross_entropy_labels_grad(
    logits: jax.typing.ArrayLike,
    labels: jax.typing.ArrayLike,
    *,
    epsilon: float | jax.typing.ArrayLike = 2.0,
    axis: int | tuple[int, ...] | None = -1,
    where: jax.typing.ArrayLike | None = None,
) -> jax.Array:
    """d(loss)/dY of :func:`jaxloss.poly_loss_cross_entropy`: :math:`-\\log p + \\epsilon (1 - p)`.

    .. math::
      \\frac{\\partial \\ell}{\\partial y_j} = -\\log p_j + \\epsilon (1 - p_j), \\qquad p = \\operatorname{softmax}(z)

    The gradient of the summed per-example loss with respect to the labels. A class with a
    ``-inf`` logit (a masked class) or dropped by ``where`` gets 0. ``axis`` and ``where`` are
    keyword-only, as in the cost. Integer or boolean labels are taken as floats.

    Args:
      logits: floating logits, shape ``[..., num_classes]`` (the classes along ``axis``).
      labels: per-class target weights, broadcastable to ``[..., num_classes]``.
      epsilon: the coefficient ε of the first polynomial term, a real scalar.
      axis: the class axis or axes (``None``: every axis).
      where: optional boolean mask, optax's meaning: shape ``[..., num_classes]`` drops classes,
        the batch shape ``[...]`` drops examples.

    Returns:
      The gradient with the shape of ``labels``: their dtype when they are floating, otherwise
      the widest floating dtype of the inputs and at least float32.

    Examples:
      >>> import jax.numpy as jnp
      >>> from jaxloss import seeds
      >>> print(seeds.poly_loss_cross_entropy_labels_grad(jnp.zeros(2), jnp.array([1.0, 0.0]), epsilon=1.0))
      [1.1931472 1.1931472]

    References:
      Z. Leng et al., "PolyLoss: A Polynomial Expansion Perspective of Classification Loss
      Functions" (2022). J. Lalin, "Feedforward Neural Networks in Depth, Part 3: Cost
      Functions" (2021), the multiclass cost (the poly-1 term is beyond the article).
    """
    options = {"epsilon": epsilon, "axis": axis, "where": where}
    return _seed_of(_softmax.poly_loss_cross_entropy, 1, (logits, labels), options)


def kl_divergence_grad(
    log_predictions: jax.typing.ArrayLike,
    targets: jax.typing.ArrayLike,
    axis: int | tuple[int, ...] | None = -1,
    where: jax.typing.ArrayLike | None = None,
) -> jax.Array:
    """d(loss)/d(log p) of :func:`jaxloss.kl_divergence`: :math:`-t`.

    .. math::
      \\frac{\\partial \\ell}{\\partial \\log p_j} = -t_j

    The gradient of the summed per-example divergence with respect to the log-predictions. A
    class with a target of 0 or dropped by ``where`` gets 0; a negative target gives NaN.

    Args:
      log_predictions: floating log-probabilities, shape ``[..., num_classes]`` (the classes
        along ``axis``).
      targets: target probabilities, broadcastable to ``[..., num_classes]``.
      axis: the class axis or axes (``None``: every axis).
      where: optional boolean mask of the classes (shape ``[..., num_classes]``) or of the
        examples (the batch shape ``[...]``).

    Returns:
      The gradient with the shape and dtype of ``log_predictions`` (computed in float32 for
      16-bit input).

    Examples:
      >>> import jax.numpy as jnp
      >>> from jaxloss import seeds
      >>> print(seeds.kl_divergence_grad(jnp.log(jnp.array([0.5, 0.5])), jnp.array([0.25, 0.75])))
      [-0.25 -0.75]

    References:
      S. Kullback and R. A. Leibler, "On Information and Sufficiency" (1951). J. Lalin,
      "Feedforward Neural Networks in Depth, Part 3: Cost Functions" (2021), the seeds (the
      divergence is beyond the article).
    """
    return _seed_of(_divergence.kl_divergence, 0, (log_predictions, targets, axis, where), {})


def kl_divergence_labels_grad(
    log_predictions: jax.typing.ArrayLike,
    targets: jax.typing.ArrayLike,
    axis: int | tuple[int, ...] | None = -1,
    where: jax.typing.ArrayLike | None = None,
) -> jax.Array:
    """d(loss)/dt of :func:`jaxloss.kl_divergence`, w.r.t. the targets: :math:`\\log t - \\log p + 1`.

    .. math::
      \\frac{\\partial \\ell}{\\partial t_j} = \\log t_j - \\log p_j + 1

    The gradient of the summed per-example divergence with respect to the targets. A target of
    exactly 0 gets 0 (``0 log 0 = 0``, whose derivative is :math:`-\\infty` and is not taken), as
    does a class dropped by ``where``; a negative target gives NaN.

    Args:
      log_predictions: floating log-probabilities, shape ``[..., num_classes]`` (the classes
        along ``axis``).
      targets: target probabilities, broadcastable to ``[..., num_classes]``.
      axis: the class axis or axes (``None``: every axis).
      where: optional boolean mask of the classes (shape ``[..., num_classes]``) or of the
        examples (the batch shape ``[...]``).

    Returns:
      The gradient with the shape of ``targets``: their dtype when they are floating, otherwise
      the widest floating dtype of the inputs and at least float32.

    Examples:
      >>> import jax.numpy as jnp
      >>> from jaxloss import seeds
      >>> print(seeds.kl_divergence_labels_grad(jnp.log(jnp.array([0.5, 0.5])), jnp.array([0.5, 0.0])))
      [1. 0.]

    References:
      S. Kullback and R. A. Leibler, "On Information and Sufficiency" (1951). J. Lalin,
      "Feedforward Neural Networks in Depth, Part 3: Cost Functions" (2021), the seeds (the
      divergence is beyond the article).
    """
    return _seed_of(_divergence.kl_divergence, 1, (log_predictions, targets, axis, where), {})


def kl_divergence_with_log_targets_grad(
    log_predictions: jax.typing.ArrayLike,
    log_targets: jax.typing.ArrayLike,
    axis: int | tuple[int, ...] | None = -1,
    where: jax.typing.ArrayLike | None = None,
) -> jax.Array:
    """d(loss)/d(log p) of :func:`jaxloss.kl_divergence_with_log_targets`: :math:`-e^{\\log t}`.

    .. math::
      \\frac{\\partial \\ell}{\\partial \\log p_j} = -e^{\\log t_j} = -t_j

    The gradient of the summed per-example divergence with respect to the log-predictions. A
    class with a ``-inf`` log-target or dropped by ``where`` gets 0.

    Args:
      log_predictions: floating log-probabilities, shape ``[..., num_classes]`` (the classes
        along ``axis``).
      log_targets: target log-probabilities, broadcastable to ``[..., num_classes]``.
      axis: the class axis or axes (``None``: every axis).
      where: optional boolean mask of the classes (shape ``[..., num_classes]``) or of the
        examples (the batch shape ``[...]``).

    Returns:
      The gradient with the shape and dtype of ``log_predictions`` (computed in float32 for
      16-bit input).

    Examples:
      >>> import jax.numpy as jnp
      >>> from jaxloss import seeds
      >>> print(seeds.kl_divergence_with_log_targets_grad(jnp.zeros(2), jnp.log(jnp.array([0.25, 0.75]))))
      [-0.25 -0.75]

    References:
      S. Kullback and R. A. Leibler, "On Information and Sufficiency" (1951). J. Lalin,
      "Feedforward Neural Networks in Depth, Part 3: Cost Functions" (2021), the seeds (the
      divergence is beyond the article).
    """
    return _seed_of(_divergence.kl_divergence_with_log_targets, 0, (log_predictions, log_targets, axis, where), {})


def kl_divergence_with_log_targets_labels_grad(
    log_predictions: jax.typing.ArrayLike,
    log_targets: jax.typing.ArrayLike,
    axis: int | tuple[int, ...] | None = -1,
    where: jax.typing.ArrayLike | None = None,
) -> jax.Array:
    """d(loss)/d(log t) of :func:`jaxloss.kl_divergence_with_log_targets`: :math:`t (\\log t - \\log p + 1)`.

    .. math::
      \\frac{\\partial \\ell}{\\partial \\log t_j} = t_j (\\log t_j - \\log p_j + 1)

    The gradient of the summed per-example divergence with respect to the log-targets (a
    trainable teacher, as in distillation). A ``-inf`` log-target gets 0 (the limit of
    :math:`t \\log t`), as does a class dropped by ``where``.

    Args:
      log_predictions: floating log-probabilities, shape ``[..., num_classes]`` (the classes
        along ``axis``).
      log_targets: target log-probabilities, broadcastable to ``[..., num_classes]``.
      axis: the class axis or axes (``None``: every axis).
      where: optional boolean mask of the classes (shape ``[..., num_classes]``) or of the
        examples (the batch shape ``[...]``).

    Returns:
      The gradient with the shape and dtype of ``log_targets`` (computed in float32 for 16-bit
      input).

    Examples:
      >>> import jax.numpy as jnp
      >>> from jaxloss import seeds
      >>> print(seeds.kl_divergence_with_log_targets_labels_grad(jnp.zeros(2), jnp.array([0.0, -jnp.inf])))
      [1. 0.]

    References:
      S. Kullback and R. A. Leibler, "On Information and Sufficiency" (1951). J. Lalin,
      "Feedforward Neural Networks in Depth, Part 3: Cost Functions" (2021), the seeds (the
      divergence is beyond the article).
    """
    return _seed_of(_divergence.kl_divergence_with_log_targets, 1, (log_predictions, log_targets, axis, where), {})
