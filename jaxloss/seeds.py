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

The math of each seed is written once, in the private ``jaxloss._seeds``; the rules of
:mod:`jaxloss` pair it with its cost. These functions evaluate exactly that seed through the
cost's rule (the cotangent of every example is 1), so they take the same arguments, options,
masks and checks as the cost, and raise the same errors. Gradients come back in the dtype of the
argument they are taken for.
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
    logits: jax.typing.ArrayLike, labels: jax.typing.ArrayLike, **options: Any
) -> jax.Array:
    """dJ/dZ of the sigmoid cost, per example: :math:`\\sigma(z) - y`.

    With the options of :func:`jaxloss.sigmoid_binary_cross_entropy` it is
    :math:`w\\,[(1 - y')\\sigma(z') - w_+ y' \\sigma(-z')]\\,(1 - \\tanh^2(z/c))`, with
    :math:`y' = (1 - \\epsilon) y + \\epsilon/2` and :math:`z' = c \\tanh(z/c)`.

    Examples:
      >>> import jax.numpy as jnp
      >>> from jaxloss import seeds
      >>> grad = seeds.sigmoid_binary_cross_entropy_grad(jnp.array([0.0, 20.0]), jnp.array([1.0, 1.0]))
      >>> print([f"{g:.6e}" for g in grad.tolist()])
      ['-5.000000e-01', '-2.061154e-09']
    """
    return _seed_of(_sigmoid.sigmoid_binary_cross_entropy, 0, (logits, labels), options)


def sigmoid_binary_cross_entropy_labels_grad(
    logits: jax.typing.ArrayLike, labels: jax.typing.ArrayLike, **options: Any
) -> jax.Array:
    """dJ/dY of the sigmoid cost, per example: :math:`-z`.

    Examples:
      >>> import jax.numpy as jnp
      >>> from jaxloss import seeds
      >>> print(seeds.sigmoid_binary_cross_entropy_labels_grad(jnp.array([2.0, -1.0]), jnp.array([1.0, 0.0])))
      [-2.  1.]
    """
    return _seed_of(_sigmoid.sigmoid_binary_cross_entropy, 1, (logits, labels), options)


def sigmoid_multilabel_cross_entropy_grad(
    logits: jax.typing.ArrayLike,
    labels: jax.typing.ArrayLike,
    axis: int | tuple[int, ...] | None = -1,
    where: jax.typing.ArrayLike | None = None,
    **options: Any,
) -> jax.Array:
    """dJ/dZ of the multi-label cost: label by label, the sigmoid seed :math:`\\sigma(z) - y` (0 where dropped).

    Examples:
      >>> import jax.numpy as jnp
      >>> from jaxloss import seeds
      >>> print(seeds.sigmoid_multilabel_cross_entropy_grad(jnp.array([[0.0, 0.0]]), jnp.array([[1.0, 0.0]])))
      [[-0.5  0.5]]
    """
    return _seed_of(_sigmoid.sigmoid_multilabel_cross_entropy, 0, (logits, labels, axis, where), options)


def softmax_cross_entropy_grad(
    logits: jax.typing.ArrayLike,
    labels: jax.typing.ArrayLike,
    axis: int | tuple[int, ...] | None = -1,
    where: jax.typing.ArrayLike | None = None,
    **options: Any,
) -> jax.Array:
    """dJ/dZ of the softmax cost, per example: :math:`a \\sum_p y_p - y`.

    It is :math:`a - y` only when the labels sum to one. With the options of
    :func:`jaxloss.softmax_cross_entropy` it is
    :math:`(a \\sum_p y'_p - y' + 2\\alpha \\operatorname{lse}(z')\\, a)(1 - \\tanh^2(z/c))`, with
    :math:`y' = w \\odot ((1 - \\epsilon) y + \\epsilon / C)`, :math:`z' = c \\tanh(z/c)` and
    :math:`a = \\operatorname{softmax}(z')`.

    Examples:
      >>> import jax.numpy as jnp
      >>> from jaxloss import seeds
      >>> print(seeds.softmax_cross_entropy_grad(jnp.zeros(4), jnp.array([0.5, 0.5, 0.0, 0.0])))
      [-0.25 -0.25  0.25  0.25]
    """
    return _seed_of(_softmax.softmax_cross_entropy, 0, (logits, labels, axis, where), options)


