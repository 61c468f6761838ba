"""The three implementations of the same costs, as interchangeable sets of core functions.

Each field is a cost ``f(x, y, where, axes) -> per-example loss`` on validated, broadcast
arrays in the compute dtype. The public wrappers in ``_binary``, ``_categorical`` and
``_multilabel`` are written once and take one of these.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax

from jaxloss import _article, _cores
from jaxloss._rules import Cost as Cost
from jaxloss._rules import custom_jvp_cost, custom_vjp_cost


class Implementation(NamedTuple):
    """One way to differentiate the costs."""

    namespace: str
    rule: str
    sigmoid: Cost
    softmax: Cost
    softmax_integer: Cost
    binary_probs: Cost
    categorical_probs: Cost
    sigmoid_options: Cost  # the third operand is a SigmoidOptions
    softmax_options: Cost  # the third operand is a SoftmaxOptions


_CORES = (
    _cores.SIGMOID,
    _cores.SOFTMAX,
    _cores.SOFTMAX_INTEGER,
    _cores.BINARY_PROBS,
    _cores.CATEGORICAL_PROBS,
    _cores.SIGMOID_OPTIONS,
    _cores.SOFTMAX_OPTIONS,
)

RULES = Implementation(
    "jaxloss",
    "It has a closed-form ``jax.custom_vjp`` rule: reverse mode (``grad``, ``vjp``, ``jacrev``,\n"
    "  ``hessian``) uses the seed; forward mode alone (``jvp``, ``jacfwd``) needs\n"
    "  :mod:`jaxloss.forward`.",
    *(custom_vjp_cost(core) for core in _CORES),
)

FORWARD = Implementation(
    "jaxloss.forward",
    "It has a closed-form ``jax.custom_jvp`` rule, so it works in forward and reverse mode\n"
    "  (``jvp``, ``jacfwd``, ``grad``, ``hessian``); reverse mode saves the seed as a residual.",
    *(custom_jvp_cost(core) for core in _CORES),
)

REFERENCE = Implementation(
    "jaxloss.reference",
    "It is the article's literal formula (activation, then cost), differentiated by ``jax.grad``\n"
    "  alone; it overflows or returns NaN where the activation saturates (|z| of about 17 in\n"
    "  float32 for the sigmoid). It is the baseline, not for training.",
    _article.sigmoid_binary_cross_entropy,
    _article.softmax_cross_entropy,
    _article.softmax_cross_entropy_with_integer_labels,
    _article.binary_cross_entropy,
    _article.categorical_cross_entropy,
    _article.sigmoid_cross_entropy_with_options,
    _article.softmax_cross_entropy_with_options,
)


def publish(fn: Callable[..., jax.Array], impl: Implementation) -> Callable[..., jax.Array]:
    """Names a wrapper as a member of ``impl``'s public namespace."""
    fn.__module__ = impl.namespace
    fn.__qualname__ = fn.__name__
    return fn
