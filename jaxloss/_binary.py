"""The binary costs: a sigmoid output and one label per element.

Wrappers own validation, broadcasting and the dtype policy, then call one implementation.
"""

from __future__ import annotations

from collections.abc import Callable

import jax

from jaxloss import _checks, _options
from jaxloss._impl import Implementation, publish


def make_sigmoid_binary_cross_entropy(impl: Implementation) -> Callable[..., jax.Array]:
    """Builds ``sigmoid_binary_cross_entropy`` for one implementation."""

    def sigmoid_binary_cross_entropy(
        logits: jax.typing.ArrayLike,
        labels: jax.typing.ArrayLike,
        *,
        label_smoothing: float | jax.typing.ArrayLike = 0.0,
        weights: jax.typing.ArrayLike | None = None,
        pos_weight: jax.typing.ArrayLike | None = None,
        soft_cap: float | jax.typing.ArrayLike | None = None,
    ) -> jax.Array:
        z, y = _checks.floating_pair(logits, labels, "logits")
        options = _options.sigmoid_options(
            z, label_smoothing=label_smoothing, weights=weights, pos_weight=pos_weight, soft_cap=soft_cap
        )
        if options is None:
            return impl.sigmoid(z, y, None, ())
        return impl.sigmoid_options(z, y, options, ())

    sigmoid_binary_cross_entropy.__doc__ = f"""Element-wise sigmoid cross-entropy of logits and labels.

    .. math::
      \\ell(z, y) = -[y \\log \\sigma(z) + (1 - y) \\log(1 - \\sigma(z))],
      \\qquad \\frac{{\\partial \\ell}}{{\\partial z}} = \\sigma(z) - y

    The article's binary cost with its sigmoid output; the seed is its dJ/dZ = (A - Y)/m per
    example. Computed as :math:`z(1-y) + \\log1p(e^{{-z}})` for z > 0 (and its mirror), a sum of
    non-negative terms. {impl.rule}

    Args:
      logits: floating logits, any shape.
      labels: labels in [0, 1], hard or soft, broadcastable with ``logits``.
      {_options.SIGMOID_OPTIONS_DOC}

    Returns:
      The loss of each element, with the broadcast shape; float32 for float16 and bfloat16 input.
    """
    return publish(sigmoid_binary_cross_entropy, impl)


def make_binary_cross_entropy(impl: Implementation) -> Callable[..., jax.Array]:
    """Builds ``binary_cross_entropy`` (probability space) for one implementation."""

    def binary_cross_entropy(probs: jax.typing.ArrayLike, labels: jax.typing.ArrayLike) -> jax.Array:
        a, y, limits = _checks.probability_pair(probs, labels)
        return impl.binary_probs(a, y, limits, ())

    binary_cross_entropy.__doc__ = f"""Element-wise binary cross-entropy of probabilities and labels.

    .. math::
      \\ell(a, y) = -[y \\log a + (1 - y) \\log(1 - a)],
      \\qquad \\frac{{\\partial \\ell}}{{\\partial a}} = \\frac{{1 - y}}{{1 - a}} - \\frac{{y}}{{a}}
      = \\frac{{a - y}}{{a (1 - a)}}

    The article's J(A, Y) and its seed dJ/dA, per example. Clamp policy: ``log a`` is taken at
    ``max(a, tiny)`` and ``log(1 - a)`` at ``min(a, 1 - eps/2)`` (the smallest normal number and
    the largest number below 1), and the seed at ``a`` clamped to both. Exact 0 and 1 give a
    finite loss (0 when the label agrees) and a finite seed of the right sign, unlike clipping,
    which zeroes the gradient; values outside [0, 1] give NaN. {impl.rule}

    Args:
      probs: floating probabilities in [0, 1], any shape.
      labels: labels in [0, 1], broadcastable with ``probs``.

    Returns:
      The loss of each element, with the broadcast shape.
    """
    return publish(binary_cross_entropy, impl)