def softmax_cross_entropy_labels_grad(
    logits: jax.typing.ArrayLike,
    labels: jax.typing.ArrayLike,
    axis: int | tuple[int, ...] | None = -1,
    where: jax.typing.ArrayLike | None = None,
    **options: Any,
) -> jax.Array:
    """dJ/dY of the softmax cost, per example: :math:`-\\log a` (0 at a masked class).

    Examples:
      >>> import jax.numpy as jnp
      >>> from jaxloss import seeds
      >>> print(seeds.softmax_cross_entropy_labels_grad(jnp.zeros(2), jnp.array([1.0, 0.0])))
      [0.6931472 0.6931472]
    """
    return _seed_of(_softmax.softmax_cross_entropy, 1, (logits, labels, axis, where), options)


def softmax_cross_entropy_with_integer_labels_grad(
    logits: jax.typing.ArrayLike,
    labels: jax.typing.ArrayLike,
    axis: int | tuple[int, ...] | None = -1,
    where: jax.typing.ArrayLike | None = None,
    **options: Any,
) -> jax.Array:
    """dJ/dZ of the softmax cost with integer labels, per example: :math:`a - \\operatorname{onehot}(l)`.

    At the label :math:`a_l - 1 = -R/S`, with :math:`R` the sum of the other classes'
    exponentials: a confident prediction keeps its digits. With options, the seed of
    :func:`jaxloss.softmax_cross_entropy_with_integer_labels` with them, 0 for the examples whose
    label is ``ignore_index``.

    Examples:
      >>> import jax.numpy as jnp
      >>> from jaxloss import seeds
      >>> grad = seeds.softmax_cross_entropy_with_integer_labels_grad(jnp.array([30.0, 0.0]), jnp.array(0))
      >>> print([f"{g:.6e}" for g in grad.tolist()])
      ['-9.357623e-14', '9.357623e-14']
    """
    return _seed_of(_softmax.softmax_cross_entropy_with_integer_labels, 0, (logits, labels, axis, where), options)


def binary_cross_entropy_grad(probs: jax.typing.ArrayLike, labels: jax.typing.ArrayLike) -> jax.Array:
    """dJ/dA of the binary cost, per example: :math:`(1-y)/(1-a) - y/a`, clamped as the cost is.

    Examples:
      >>> import jax.numpy as jnp
      >>> from jaxloss import seeds
      >>> print(seeds.binary_cross_entropy_grad(jnp.array([0.25, 0.5]), jnp.array([1.0, 0.0])))
      [-4.  2.]
    """
    return _seed_of(_probability.binary_cross_entropy, 0, (probs, labels), {})


def binary_cross_entropy_labels_grad(probs: jax.typing.ArrayLike, labels: jax.typing.ArrayLike) -> jax.Array:
    """dJ/dY of the binary cost, per example: :math:`\\log(1-a) - \\log a`.

    Examples:
      >>> import jax.numpy as jnp
      >>> from jaxloss import seeds
      >>> print(seeds.binary_cross_entropy_labels_grad(jnp.array([0.25, 0.5]), jnp.array([1.0, 0.0])))
      [1.0986123 0.       ]
    """
    return _seed_of(_probability.binary_cross_entropy, 1, (probs, labels), {})


def multilabel_cross_entropy_grad(
    probs: jax.typing.ArrayLike,
    labels: jax.typing.ArrayLike,
    axis: int | tuple[int, ...] | None = -1,
    where: jax.typing.ArrayLike | None = None,
) -> jax.Array:
    """dJ/dA of the multi-label cost: label by label, the binary seed (0 where dropped).

    Examples:
      >>> import jax.numpy as jnp
      >>> from jaxloss import seeds
      >>> print(seeds.multilabel_cross_entropy_grad(jnp.array([[0.25, 0.5]]), jnp.array([[1.0, 0.0]])))
      [[-4.  2.]]
    """
    return _seed_of(_probability.multilabel_cross_entropy, 0, (probs, labels, axis, where), {})


def categorical_cross_entropy_grad(
    probs: jax.typing.ArrayLike,
    labels: jax.typing.ArrayLike,
    axis: int | tuple[int, ...] | None = -1,
    where: jax.typing.ArrayLike | None = None,
) -> jax.Array:
    """dJ/dA of the categorical cost, per example: :math:`-y/a`, clamped as the cost is.

    Examples:
      >>> import jax.numpy as jnp
      >>> from jaxloss import seeds
      >>> print(seeds.categorical_cross_entropy_grad(jnp.array([0.25, 0.75]), jnp.array([1.0, 0.0])))
      [-4. -0.]
    """
    return _seed_of(_probability.categorical_cross_entropy, 0, (probs, labels, axis, where), {})


