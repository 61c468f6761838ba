"""The Kullback-Leibler divergence of predicted log-probabilities from targets, or from log-targets.

Both are sums over ``axis`` of element-wise terms, each term a rule with its seed:

.. math::
  \\mathrm{KL}(t \\,\\|\\, p) = \\sum_j t_j (\\log t_j - \\log p_j)

The difference is taken per element, so equal inputs give exactly 0 term by term.
``0 log 0 = 0``: a target of exactly 0 (a log-target of ``-inf``) is a class out of play. It
costs 0 whatever the prediction, even ``-inf``, and passes a zero gradient to both arguments. A
target below 0 is not a probability: NaN.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from jaxloss import _article, _backend, _compensated, _seeds
from jaxloss._rules import Axes, rule, stored_pair, widen
from jaxloss._sigmoid import summed_over

# --- the forward formulas, each with its seed ----------------------------------------------------


# Without the residual barrier (``_backend``, rule 4): XLA-CPU then fuses the seed into one loop
# with the forward pass's terms and writes no inputs-sized temporary (1024x4096 float32
# value_and_grad of the mean: 43 ms and 16 MiB with the barrier, 32 ms and none without;
# optax's 29 ms, one run interleaved).
@rule(reference=_article.kl_divergence, guard=None)
def _kl(x: jax.Array, t: jax.Array, aux: Any, axes: Axes) -> tuple[jax.Array, Any]:
    """:math:`t (\\log t - \\log p)`, 0 where :math:`t = 0`."""
    del aux, axes
    log_predictions, targets = widen(x), widen(t)
    return _term(log_predictions, safe_log(targets), targets, lambda d: targets * d), (x, t)


@_kl.defseed
def _seed(residuals: Any, axes: Axes) -> tuple[jax.Array, jax.Array]:
    del axes
    x, t = residuals
    log_predictions, targets = widen(x), widen(t)
    return _seeds.kl_divergence_grads_from_logs(log_predictions, targets, safe_log(targets))


def _safe_log_cpu(targets: jax.Array) -> jax.Array:
    # t - |t| is 0, or 2t < -tiny for a negative target (not a probability): the log of a negative number, NaN.
    tiny = jnp.finfo(targets.dtype).smallest_normal
    return jnp.log(jnp.maximum(targets, tiny) + (targets - jnp.abs(targets)))


@_backend.per_platform(cpu=_safe_log_cpu)
def safe_log(targets: jax.Array) -> jax.Array:
    """:math:`\\log t` for :math:`t > 0`, subnormal included; :math:`\\log \\text{tiny}` at :math:`t = 0` (a term of 0).

    NaN for a negative, ``+inf`` or NaN target. XLA-CPU reads a subnormal target as 0, so its
    form is the clamp :math:`\\log \\max(t, \\text{tiny})`, arithmetic only (``_backend``, rule 1);
    a platform that keeps subnormals (XLA-GPU) would get :math:`\\log \\text{tiny}` in place of
    :math:`\\log t` from it, and selects the stand-in at :math:`t = 0` alone. The forms agree
    for zero, normal, infinite and NaN targets (``tiny`` is the smallest normal number).
    """
    tiny = jnp.finfo(targets.dtype).smallest_normal
    return jnp.log(jnp.where(targets == 0, tiny, targets) + (targets - jnp.abs(targets)))


def _term(
    log_predictions: jax.Array,
    log_targets: jax.Array,
    present: jax.Array,
    times_target: Callable[[jax.Array], jax.Array],
) -> jax.Array:
    """:math:`t (\\log t - \\log p)`, exactly 0 where :math:`t = 0` whatever the prediction, arithmetic only.

    ``times_target(x)`` is :math:`t x`. ``log_targets`` is finite where :math:`t = 0`, and
    ``present`` (0 there, else positive and normal) weighs the ``+inf`` of a ``-inf`` prediction.
    A select or a clamp would keep XLA-CPU from fusing the term into the sum over classes
    (``_backend``, rule 1): at 1024x4096 float32 the sum took 91 ms with a select and a clip,
    8.3 ms as written, optax's 7.7 ms. The prediction is raised to the lowest float, so that
    :math:`0 \\cdot (\\log t - \\log p)` is 0, and a ``-inf`` one is added back through
    ``times_infinity`` (:math:`\\infty \\cdot 0 = 0`). A ``+inf`` log-prediction (no
    log-probability) gives NaN where its target is 0.
    """
    largest = jnp.finfo(log_predictions.dtype).max
    raised = jnp.maximum(log_predictions, -largest)
    below = _backend.infinite_excess(-log_predictions)  # +inf only where log p = -inf
    return times_target(log_targets - raised) + _backend.times_infinity(below, present)


@rule(reference=_article.kl_divergence_with_log_targets, guard=None)
def _log_kl(x: jax.Array, t: jax.Array, aux: Any, axes: Axes) -> tuple[jax.Array, Any]:
    """:math:`e^{\\log t} (\\log t - \\log p)`, 0 where :math:`\\log t = -\\infty`, without a subnormal :math:`t`.

    The product is ``_compensated.exp_times``: a subnormal :math:`t` (few digits on a GPU, 0 as
    XLA-CPU reads it) is never formed where the term is normal.
    """
    del aux, axes
    log_predictions, log_targets = widen(x), widen(t)
    finite = _finite_log(log_targets)
    present = finite + 0.5 * jnp.finfo(finite.dtype).max  # 0 at a -inf log-target, else at least half the largest
    term = _term(log_predictions, finite, present, lambda x: _compensated.exp_times(finite, x))
    return term, (x, t)


@_log_kl.defseed
def _log_seed(residuals: Any, axes: Axes) -> tuple[jax.Array, jax.Array]:
    del axes
    x, t = residuals
    log_predictions, log_targets = widen(x), widen(t)
    return _seeds.kl_divergence_with_log_targets_grads_from_logs(log_predictions, log_targets)


def _finite_log(log_targets: jax.Array) -> jax.Array:
    """:math:`\\log t`, and a finite stand-in where it is ``-inf`` (that term is 0)."""
    return jnp.maximum(log_targets, -0.5 * jnp.finfo(log_targets.dtype).max)


# --- the public costs ----------------------------------------------------------------------------


def kl_divergence(
    log_predictions: jax.typing.ArrayLike,
    targets: jax.typing.ArrayLike,
    axis: int | tuple[int, ...] | None = -1,
    where: jax.typing.ArrayLike | None = None,
) -> jax.Array:
    """Kullback-Leibler divergence of predicted log-probabilities from target probabilities.

    .. math::
      \\ell = \\sum_j t_j (\\log t_j - \\log p_j), \\qquad
      \\frac{\\partial \\ell}{\\partial \\log p_j} = -t_j, \\qquad
      \\frac{\\partial \\ell}{\\partial t_j} = \\log t_j - \\log p_j + 1

    Each term is :math:`t_j (\\log t_j - \\log p_j)`, with the difference taken first: where
    ``log_predictions`` is ``jnp.log(targets)`` the loss is exactly 0. ``0 log 0 = 0``: a
    target of 0 costs 0 (also against a ``-inf`` prediction) with a zero gradient for both
    arguments; a positive target against a ``-inf`` prediction costs ``+inf``. :math:`\\log t` is
    rounded once, so nearly matching rows keep the digits of that rounding; with
    :func:`kl_divergence_with_log_targets` the difference is exact.

    Forward mode needs the twin: the seed is a ``custom_vjp`` rule, so ``jax.grad``, ``jax.vjp``,
    ``jax.vmap`` and ``jax.hessian`` (forward over reverse) work, but ``jax.jvp`` and ``jax.jacfwd``
    raise; use ``jaxloss.forward.kl_divergence`` (the same seed as a ``custom_jvp`` rule) for those.

    Args:
      log_predictions: floating log-probabilities with classes along ``axis``.
      targets: target probabilities, broadcastable with ``log_predictions``; a target of exactly
        0 is a class out of play, one below 0 gives NaN.
      axis: the class axis or axes (``None``: every axis).
      where: optional boolean mask of the classes (the shape of the inputs) or of the examples
        (the batch shape); dropped classes cost 0 and get a zero gradient.

    Returns:
      The divergence of each example: the broadcast shape without ``axis``.

    Examples:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> targets = jnp.array([[0.5, 0.5, 0.0], [0.2, 0.3, 0.5]])
      >>> log_predictions = jnp.log(jnp.array([[0.25, 0.25, 0.5], [0.2, 0.3, 0.5]]))
      >>> print(jaxloss.kl_divergence(log_predictions, targets))
      [0.6931472 0.       ]

    References:
      S. Kullback and R. A. Leibler, "On Information and Sufficiency" (1951).
      ``optax.losses.kl_divergence``; torch's ``kl_div``.
    """
    x, t, _ = stored_pair(log_predictions, targets, "log_predictions", "targets")
    return summed_over(_kl, x, t, None, axis, where, "log_predictions", 0.0)


def kl_divergence_with_log_targets(
    log_predictions: jax.typing.ArrayLike,
    log_targets: jax.typing.ArrayLike,
    axis: int | tuple[int, ...] | None = -1,
    where: jax.typing.ArrayLike | None = None,
) -> jax.Array:
    """Kullback-Leibler divergence of predicted log-probabilities from target log-probabilities.

    .. math::
      \\ell = \\sum_j e^{\\log t_j} (\\log t_j - \\log p_j), \\qquad
      \\frac{\\partial \\ell}{\\partial \\log p_j} = -t_j, \\qquad
      \\frac{\\partial \\ell}{\\partial \\log t_j} = t_j (\\log t_j - \\log p_j + 1)

    The form for distillation with a trainable teacher: the difference of the two logs is exact
    where they are close (Sterbenz), so nearly matching rows keep their digits and equal inputs
    give exactly 0. A log-target of ``-inf`` is a zero-probability class: it costs 0 with a zero
    gradient for both arguments (the limit of :math:`t \\log t`).

    Forward mode needs the twin: the seed is a ``custom_vjp`` rule, so ``jax.grad``, ``jax.vjp``,
    ``jax.vmap`` and ``jax.hessian`` (forward over reverse) work, but ``jax.jvp`` and ``jax.jacfwd``
    raise; use ``jaxloss.forward.kl_divergence_with_log_targets`` (the same seed as a ``custom_jvp``
    rule) for those.

    Args:
      log_predictions: floating log-probabilities with classes along ``axis``.
      log_targets: target log-probabilities, broadcastable with ``log_predictions``.
      axis: the class axis or axes (``None``: every axis).
      where: optional boolean mask of the classes or of the examples, as in
        :func:`kl_divergence`.

    Returns:
      The divergence of each example: the broadcast shape without ``axis``.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> import jaxloss
      >>> student = jax.nn.log_softmax(jnp.array([[2.0, 0.0, -1.0]]))
      >>> teacher = jax.nn.log_softmax(jnp.array([[1.0, 1.0, -jnp.inf]]))
      >>> print(jaxloss.kl_divergence_with_log_targets(student, teacher))
      [0.47669882]
      >>> print(jax.grad(lambda t: jaxloss.kl_divergence_with_log_targets(student, t).sum())(teacher))
      [[0.23834944 1.2383494  0.        ]]

    References:
      S. Kullback and R. A. Leibler, "On Information and Sufficiency" (1951).
      ``optax.losses.kl_divergence_with_log_targets``; torch's ``kl_div(log_target=True)``.
    """
    x, t, _ = stored_pair(log_predictions, log_targets, "log_predictions", "log_targets")
    return summed_over(_log_kl, x, t, None, axis, where, "log_predictions", 0.0)