def categorical_cross_entropy_labels_grad(
    probs: jax.typing.ArrayLike,
    labels: jax.typing.ArrayLike,
    axis: int | tuple[int, ...] | None = -1,
    where: jax.typing.ArrayLike | None = None,
) -> jax.Array:
    """dJ/dY of the categorical cost, per example: :math:`-\\log a`.

    Examples:
      >>> import jax.numpy as jnp
      >>> from jaxloss import seeds
      >>> print(seeds.categorical_cross_entropy_labels_grad(jnp.array([0.25, 0.75]), jnp.array([1.0, 0.0])))
      [1.3862944 0.2876821]
    """
    return _seed_of(_probability.categorical_cross_entropy, 1, (probs, labels, axis, where), {})


def soft_cap_grad(logits: jax.typing.ArrayLike, soft_cap: float | jax.typing.ArrayLike) -> jax.Array:
    """The chain factor of logit soft-capping: :math:`d(c \\tanh(z/c))/dz = 1 - \\tanh^2(z/c)`.

    Examples:
      >>> import jax.numpy as jnp
      >>> from jaxloss import seeds
      >>> print(seeds.soft_cap_grad(jnp.array([0.0, 30.0]), 30.0))
      [1.        0.4199744]
    """
    z = _checks.as_array(logits, "logits")
    _checks.require_floating(z, "logits")
    z = z.astype(_checks.compute_dtype(z))
    return _seeds.soft_cap_grad_from_inputs(z, _options.positive_cap(soft_cap, z.dtype))


def z_loss_grad(
    logits: jax.typing.ArrayLike, z_loss: float | jax.typing.ArrayLike, axis: int | tuple[int, ...] | None = -1
) -> jax.Array:
    """The seed of the z-loss :math:`\\alpha \\operatorname{lse}(z)^2`: :math:`2 \\alpha \\operatorname{lse}(z) a`.

    Examples:
      >>> import jax.numpy as jnp
      >>> from jaxloss import seeds
      >>> print(seeds.z_loss_grad(jnp.zeros(2), 0.5))
      [0.3465736 0.3465736]
    """
    z = _checks.as_array(logits, "logits")
    _checks.require_floating(z, "logits")
    z = z.astype(_checks.compute_dtype(z))
    axes = _checks.canonical_axes(axis, z.ndim, "logits")
    alpha = _options.nonnegative_scalar(z_loss, "z_loss", z.dtype)
    return _seeds.z_loss_grad_from_stats(z, _stats.softmax_stats(z, axes), alpha)


def sigmoid_focal_loss_grad(logits: jax.typing.ArrayLike, labels: jax.typing.ArrayLike, **options: Any) -> jax.Array:
    """d(loss)/dZ of the focal loss, per element.

    :math:`a_t q^\\gamma [(\\sigma(z) - y) + \\gamma (1 - 2y)\\, \\sigma(z)\\sigma(-z)\\, \\mathrm{ce}/q]`
    with :math:`q = 1 - p_t`; the options are those of :func:`jaxloss.sigmoid_focal_loss`.

    Examples:
      >>> import jax.numpy as jnp
      >>> from jaxloss import seeds
      >>> grad = seeds.sigmoid_focal_loss_grad(jnp.array([0.0, 20.0]), jnp.array([1.0, 1.0]))
      >>> print([f"{g:.6e}" for g in grad.tolist()])
      ['-2.982868e-01', '-2.626953e-26']
    """
    return _seed_of(_sigmoid.sigmoid_focal_loss, 0, (logits, labels), options)


def sigmoid_focal_loss_labels_grad(
    logits: jax.typing.ArrayLike, labels: jax.typing.ArrayLike, **options: Any
) -> jax.Array:
    """d(loss)/dY of the focal loss, per element.

    :math:`a_t q^\\gamma [-z - \\gamma \\tanh(z/2)\\, \\mathrm{ce}/q] + (2\\alpha - 1) q^\\gamma \\mathrm{ce}`.

    Examples:
      >>> import jax.numpy as jnp
      >>> from jaxloss import seeds
      >>> print(seeds.sigmoid_focal_loss_labels_grad(jnp.array([1.0, -1.0]), jnp.array([1.0, 0.0])))
      [-0.15019535  0.15019535]
    """
    return _seed_of(_sigmoid.sigmoid_focal_loss, 1, (logits, labels), options)


def poly_loss_cross_entropy_grad(
    logits: jax.typing.ArrayLike, labels: jax.typing.ArrayLike, **options: Any
) -> jax.Array:
    """d(loss)/dZ of the poly-1 loss: :math:`p_k \\sum_j y_j c_j - y_k c_k`, :math:`c_j = 1 + \\epsilon p_j`.

    The options (``epsilon``, ``axis``, ``where``) are those of :func:`jaxloss.poly_loss_cross_entropy`.

    Examples:
      >>> import jax.numpy as jnp
      >>> from jaxloss import seeds
      >>> print(seeds.poly_loss_cross_entropy_grad(jnp.zeros(2), jnp.array([1.0, 0.0])))
      [-1.  1.]
    """
    return _seed_of(_softmax.poly_loss_cross_entropy, 0, (logits, labels), options)


def poly_loss_cross_entropy_labels_grad(
    logits: jax.typing.ArrayLike, labels: jax.typing.ArrayLike, **options: Any
) -> jax.Array:
    """d(loss)/dY of the poly-1 loss: :math:`-\\log a + \\epsilon (1 - a)` (0 at a masked class).

    Examples:
      >>> import jax.numpy as jnp
      >>> from jaxloss import seeds
      >>> print(seeds.poly_loss_cross_entropy_labels_grad(jnp.zeros(2), jnp.array([1.0, 0.0]), epsilon=1.0))
      [1.1931472 1.1931472]
    """
    return _seed_of(_softmax.poly_loss_cross_entropy, 1, (logits, labels), options)


def kl_divergence_grad(
    log_predictions: jax.typing.ArrayLike,
    targets: jax.typing.ArrayLike,
    axis: int | tuple[int, ...] | None = -1,
    where: jax.typing.ArrayLike | None = None,
) -> jax.Array:
    """d(loss)/d(log p) of the KL divergence: :math:`-t`.

    Examples:
      >>> import jax.numpy as jnp
      >>> from jaxloss import seeds
      >>> print(seeds.kl_divergence_grad(jnp.log(jnp.array([0.5, 0.5])), jnp.array([0.25, 0.75])))
      [-0.25 -0.75]
    """
    return _seed_of(_divergence.kl_divergence, 0, (log_predictions, targets, axis, where), {})


def kl_divergence_labels_grad(
    log_predictions: jax.typing.ArrayLike,
    targets: jax.typing.ArrayLike,
    axis: int | tuple[int, ...] | None = -1,
    where: jax.typing.ArrayLike | None = None,
) -> jax.Array:
    """d(loss)/dt of the KL divergence, w.r.t. the targets: :math:`\\log t - \\log p + 1` (0 where t = 0).

    Examples:
      >>> import jax.numpy as jnp
      >>> from jaxloss import seeds
      >>> print(seeds.kl_divergence_labels_grad(jnp.log(jnp.array([0.5, 0.5])), jnp.array([0.5, 0.0])))
      [1. 0.]
    """
    return _seed_of(_divergence.kl_divergence, 1, (log_predictions, targets, axis, where), {})


def kl_divergence_with_log_targets_grad(
    log_predictions: jax.typing.ArrayLike,
    log_targets: jax.typing.ArrayLike,
    axis: int | tuple[int, ...] | None = -1,
    where: jax.typing.ArrayLike | None = None,
) -> jax.Array:
    """d(loss)/d(log p) of the KL divergence from log-targets: :math:`-e^{\\log t}`.

    Examples:
      >>> import jax.numpy as jnp
      >>> from jaxloss import seeds
      >>> print(seeds.kl_divergence_with_log_targets_grad(jnp.zeros(2), jnp.log(jnp.array([0.25, 0.75]))))
      [-0.25 -0.75]
    """
    return _seed_of(_divergence.kl_divergence_with_log_targets, 0, (log_predictions, log_targets, axis, where), {})


def kl_divergence_with_log_targets_labels_grad(
    log_predictions: jax.typing.ArrayLike,
    log_targets: jax.typing.ArrayLike,
    axis: int | tuple[int, ...] | None = -1,
    where: jax.typing.ArrayLike | None = None,
) -> jax.Array:
    """d(loss)/d(log t), w.r.t. the log-targets: :math:`t (\\log t - \\log p + 1)`, 0 at a ``-inf`` log-target.

    Examples:
      >>> import jax.numpy as jnp
      >>> from jaxloss import seeds
      >>> print(seeds.kl_divergence_with_log_targets_labels_grad(jnp.zeros(2), jnp.array([0.0, -jnp.inf])))
      [1. 0.]
    """
    return _seed_of(_divergence.kl_divergence_with_log_targets, 1, (log_predictions, log_targets, axis, where), {})
